// The dashboard: what the page holds (token, status, jobs, runs), how it is kept current
// (`live.js`), the operator's actions, the enqueue form and the run panel.

import * as api from './api.js';
import { fill, h, show } from './dom.js';
import { absolute, args as argsText, percent, tick, timeEl } from './format.js';
import * as live from './live.js';
import * as render from './render.js';

const $ = (id) => document.getElementById(id);

const state = {
  self: null,
  status: null,
  jobs: [],
  /** id → run, the newest ones and every active one. */
  runs: new Map(),
  loggedOut: false,
};

/** The run open in the panel, if any. */
let openRun = null;

/** How many finished runs the page keeps beyond what it shows. */
const KEEP = 200;
const ACTIVE = new Set(['pending', 'running', 'failed', 'deferred']);

// ---- what the token may do ---------------------------------------------------------

const ctx = {
  mayOperate: () => !!(state.self && state.self.may.operate),
  may: (project) => !!(state.self && state.self.may.operate
    && (state.self.role === 'admin' || state.self.projects.length === 0 || state.self.projects.includes(project))),
  act: runAction,
  resume: (project) => switchMode('resume', project),
  enqueue: openEnqueue,
  restartApp,
};

// ---- drawing -------------------------------------------------------------------------

let frame = 0;
function draw() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render.header(state, ctx);
    render.queue(state);
    render.problems(state);
    render.running(state, ctx);
    render.recent(state, ctx);
    render.jobs(state, ctx);
    render.apps(state, ctx);
    render.members(state);
    const running = [...state.runs.values()].filter((r) => r.state === 'running').length;
    const problems = !$('problems').hidden;
    document.title = `${problems ? '⚠ ' : ''}${running ? `${running} running · ` : ''}coco`;
    for (const el of document.querySelectorAll('[data-needs="operate"]')) {
      if (!ctx.mayOperate()) el.hidden = true;
    }
    drawPanel();
  });
}

setInterval(() => {
  tick();
  draw(); // heartbeats turn late, apps lost: their rows say so
}, 1000);

// ---- runs as they come -----------------------------------------------------------------

/** How many state changes a run has been through: a run event never goes back in time. */
const changes = (run) => run.history.length + (run.history_folded || 0);

function upsert(run) {
  const held = state.runs.get(run.id);
  if (held && changes(held) > changes(run)) return;
  state.runs.set(run.id, run);
}

/** Keep the newest runs and every active one. */
function prune() {
  const ids = [...state.runs.keys()].sort().reverse();
  for (const id of ids.slice(KEEP)) {
    if (!ACTIVE.has(state.runs.get(id).state) && id !== openRun) state.runs.delete(id);
  }
}

/** A snapshot of runs: newer ones the page holds (an event was faster) stay. */
function takeRuns(snapshot) {
  const fresh = new Map(snapshot.map((r) => [r.id, r]));
  const newest = snapshot.reduce((m, r) => (r.id > m ? r.id : m), '');
  for (const [id, held] of state.runs) {
    const got = fresh.get(id);
    if (got ? changes(held) > changes(got) : id > newest || id === openRun) fresh.set(id, held);
  }
  state.runs = fresh;
}

// ---- fetching --------------------------------------------------------------------------

let statusEvents = 0;
let refreshing = null;

/** Fetch everything (on load, after a resync, on return to the tab, and when polling). */
function refresh() {
  if (!refreshing) {
    refreshing = doRefresh().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

async function doRefresh() {
  const seen = statusEvents;
  const [self, status, recent, active, jobs] = await Promise.allSettled([
    api.get('token/self'),
    api.get('status'),
    api.get('runs?limit=50'),
    api.get('runs?state=running&limit=200'),
    api.get('jobs'),
  ]);
  if (state.loggedOut) return;
  const failed = [self, status, recent, active, jobs].find((r) => r.status === 'rejected');
  if (self.status === 'fulfilled') state.self = self.value;
  if (status.status === 'fulfilled' && statusEvents === seen) state.status = status.value;
  if (recent.status === 'fulfilled') {
    takeRuns(recent.value.runs.concat(active.status === 'fulfilled' ? active.value.runs : []));
  }
  if (jobs.status === 'fulfilled') state.jobs = jobs.value;
  $('app').removeAttribute('aria-busy');
  $('app').dataset.ready = 'true';
  if (failed && failed.reason.status !== 401) banner(failed.reason.message);
  else banner(null);
  draw();
}

let statusTimer = 0;
/** `GET status` again soon (a stream for a token limited to projects says only "changed"). */
function refetchStatus() {
  if (statusTimer) return;
  statusTimer = setTimeout(async () => {
    statusTimer = 0;
    try {
      const seen = statusEvents;
      const status = await api.get('status');
      if (seen === statusEvents || !state.status) state.status = status;
      draw();
    } catch {
      // The next event or poll tries again.
    }
  }, 300);
}

let jobsTimer = 0;
/** `GET jobs` again soon (its latest fires change with the status). */
function refetchJobs() {
  if (jobsTimer) return;
  jobsTimer = setTimeout(async () => {
    jobsTimer = 0;
    try {
      state.jobs = await api.get('jobs');
      draw();
    } catch {
      // The next status event or poll tries again.
    }
  }, 1000);
}

function onEvent(name, data) {
  switch (name) {
    case 'status':
      statusEvents += 1;
      // `null`: the status changed, and this token's view of it is its own: read it.
      if (data) state.status = data;
      else refetchStatus();
      refetchJobs();
      break;
    case 'run':
      if (!data || !data.id) return;
      upsert(data);
      prune();
      break;
    case 'run_removed':
      if (data) state.runs.delete(data.id);
      break;
    case 'resync':
      refresh();
      return;
    default:
      return;
  }
  draw();
}

// ---- the operator's actions --------------------------------------------------------------

async function attempt(what, call) {
  try {
    return await call();
  } catch (error) {
    toast(`Could not ${what}: ${error.message}`, 'error');
    return null;
  }
}

async function runAction(run, verb) {
  const done = await attempt(`${verb} ${run.job}`, () => api.post(`runs/${api.seg(run.id)}/${verb}`));
  if (!done) return;
  upsert(done);
  const words = { kill: 'Killed', remove: 'Removed', restart: 'Restarted' }[verb];
  toast(verb === 'restart' ? `${words} ${run.job}: new run ` : `${words} run of ${run.job} `, 'ok', done.id);
  draw();
}

async function switchMode(verb, project) {
  const body = project ? { project } : {};
  const done = await attempt(verb, () => api.post(verb, body));
  if (!done) return;
  if (state.status) {
    state.status = { ...state.status, mode: { paused: done.paused, paused_projects: done.paused_projects, halt_before: render.readMode(state.status.mode).halt } };
  }
  toast(verb === 'pause' ? (project ? `Paused ${project}` : 'Paused: no new runs start') : (project ? `Resumed ${project}` : 'Resumed'), 'ok');
  draw();
  refresh();
}

async function restartApp(app) {
  const [p, name] = [render.project(app), app.slice(render.project(app).length + 1)];
  const done = await attempt(`restart ${app}`, () => api.post(`apps/${api.seg(p)}.${api.seg(name)}/restart`));
  if (done) toast(`Restarting ${app}`, 'ok');
}

$('pause-toggle').addEventListener('click', (event) => switchMode(event.currentTarget.dataset.action));

$('logout').addEventListener('click', async () => {
  await attempt('log out', () => api.post('/logout'));
  loggedOut('You are logged out.');
});

// ---- the enqueue form ------------------------------------------------------------------

const lastArgs = new Map();

function openEnqueue(job) {
  const dialog = $('enqueue-dialog');
  dialog.dataset.job = job;
  $('enqueue-job').textContent = job;
  $('enqueue-args').value = lastArgs.get(job) || '{}';
  $('enqueue-force').checked = false;
  checkArgs();
  dialog.showModal();
  $('enqueue-args').focus();
  $('enqueue-args').select();
}

/** The arguments typed, or null (with the error shown) when they are not a JSON object. */
function checkArgs() {
  const text = $('enqueue-args').value.trim();
  let value;
  let error = null;
  try {
    value = text === '' ? {} : JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      error = 'The arguments must be a JSON object, like {"n": 3}.';
    }
  } catch (e) {
    error = `Not JSON: ${e.message}`;
  }
  const el = $('enqueue-error');
  el.textContent = error || '';
  show(el, !!error);
  $('enqueue-args').setAttribute('aria-invalid', error ? 'true' : 'false');
  $('enqueue-submit').disabled = !!error;
  return error ? null : value;
}

$('enqueue-args').addEventListener('input', checkArgs);

$('enqueue-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const args = checkArgs();
  if (!args) return;
  const dialog = $('enqueue-dialog');
  const job = dialog.dataset.job;
  const [p, name] = [render.project(job), job.slice(render.project(job).length + 1)];
  $('enqueue-submit').disabled = true;
  try {
    const run = await api.post(`jobs/${api.seg(p)}.${api.seg(name)}/enqueue`, { args, force: $('enqueue-force').checked });
    lastArgs.set(job, $('enqueue-args').value);
    upsert(run);
    dialog.close();
    toast(`Enqueued ${job}: run `, 'ok', run.id);
    draw();
  } catch (error) {
    const el = $('enqueue-error');
    fill(el, error.message, error.body && error.body.run
      ? [' ', h('a', { href: `#run/${error.body.run}`, onclick: () => dialog.close() }, 'Open that run')]
      : null);
    show(el, true);
  } finally {
    $('enqueue-submit').disabled = false;
  }
});

for (const dialog of document.querySelectorAll('dialog')) {
  for (const button of dialog.querySelectorAll('[data-close]')) {
    button.addEventListener('click', () => dialog.close());
  }
  // A click on the backdrop closes it.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog) dialog.close();
  });
}

// ---- the run panel: one run, its output streaming ----------------------------------------

let outputTimer = 0;
let output = '';

function fromHash() {
  const m = location.hash.match(/^#run\/([0-9A-Za-z]+)$/);
  if (m) openPanel(m[1].toUpperCase());
  else if ($('run-panel').open) $('run-panel').close();
}

window.addEventListener('hashchange', fromHash);

$('run-panel').addEventListener('close', () => {
  openRun = null;
  clearTimeout(outputTimer);
  if (location.hash.startsWith('#run/')) history.replaceState(null, '', location.pathname + location.search);
});

async function openPanel(id) {
  openRun = id;
  output = '';
  $('run-output').textContent = '';
  $('run-output').dataset.runId = id;
  const panel = $('run-panel');
  panel.dataset.runId = id;
  if (!panel.open) panel.showModal();
  drawPanel();
  const detail = await attempt('open the run', () => api.get(`runs/${api.seg(id)}`));
  if (!detail || openRun !== id) return;
  upsert(detail.run);
  setOutput(detail.output || '');
  draw();
  pollOutput(id);
}

async function pollOutput(id) {
  clearTimeout(outputTimer);
  if (openRun !== id) return;
  const run = state.runs.get(id);
  try {
    const text = await api.get(`runs/${api.seg(id)}/output`);
    if (openRun === id) setOutput(text || '');
  } catch {
    // Shown by the next try, or the run's end.
  }
  if (openRun === id && !(run && render.FINAL.has(run.state) && output)) {
    outputTimer = setTimeout(() => pollOutput(id), 1000);
  } else if (openRun === id) {
    $('panel-output-note').textContent = '';
  }
}

function setOutput(text) {
  if (text === output) return;
  const box = $('run-output');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  output = text;
  box.textContent = text || '(no output yet)';
  box.classList.toggle('muted', !text);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function drawPanel() {
  const panel = $('run-panel');
  if (!panel.open || !openRun) return;
  const run = state.runs.get(openRun);
  $('panel-job').textContent = run ? run.job : openRun;
  const st = $('panel-state');
  st.className = `badge state-${run ? run.state : 'pending'}`;
  st.textContent = run ? run.state : '…';
  st.dataset.state = run ? run.state : '';
  panel.dataset.state = run ? run.state : '';
  $('panel-output-note').textContent = run && !render.FINAL.has(run.state) ? '(updating every second)' : '';
  if (!run) return;
  const sig = JSON.stringify([run, ctx.may(run.project)]);
  if (panel.$sig === sig) return;
  panel.$sig = sig;

  const progress = $('panel-progress');
  show(progress, typeof run.progress === 'number' || run.state === 'running');
  fill(progress,
    h('div', { class: 'bar-line' },
      h('span', { class: 'msg' }, run.progress_message || ''),
      h('span', { class: 'pct' }, typeof run.progress === 'number' ? `${percent(run.progress)}%` : '')),
    progressBar(run));

  const fact = (term, ...value) => [h('dt', null, term), h('dd', null, ...value)];
  const a = argsText(run.args);
  fill($('panel-facts'),
    fact('Run', h('code', { class: 'id' }, run.id)),
    fact('Args', a ? h('code', null, a) : h('span', { class: 'muted' }, 'none')),
    fact('Try', `${run.attempt} of ${run.attempts}`),
    fact('Worker', run.worker ? h('span', { class: 'mono' }, run.worker, run.pid ? ` · pid ${run.pid}` : '') : h('span', { class: 'muted' }, '–')),
    fact('Queued', timeEl(run.created), ` · ${absolute(run.created)}`),
    run.started && fact('Started', timeEl(run.started), ` · ${absolute(run.started)}`),
    run.started && fact('Duration', timeEl(run.started, 'dur', run.finished)),
    run.exit_code != null && fact('Exit', String(run.exit_code)),
    run.reason && fact('Reason', run.reason),
    run.restart_of && fact('Restarts', h('a', { href: `#run/${run.restart_of}` }, run.restart_of)),
    run.parent && fact('After', h('a', { href: `#run/${run.parent}` }, run.parent)),
    run.history.length > 0 && fact('History', h('ol', { class: 'history' }, run.history.map((c) =>
      h('li', null, render.badge(c.state), ' ', timeEl(c.at), c.note ? ` — ${c.note}` : '')))));
  fill($('panel-actions'), render.runActions(run, ctx));
}

function progressBar(run) {
  const bar = h('div', { class: `bar${typeof run.progress === 'number' ? '' : ' indeterminate'}`, role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100 }, h('div', { class: 'fill' }));
  if (typeof run.progress === 'number') {
    bar.firstChild.style.width = `${percent(run.progress)}%`;
    bar.setAttribute('aria-valuenow', percent(run.progress));
  }
  return bar;
}

// ---- messages ------------------------------------------------------------------------------

/** A short message at the corner; `runId` adds a link to that run. */
function toast(text, kind = 'ok', runId = null) {
  const el = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', null, text, runId && h('a', { href: `#run/${runId}`, class: 'mono' }, runId.slice(-8))),
    h('button', { type: 'button', class: 'btn-icon toast-close', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '✕'));
  $('toasts').append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 5000);
}

/** A standing message while reading fails (the daemon is down): `null` clears it. */
let bannerEl = null;
function banner(text) {
  if (!text) {
    if (bannerEl) bannerEl.remove();
    bannerEl = null;
    return;
  }
  if (!bannerEl) {
    bannerEl = h('div', { class: 'banner', role: 'alert', id: 'banner' });
    $('top').after(bannerEl);
  }
  bannerEl.textContent = `Cannot read everything: ${text}`;
}

// ---- logged in or not --------------------------------------------------------------------

let stream = null;

function loggedOut(message) {
  if (state.loggedOut) return;
  state.loggedOut = true;
  if (stream) stream.stop();
  for (const dialog of document.querySelectorAll('dialog')) if (dialog.open) dialog.close();
  document.body.classList.add('logged-out');
  show($('top'), false);
  show($('app'), false);
  show($('login-screen'), true);
  if (message) $('login-title').textContent = message;
}

api.whenUnauthorized(() => loggedOut(null));

stream = live.start({
  refresh,
  event: onEvent,
  mode: (m) => {
    render.connection(m);
    if (m === 'polling' || m === 'connecting') draw();
  },
});
stream.resume().then(fromHash);
