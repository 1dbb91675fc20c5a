// The sections of the page, each drawn from the state `app.js` keeps. Pure over their
// inputs, apart from the DOM they write: `syncList` keeps unchanged rows as they are.

import { fill, h, show, syncList } from './dom.js';
import { args as argsText, percent, timeEl } from './format.js';

/** The states the queue chips count, in this order. */
const COUNTED = ['pending', 'running', 'failed', 'deferred', 'error', 'killed'];
/** States a run never leaves. */
export const FINAL = new Set(['complete', 'error', 'killed', 'removed']);
/** A member or app whose heartbeat is older than this is late; twice that, lost. */
const LATE_MS = 10000;

const $ = (id) => document.getElementById(id);

export function badge(text, kind = text) {
  return h('span', { class: `badge state-${kind}`, dataset: { state: kind } }, text);
}

/** `mode` of `GET status` read into its switches. */
export function readMode(mode, members = []) {
  if (mode && typeof mode === 'object') {
    return {
      paused: !!mode.paused,
      projects: mode.paused_projects || [],
      halt: mode.halt_before || null,
      text: '',
      members,
    };
  }
  const text = String(mode || '');
  const projects = (text.match(/^paused projects: (.*)$/m) || [, ''])[1]
    .split(',').map((p) => p.trim()).filter(Boolean);
  const halt = (text.match(/^last halt: (\S+)/m) || [, null])[1];
  return { paused: /^mode: paused/.test(text), projects, halt, text, members };
}

/** The header: mode, switch, paused projects, connection, who is logged in. */
export function header(state, ctx) {
  const mode = readMode(state.status && state.status.mode, state.status ? state.status.members : []);
  const live = (state.status ? state.status.members : []).filter(
    (m) => !mode.halt || Date.parse(m.started) > Date.parse(mode.halt),
  );
  let kind = 'running';
  let text = 'Running';
  if (!state.status) {
    kind = 'unknown';
    text = '…';
  } else if (mode.halt && live.length === 0) {
    kind = 'halted';
    text = 'Halted';
  } else if (mode.paused) {
    kind = 'paused';
    text = 'Paused: no new runs start';
  } else if (mode.projects.length) {
    kind = 'partial';
    text = `Running · ${mode.projects.length} paused`;
  }
  const el = $('mode');
  el.dataset.mode = kind;
  $('mode-text').textContent = text;
  el.title = mode.text || '';
  const toggle = $('pause-toggle');
  show(toggle, !!state.status && ctx.mayOperate());
  toggle.textContent = mode.paused ? 'Resume' : 'Pause';
  toggle.dataset.action = mode.paused ? 'resume' : 'pause';

  const paused = $('paused-projects');
  show(paused, mode.projects.length > 0);
  fill(paused, h('span', { class: 'label' }, 'Paused projects:'), mode.projects.map((project) =>
    h('span', { class: 'chip state-paused', dataset: { project } }, project,
      ctx.may(project) && h('button', {
        type: 'button', class: 'chip-btn', title: `Resume ${project}`,
        onclick: () => ctx.resume(project),
      }, 'resume'))));

  const who = $('who');
  show(who, !!state.self);
  show($('logout'), !!state.self);
  if (state.self) {
    const scope = state.self.projects.length ? ` · ${state.self.projects.join(', ')}` : '';
    // A session of `coco dashboard` without --token has an internal name: its role says it.
    const name = state.self.name.startsWith('session:') ? 'dashboard session' : state.self.name;
    who.textContent = `${name} (${state.self.role}${scope})`;
  }
}

export function connection(mode) {
  const el = $('conn');
  el.dataset.conn = mode;
  el.textContent = { live: 'live', polling: 'polling', hidden: 'paused', connecting: 'connecting' }[mode] || mode;
  el.title = {
    live: 'Updates arrive as they happen (event stream)',
    polling: 'The event stream failed: reading again every 3 seconds',
    connecting: 'Opening the event stream…',
  }[mode] || '';
}

/** Queue counts as chips coloured by state. */
export function queue(state) {
  const counts = new Map((state.status ? state.status.queue : []).map(([s, n]) => [s, n]));
  syncList($('queue'), COUNTED, {
    key: (s) => s,
    sig: (s) => String(counts.get(s) ?? ''),
    render: (s) => {
      const n = counts.get(s) ?? 0;
      return h('span', {
        class: `chip state-${s}${n ? '' : ' zero'}`, dataset: { state: s, count: n },
        title: `${n} ${s}`,
      }, h('b', null, String(n)), ` ${s}`);
    },
  });
}

/** Manifest problems, in red, each with its place and snippet. */
export function problems(state) {
  const status = state.status;
  const items = [];
  if (status && status.home_problem) {
    items.push({ key: 'home', where: 'folder.home', what: status.home_problem, snippet: '', seen: null });
  }
  for (const source of (status && status.problems) || []) {
    for (const [i, text] of source.problems.entries()) {
      const [headline, ...rest] = text.split('\n');
      const m = headline.match(/^(.*?:\d+:\d+): (.*)$/);
      items.push({
        key: `${source.source}/${i}/${headline}`,
        where: m ? m[1] : '',
        what: m ? m[2] : headline,
        snippet: rest.join('\n'),
        seen: source,
      });
    }
  }
  show($('problems'), items.length > 0);
  syncList($('problems-list'), items, {
    key: (p) => p.key,
    sig: (p) => JSON.stringify(p),
    render: (p) => h('article', { class: 'problem', dataset: { where: p.where } },
      h('p', { class: 'problem-head' },
        p.where && h('code', { class: 'where' }, p.where), ' ', h('span', { class: 'what' }, p.what)),
      p.snippet && h('pre', { class: 'snippet' }, p.snippet),
      p.seen && h('p', { class: 'seen' }, `seen by ${p.seen.source} `, timeEl(p.seen.at))),
  });
}

function bar(run) {
  const has = typeof run.progress === 'number';
  const el = h('div', {
    class: `bar${has ? '' : ' indeterminate'}`, role: 'progressbar',
    'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-label': `progress of ${run.job}`,
  }, h('div', { class: 'fill' }));
  setBar(el, run);
  return el;
}

function setBar(el, run) {
  const has = typeof run.progress === 'number';
  const pct = percent(run.progress);
  el.classList.toggle('indeterminate', !has);
  el.dataset.progress = has ? String(run.progress) : '';
  if (has) el.setAttribute('aria-valuenow', pct);
  else el.removeAttribute('aria-valuenow');
  el.firstChild.style.width = has ? `${pct}%` : '';
}

/** How long a "sure?" button waits for its second click. */
const ARMED_FOR = 4000;
/** When each armed button (by what it does to what) stops waiting: a button drawn anew
 * while armed — its run's row updated by an event — is drawn armed, so the second click
 * still acts however often the row changes. */
const armedUntil = new Map();

/** A button that asks "sure?" on its first click and acts on the second (within 4 s);
 * `key` names what it acts on and where (a run's id, and row or panel). */
function confirmButton(label, confirmText, key, action) {
  const id = `${label}:${key}`;
  const button = h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { action: label.toLowerCase() } }, label);
  let timer = 0;
  const disarm = () => {
    clearTimeout(timer);
    timer = 0;
    armedUntil.delete(id);
    button.textContent = label;
    button.classList.remove('armed');
  };
  const arm = (until) => {
    clearTimeout(timer);
    armedUntil.set(id, until);
    button.textContent = confirmText;
    button.classList.add('armed');
    timer = setTimeout(() => {
      if (armedUntil.get(id) === until) disarm();
      else { button.textContent = label; button.classList.remove('armed'); }
    }, Math.max(0, until - Date.now()));
  };
  const until = armedUntil.get(id);
  if (until && until > Date.now()) arm(until);
  button.addEventListener('click', () => {
    const armedNow = armedUntil.get(id);
    if (armedNow && armedNow > Date.now()) {
      disarm();
      action();
      return;
    }
    arm(Date.now() + ARMED_FOR);
  });
  return button;
}

/**
 * The buttons a run offers to a token that may change it; `one`: only the likeliest (a
 * table row), the run's panel has them all.
 */
export function runActions(run, ctx, one = false) {
  if (!ctx.may(run.project)) return [];
  const place = `${run.id}:${one ? 'row' : 'panel'}`;
  const buttons = [];
  if (run.state === 'running') buttons.push(confirmButton('Kill', 'Kill it?', place, () => ctx.act(run, 'kill')));
  if (one && ['pending', 'failed', 'deferred'].includes(run.state)) {
    return [confirmButton('Remove', 'Remove it?', place, () => ctx.act(run, 'remove'))];
  }
  if (!['pending', 'running'].includes(run.state)) {
    buttons.push(h('button', {
      type: 'button', class: 'btn btn-small', dataset: { action: 'restart' },
      onclick: () => ctx.act(run, 'restart'),
    }, 'Restart'));
  }
  if (['pending', 'failed', 'deferred'].includes(run.state)) {
    buttons.push(confirmButton('Remove', 'Remove it?', place, () => ctx.act(run, 'remove')));
  }
  return buttons;
}

const runLink = (run) => h('a', { class: 'job', href: `#run/${run.id}`, title: `run ${run.id}` }, run.job);

/** The running runs, each with its progress bar and message. */
export function running(state, ctx) {
  const runs = [...state.runs.values()]
    .filter((r) => r.state === 'running')
    .sort((a, b) => (a.started || '').localeCompare(b.started || '') || a.id.localeCompare(b.id));
  $('running-count').textContent = runs.length ? String(runs.length) : '';
  show($('running-empty'), runs.length === 0);
  const base = (run) => JSON.stringify({ ...run, progress: 0, progress_message: 0, heartbeat: 0, op: ctx.may(run.project) });
  syncList($('running-list'), runs, {
    key: (r) => r.id,
    sig: (r) => JSON.stringify([base(r), r.progress, r.progress_message]),
    patch: (el, run) => {
      if (el.$base !== base(run)) return false;
      setBar(el.querySelector('.bar'), run);
      el.querySelector('.pct').textContent = typeof run.progress === 'number' ? `${percent(run.progress)}%` : '';
      el.querySelector('.msg').textContent = run.progress_message || '';
      return true;
    },
    render: (run) => {
      const a = argsText(run.args);
      const el = h('article', { class: 'run-card', dataset: { runId: run.id, state: run.state } },
        h('div', { class: 'run-card-head' },
          runLink(run),
          a && h('span', { class: 'args mono', title: a }, a),
          h('span', { class: 'pct' }, typeof run.progress === 'number' ? `${percent(run.progress)}%` : ''),
          h('span', { class: 'actions' }, runActions(run, ctx))),
        bar(run),
        h('div', { class: 'run-card-foot' },
          h('span', { class: 'msg' }, run.progress_message || ''),
          h('span', { class: 'meta' },
            run.worker ? `on ${run.worker} · ` : '', 'for ', timeEl(run.started, 'for'),
            run.attempts > 1 ? ` · try ${run.attempt}/${run.attempts}` : '')));
      el.$base = base(run);
      return el;
    },
  });
}

/** What a run's state adds in a word: why it ended, when it goes again. */
function stateNote(run) {
  if (run.state === 'deferred' || run.state === 'failed') {
    return ['next try ', timeEl(run.not_before, 'in')];
  }
  if (run.exit_code != null && run.state !== 'complete') return `exit ${run.exit_code}`;
  if (run.reason && !['killed', 'removed'].includes(run.state)) return run.reason;
  return null;
}

/** The newest runs, a row each. */
export function recent(state, ctx) {
  const runs = [...state.runs.values()].sort((a, b) => b.id.localeCompare(a.id)).slice(0, 50);
  show($('recent-empty'), runs.length === 0);
  $('recent').querySelector('table').hidden = runs.length === 0;
  syncList($('recent-list'), runs, {
    key: (r) => r.id,
    sig: (r) => JSON.stringify([r, ctx.may(r.project)]),
    render: (run) => {
      const a = argsText(run.args);
      const note = stateNote(run);
      let dur;
      if (run.state === 'running') {
        dur = typeof run.progress === 'number'
          ? h('span', { class: 'mini' }, h('span', { class: 'mini-bar' }, bar(run)), `${percent(run.progress)}%`)
          : timeEl(run.started, 'for');
      } else if (run.started && run.finished) {
        dur = timeEl(run.started, 'dur', run.finished);
      } else {
        dur = h('span', { class: 'muted' }, '–');
      }
      return h('tr', { dataset: { runId: run.id, state: run.state } },
        h('td', { class: 'c-state' }, badge(run.state), note && h('span', { class: 'note' }, note)),
        h('td', { class: 'c-job' }, runLink(run), a && h('span', { class: 'args mono', title: a }, a)),
        h('td', { class: 'c-started' }, run.started
          ? timeEl(run.started)
          : h('span', { class: 'muted' }, 'queued ', timeEl(run.created))),
        h('td', { class: 'c-dur' }, dur),
        h('td', { class: 'c-worker' }, run.worker ? h('span', { class: 'mono' }, run.worker) : h('span', { class: 'muted' }, '–')),
        note && h('td', { class: 'c-note' }, stateNote(run)),
        h('td', { class: 'c-actions' }, runActions(run, ctx, true)));
    },
  });
}

/** The newest run of `job` among those the page holds. */
function latestOf(state, job) {
  let best = null;
  for (const run of state.runs.values()) if (run.job === job && (!best || run.id > best.id)) best = run;
  return best;
}

/** Every applied job: schedule, time zone, next and last fire, latest run, enqueue. */
export function jobs(state, ctx) {
  const byId = new Map(state.jobs.map((j) => [j.job, j]));
  // A scheduled job `GET jobs` has not returned yet still shows, from the status.
  for (const j of (state.status && state.status.schedules) || []) if (!byId.has(j.job)) byId.set(j.job, j);
  const lines = [...byId.values()].sort((a, b) => a.job.localeCompare(b.job));
  show($('jobs-empty'), lines.length === 0);
  syncList($('jobs-list'), lines, {
    key: (j) => j.job,
    sig: (j) => {
      const last = latestOf(state, j.job);
      return JSON.stringify([j, last && [last.id, last.state, last.finished], ctx.may(project(j.job))]);
    },
    render: (j) => {
      const last = latestOf(state, j.job);
      const lastRun = last
        ? { id: last.id, state: last.state, at: last.finished || last.started || last.created }
        : j.last_run && { id: j.last_run, state: j.last_state, at: j.last_changed || j.last_created };
      return h('li', { class: 'row', dataset: { job: j.job } },
        h('div', { class: 'row-main' },
          h('span', { class: 'name' }, j.job),
          j.schedule
            ? h('span', { class: 'sched' }, h('code', null, j.schedule), j.timezone && h('span', { class: 'tz' }, j.timezone))
            : h('span', { class: 'sched muted' }, 'on demand')),
        h('div', { class: 'row-meta' },
          j.schedule && h('span', null, 'next ', timeEl(j.next_fire, 'in')),
          j.schedule && h('span', null, 'last fire ', j.last_fire ? timeEl(j.last_fire) : 'never'),
          lastRun
            ? h('span', null, h('a', { href: `#run/${lastRun.id}` }, 'last run'), ' ', badge(lastRun.state), ' ', timeEl(lastRun.at))
            : h('span', { class: 'muted' }, 'never run')),
        ctx.may(project(j.job)) && h('div', { class: 'row-actions' },
          h('button', {
            type: 'button', class: 'btn btn-small', dataset: { action: 'enqueue', job: j.job },
            onclick: () => ctx.enqueue(j.job),
          }, 'Enqueue…')));
    },
  });
}

export const project = (id) => id.split('.')[0];

function late(beat, now, lease = 0) {
  const age = now - Date.parse(beat);
  // A member that recorded its lease is lost once the lease is over, late past half of it.
  if (lease > 0) return age > lease ? 'lost' : age > lease / 2 ? 'late' : 'ok';
  return age > 2 * LATE_MS ? 'lost' : age > LATE_MS ? 'late' : 'ok';
}

/** Every applied app: state, health, restarts, uptime; restart. */
export function apps(state, ctx) {
  const lines = ((state.status && state.status.apps) || []).slice().sort((a, b) => a.app.localeCompare(b.app));
  const now = Date.now();
  show($('apps-empty'), lines.length === 0);
  syncList($('apps-list'), lines, {
    key: (a) => a.app,
    sig: (a) => JSON.stringify([a, a.status && late(a.status.heartbeat, now), ctx.may(project(a.app))]),
    render: (a) => {
      const s = a.status;
      const beat = s ? late(s.heartbeat, now) : 'lost';
      const st = !s ? badge('not running', 'stopped') : beat === 'ok' ? badge(s.state, `app-${s.state}`) : badge(`${s.state}, lost?`, 'lost');
      return h('li', { class: 'row', dataset: { app: a.app, appState: s ? s.state : 'none' } },
        h('div', { class: 'row-main' }, h('span', { class: 'name' }, a.app), st),
        h('div', { class: 'row-meta' },
          !s && h('span', { class: 'muted' }, 'no daemon holds it'),
          s && s.started && h('span', null, 'up ', timeEl(s.started, 'for')),
          s && h('span', null, `${s.restarts} restart${s.restarts === 1 ? '' : 's'}`),
          s && h('span', { class: 'mono' }, s.pid ? `${s.host} · pid ${s.pid}` : s.host),
          s && s.health && h('span', { class: s.healthy === false ? 'bad' : '' }, 'health: ', s.health, s.checked ? [' (', timeEl(s.checked), ')'] : '')),
        ctx.may(project(a.app)) && h('div', { class: 'row-actions' },
          h('button', {
            type: 'button', class: 'btn btn-small', dataset: { action: 'app-restart', app: a.app },
            onclick: () => ctx.restartApp(a.app),
          }, 'Restart')));
    },
  });
}

/** Daemons and workers: host, version, lease (lost once it expired), slots, apps held. */
export function members(state) {
  const list = ((state.status && state.status.members) || []).slice()
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name));
  const now = Date.now();
  show($('members-empty'), !!state.status && list.length === 0);
  syncList($('members-list'), list, {
    key: (m) => m.name,
    sig: (m) => JSON.stringify([m, late(m.heartbeat, now, m.lease_ms)]),
    render: (m) => {
      const beat = late(m.heartbeat, now, m.lease_ms);
      return h('li', { class: 'row', dataset: { member: m.name, kind: m.kind } },
        h('div', { class: 'row-main' },
          h('span', { class: `kind kind-${m.kind}` }, m.kind),
          h('span', { class: 'name mono' }, m.name),
          h('span', { class: `beat beat-${beat}`, title: 'latest heartbeat' }, h('span', { class: 'pulse', 'aria-hidden': 'true' }), 'heartbeat ', timeEl(m.heartbeat))),
        h('div', { class: 'row-meta' },
          h('span', null, `on ${m.host}`),
          m.version && h('span', { class: 'muted' }, `coco ${m.version}`),
          beat === 'lost' && h('span', { class: 'warn' }, 'lost: its lease expired'),
          h('span', null, 'up ', timeEl(m.started, 'for')),
          m.apps && m.apps.length > 0 && h('span', null, `holds ${m.apps.join(', ')}`),
          m.slots > 0
            ? h('span', null, `${m.running.length}/${m.slots} slot${m.slots === 1 ? '' : 's'} busy`)
            : h('span', { class: 'muted' }, 'runs no jobs'),
          m.holding && h('span', { class: 'warn' }, `holding: ${m.holding}`)));
    },
  });
}
