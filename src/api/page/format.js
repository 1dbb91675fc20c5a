// How times, durations and arguments read on the page. Elements that show a time relative
// to now carry `data-t` (and `data-fmt`, `data-t2`): `tick()` rewrites them every second.

/** A duration in milliseconds as people read it: `4s`, `3m 12s`, `2h 5m`, `3d 4h`. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '–';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m ${s % 60}s`;
  if (m < 60) return `${m}m`;
  const hours = Math.floor(m / 60);
  if (hours < 24) return `${hours}h ${m % 60}m`;
  return `${Math.floor(hours / 24)}d ${hours % 24}h`;
}

/** Milliseconds since the epoch of an RFC 3339 time, or NaN. */
export function ms(time) {
  return time ? Date.parse(time) : NaN;
}

/** `time` relative to `now`, as `fmt` says. */
export function relative(fmt, time, until, now = Date.now()) {
  const t = ms(time);
  if (!Number.isFinite(t)) return '–';
  switch (fmt) {
    case 'in': {
      const d = t - now;
      return d <= 1000 ? 'due' : `in ${duration(d)}`;
    }
    case 'for': // how long since, without "ago": an uptime, a running run's duration
      return duration(now - t);
    case 'dur': { // from `time` to `until` (or now, while `until` is not there yet)
      const end = ms(until);
      return duration((Number.isFinite(end) ? end : now) - t);
    }
    default: {
      const d = now - t;
      return d < 1500 ? 'just now' : `${duration(d)} ago`;
    }
  }
}

/** A local date and time, for tooltips. */
export function absolute(time) {
  const t = ms(time);
  return Number.isFinite(t) ? new Date(t).toLocaleString() : '';
}

/** A `<time>` that `tick()` keeps current. */
export function timeEl(time, fmt = 'ago', until = null) {
  const el = document.createElement('time');
  if (!time) {
    el.textContent = '–';
    return el;
  }
  el.dateTime = time;
  el.dataset.t = time;
  el.dataset.fmt = fmt;
  if (until) el.dataset.t2 = until;
  el.title = absolute(time);
  el.textContent = relative(fmt, time, until);
  return el;
}

/** Rewrite every relative time under `root`. */
export function tick(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll('[data-t]')) {
    const text = relative(el.dataset.fmt, el.dataset.t, el.dataset.t2, now);
    if (el.textContent !== text) el.textContent = text;
  }
}

/** A run's arguments in one line: `n=3 name="x"`; empty for none. */
export function args(value) {
  if (!value || typeof value !== 'object') return '';
  return Object.entries(value)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

/** A fraction 0..1 as a whole percentage. */
export function percent(fraction) {
  return Math.round(Math.min(1, Math.max(0, fraction || 0)) * 100);
}
