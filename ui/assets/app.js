// app.js: the status page. Everything comes from /api/v1 and goes into
// the page as text nodes (never HTML): job names, item keys and reasons
// are hostile input. The replay token stays in this tab's sessionStorage
// and travels only in an Authorization header, never in a cookie.
'use strict';

const TOKEN_KEY = 'nightshift.replay-token';
const state = { info: null, run: null, timer: null };

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function cell(text, cls) {
  return el('td', cls ? { class: cls } : {}, text === null || text === undefined ? '–' : text);
}

// Redraws a table only when what it shows changed, so a button is not
// replaced under the pointer between press and release.
const drawn = {};
function fill(table, data, build) {
  const sig = JSON.stringify(data);
  if (drawn[table] === sig) return;
  drawn[table] = sig;
  document.querySelector('#' + table + ' tbody').replaceChildren(...build());
}

function duration(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  s = Math.round(s);
  if (s < 60) return s + ' s';
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (h > 0) return h + ' h ' + String(m % 60).padStart(2, '0') + ' min';
  return m + ' min ' + String(s % 60).padStart(2, '0') + ' s';
}

function statusClass(s) {
  return 'status status-' + (/^[a-z_]+$/.test(s) ? s : 'other');
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ cache: 'no-store' }, opts || {}));
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (!r.ok) {
    const why = body && typeof body.error === 'string' ? body.error : r.status + ' ' + r.statusText;
    const err = new Error(why);
    err.status = r.status;
    err.body = body;
    throw err;
  }
  return body;
}

function problem(text) {
  const p = document.getElementById('problem');
  p.textContent = text || '';
  p.hidden = !text;
}

function renderJobs(doc) {
  fill('jobs', doc.jobs, () => doc.jobs.map(j => el('tr', { 'data-job': j.name },
    cell(j.name, 'job'),
    cell(j.schedule || 'manual'),
    cell(j.timezone),
    cell(j.suspend ? 'suspended' : j.next_fire, 'next-fire'),
    cell(j.handler),
    cell(j.last_success || 'never', 'last-success'),
    cell(j.active_runs, 'num active'))));
}

function progressCell(r) {
  const finished = r.items_done + r.items_failed;
  const total = r.items_total;
  const bar = el('progress', { max: Math.max(total, 1), value: Math.min(finished, Math.max(total, 1)) });
  return el('td', { class: 'progress' }, bar, ' ',
    el('span', { class: 'progress-text' }, r.items_done + ' / ' + total));
}

// The run's messages (reports, summaries), apart from its items.
function deliveryText(d) {
  if (!d) return null;
  let t = d.sent + ' sent';
  if (d.pending) t += ', ' + d.pending + ' pending' + (d.eta_s !== undefined && d.eta_s > 0 ? ' (ETA ' + duration(d.eta_s) + ')' : '');
  if (d.failed) t += ', ' + d.failed + ' failed';
  return t;
}

function renderRuns(doc) {
  fill('runs', doc.runs, () => doc.runs.map(r => {
    const open = el('button', { class: 'link', type: 'button', 'data-open-run': r.run_id }, String(r.run_id));
    open.addEventListener('click', () => { state.run = r.run_id; refreshRun(); });
    const status = r.status + (r.dry_run ? ' (dry run)' : '');
    return el('tr', { 'data-run-id': r.run_id, 'data-status': r.status },
      el('td', {}, open),
      cell(r.job, 'job'),
      cell(r.kind),
      cell(status, statusClass(r.status)),
      progressCell(r),
      cell(r.items_failed, 'num failed'),
      cell(r.rate_per_s !== undefined ? r.rate_per_s.toFixed(1) + '/s' : null, 'num rate'),
      cell(r.eta_s !== undefined ? duration(r.eta_s) : null, 'num eta'),
      cell(r.started),
      cell(duration(r.duration_s), 'num'),
      cell(deliveryText(r.delivery), 'delivery'));
  }));
}

async function refreshRun() {
  const box = document.getElementById('run-detail');
  if (state.run === null) { box.hidden = true; return; }
  box.hidden = false;
  document.getElementById('run-detail-id').textContent = String(state.run);
  const errBox = document.getElementById('run-detail-error');
  try {
    const doc = await api('/api/v1/runs/' + encodeURIComponent(state.run));
    const run = doc.runs[0];
    errBox.textContent = run && run.error ? run.error : '';
    errBox.hidden = !(run && run.error);
    const failed = (doc.items || []).filter(i => i.status === 'failed');
    fill('items', [state.run, failed], () => failed.map(i => el('tr', { 'data-item': i.item_key },
      cell(i.item_key, 'item'), cell(i.status, statusClass(i.status)),
      cell(i.attempts, 'num'), cell(i.error || '', 'reason'))));
    document.getElementById('items-none').hidden = failed.length > 0;
  } catch (e) {
    errBox.textContent = 'Run ' + state.run + ': ' + e.message;
    errBox.hidden = false;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function showReplayResult(text, bad) {
  const p = document.getElementById('replay-result');
  p.textContent = text;
  p.className = bad ? 'problem' : 'muted';
  p.hidden = !text;
}

async function replay(id) {
  try {
    const res = await api('/api/v1/dlq/' + encodeURIComponent(id) + '/replay', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token() },
      body: '{}',
    });
    showReplayResult('Dead letter ' + id + ': ' + res.output.trim(), false);
  } catch (e) {
    showReplayResult('Dead letter ' + id + ': replay refused: ' + e.message, true);
  }
  refresh();
}

function renderDlq(doc) {
  const canReplay = state.info && state.info.replay && token() !== '';
  fill('dlq', [canReplay, doc.dead_letters], () => doc.dead_letters.map(d => {
    let action = null;
    if (canReplay) {
      action = el('button', { type: 'button', class: 'replay', 'data-replay': d.id }, 'Replay');
      action.addEventListener('click', () => replay(d.id));
    }
    return el('tr', { 'data-dlq-id': d.id },
      cell(d.id, 'num'), cell(d.time), cell(d.job, 'job'), cell(d.run_id, 'num'),
      cell(d.item_key !== null ? d.item_key : d.msg_key, 'item'),
      cell(d.attempts, 'num'), cell(d.reason, 'reason'),
      cell(d.replay_count, 'num replays'), el('td', {}, action));
  }));
  const shown = doc.dead_letters.length;
  document.getElementById('dlq-total').textContent =
    shown === 0 ? 'No dead letters.' :
      doc.total > shown ? shown + ' newest of ' + doc.total + ' shown' : shown + ' shown';
}

async function refresh() {
  try {
    const [jobs, runs, dlq] = await Promise.all([
      api('/api/v1/jobs'), api('/api/v1/runs'), api('/api/v1/dlq?limit=100')]);
    renderJobs(jobs);
    renderRuns(runs);
    renderDlq(dlq);
    await refreshRun();
    problem('');
    document.getElementById('updated').textContent = 'updated ' + new Date().toISOString().slice(11, 19) + ' UTC';
    document.body.dataset.refreshed = String((Number(document.body.dataset.refreshed) || 0) + 1);
  } catch (e) {
    problem('Cannot refresh: ' + e.message);
  }
}

function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token');
  const stateText = document.getElementById('token-state');
  const show = () => { stateText.textContent = token() ? 'token set for this tab' : 'no token: replay hidden'; };
  form.addEventListener('submit', ev => {
    ev.preventDefault();
    if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
    else sessionStorage.removeItem(TOKEN_KEY);
    input.value = '';
    show();
    refresh();
  });
  show();
}

async function start() {
  try {
    state.info = await api('/api/v1');
  } catch (e) {
    problem('Cannot reach the API: ' + e.message);
    setTimeout(start, 2000);
    return;
  }
  document.getElementById('version').textContent = state.info.version;
  const mode = document.getElementById('mode');
  mode.textContent = state.info.replay ? 'replay enabled' : 'read-only';
  document.getElementById('token-form').hidden = !state.info.replay;
  document.getElementById('readonly').hidden = state.info.replay;
  setupToken();
  await refresh();
  state.timer = setInterval(refresh, state.info.refresh_ms);
}

document.addEventListener('DOMContentLoaded', start);
