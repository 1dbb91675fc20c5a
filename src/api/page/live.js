// Keeping the page current: the daemon's one event stream (`GET /api/v1/events`) while the
// tab is visible, closed while it is hidden (and everything fetched again on return); when
// the stream fails (3 errors within 30 s, or it does not open within 10 s) polling every
// 3 s instead, with another try of the stream every minute.

const EVENTS = '/api/v1/events';
const POLL_EVERY = 3000;
const OPEN_WITHIN = 10000;
const ERRORS = 3;
const ERROR_WINDOW = 30000;
const RETRY_STREAM = 60000;

/**
 * Start. `handlers`: `refresh()` fetches everything (a promise), `event(name, data)` applies
 * one event, `mode(m)` hears `connecting` / `live` / `polling` / `hidden`.
 */
export function start(handlers) {
  let source = null;
  let openTimer = 0;
  let pollTimer = 0;
  let retryTimer = 0;
  let errors = [];
  let polling = false;

  const setMode = (m) => handlers.mode(m);

  function closeStream() {
    clearTimeout(openTimer);
    if (source) source.close();
    source = null;
  }

  function openStream() {
    closeStream();
    if (typeof EventSource !== 'function') return fallBack();
    errors = [];
    if (!polling) setMode('connecting');
    const es = new EventSource(EVENTS);
    source = es;
    openTimer = setTimeout(() => source === es && es.readyState !== EventSource.OPEN && fallBack(), OPEN_WITHIN);
    es.onopen = () => {
      if (source !== es) return;
      clearTimeout(openTimer);
      stopPolling();
      setMode('live');
    };
    es.onerror = () => {
      if (source !== es) return;
      const now = Date.now();
      errors = errors.filter((t) => now - t < ERROR_WINDOW).concat(now);
      if (es.readyState === EventSource.CLOSED || errors.length >= ERRORS) fallBack();
      else setMode('connecting');
    };
    for (const name of ['status', 'run', 'run_removed', 'resync']) {
      es.addEventListener(name, (event) => {
        if (source !== es) return;
        let data = null;
        try {
          data = event.data ? JSON.parse(event.data) : null;
        } catch {
          return;
        }
        handlers.event(name, data);
      });
    }
  }

  function fallBack() {
    closeStream();
    if (!polling) {
      polling = true;
      setMode('polling');
      poll();
    }
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => !document.hidden && openStream(), RETRY_STREAM);
  }

  async function poll() {
    clearTimeout(pollTimer);
    if (!polling || document.hidden) return;
    try {
      await handlers.refresh();
    } finally {
      if (polling && !document.hidden) pollTimer = setTimeout(poll, POLL_EVERY);
    }
  }

  function stopPolling() {
    polling = false;
    clearTimeout(pollTimer);
    clearTimeout(retryTimer);
  }

  async function resume() {
    // The stream first, then the snapshot: what changes meanwhile arrives as events.
    openStream();
    await handlers.refresh();
  }

  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      closeStream();
      stopPolling();
      setMode('hidden');
    } else {
      resume();
    }
  });

  return {
    resume,
    /** Stop everything (logged out). */
    stop() {
      closeStream();
      stopPolling();
    },
  };
}
