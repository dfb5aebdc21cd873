// parkhub operator console: plain script, no framework, no build step, no inline handlers.
// Everything goes through the same JSON API as every other client, with the token kept in
// sessionStorage only.
'use strict';
(() => {
const TOKEN_KEY = 'parkhub.token';
const VIEWS = ['overview', 'live', 'check', 'search', 'setup'];
const OPERATOR_ONLY = new Set(['live', 'setup']);
const POLL_MS = 5000;
const CHART_MS = 60000;
const MAX_EVENTS = 200;
const PER_PAGE = 25;

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// Builds an element: h('td', {class: 'num'}, 'text', child, ...). Text is never parsed as HTML.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}
const th = (...kids) => h('th', { scope: 'col' }, ...kids);
const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const kid of kids) el.append(kid);
  return el;
}

const state = {
  token: null, role: null,
  lots: [], lotsById: new Map(), lotsKey: '',
  adminLots: [], providers: [], tenants: [],
  pollTimer: null, charts: new Map(),
  search: { kind: 'tickets', params: null, page: 1 },
  editingLot: null, rates: [],
};

// ---- status line
const statusEl = $('#status');
let statusTimer = null;
function say(msg, isError = false) {
  clearTimeout(statusTimer);
  statusEl.textContent = msg;
  statusEl.classList.toggle('error', isError);
  if (msg && !isError) statusTimer = setTimeout(() => { statusEl.textContent = ''; }, 6000);
}

// ---- API
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `The server answered ${status}`);
    this.status = status;
    this.errorId = body && body.error_id;
    this.errors = (body && body.errors) || {};
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json', Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, { message: 'The server cannot be reached. Check the connection and try again.' });
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 200) }; } }
  if (!res.ok) {
    const err = new ApiError(res.status, data);
    if (res.status === 401 && state.role) signOut('Your token is no longer accepted (revoked or expired). Sign in again.');
    throw err;
  }
  return data;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  const str = q.toString();
  return str ? `?${str}` : '';
}

// ---- time
const fmtCache = new Map();
function formatter(tz, withDate = true) {
  const key = `${tz || ''}|${withDate}`;
  if (!fmtCache.has(key)) {
    const opts = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
    if (withDate) Object.assign(opts, { year: 'numeric', month: '2-digit', day: '2-digit' });
    try { fmtCache.set(key, new Intl.DateTimeFormat('sv-SE', { ...opts, timeZone: tz || undefined })); } catch { fmtCache.set(key, new Intl.DateTimeFormat('sv-SE', opts)); }
  }
  return fmtCache.get(key);
}
function parseTime(v) {
  if (v == null || v === '') return null;
  const d = new Date(String(v).replace(/([+-]\d\d)(\d\d)$/, '$1:$2'));
  return Number.isNaN(d.getTime()) ? null : d;
}
// An instant in a lot's time zone, e.g. 2026-11-26 14:00.
function fmtTime(v, tz, withDate = true) {
  if (/^\d{4}-\d\d-\d\d$/.test(v)) return v; // a local date, not an instant
  const d = parseTime(v);
  return d ? formatter(tz, withDate).format(d) : (v ? String(v) : '—');
}
// A time as the API wrote it (its own offset), for values with no lot to take a zone from.
function fmtWall(v) {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(v || '');
  return m ? `${m[1]} ${m[2]}` : (v || '—');
}
function offsetMs(date, tz) {
  const parts = {};
  for (const p of new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric',
    hour: 'numeric', minute: 'numeric', second: 'numeric',
  }).formatToParts(date)) parts[p.type] = p.value;
  const asUtc = Date.UTC(+parts.year, parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - Math.floor(date.getTime() / 1000) * 1000;
}
// A datetime-local value read as wall time in tz, as RFC 3339 UTC.
function wallToRfc3339(wall, tz) {
  if (!wall) return undefined;
  if (!tz) return new Date(wall).toISOString().replace('.000Z', 'Z');
  const [d, t] = wall.split('T');
  const [Y, M, D] = d.split('-').map(Number);
  const [hh, mm] = t.split(':').map(Number);
  const guess = Date.UTC(Y, M - 1, D, hh, mm);
  let ts = guess - offsetMs(new Date(guess), tz);
  const second = guess - offsetMs(new Date(ts), tz);
  if (second !== ts) ts = second;
  return new Date(ts).toISOString().replace('.000Z', 'Z');
}

const tzOf = (lotId) => (state.lotsById.get(Number(lotId)) || {}).timeZone;
const lotLabel = (lotId) => {
  const lot = state.lotsById.get(Number(lotId));
  return lot ? `${lot.parkingLotId} · ${lot.name}` : (lotId == null ? '—' : `lot ${lotId}`);
};
const rtz = (r) => r.timeZone || tzOf(r.parkingLotId);
const num = (v) => (v === '' || v == null ? undefined : Number(v));
const idList = (v) => String(v || '').split(/[\s,;]+/).filter(Boolean).map(Number);

// ---- forms and their errors
function clearErrors(form) {
  $$('.field-error', form).forEach((e) => e.remove());
  $$('[aria-invalid]', form).forEach((e) => { e.removeAttribute('aria-invalid'); e.removeAttribute('aria-describedby'); });
  const fe = $('.form-error', form);
  if (fe) { fe.textContent = ''; fe.hidden = true; }
}
function showErrors(form, err) {
  const fe = $('.form-error', form);
  fe.textContent = err.message;
  fe.hidden = false;
  let first = null;
  for (const [field, msgs] of Object.entries(err.errors || {})) {
    const input = form.elements.namedItem(field) || form.elements.namedItem(field.split(/[.[]/)[0]);
    if (!input || !input.id) continue;
    const p = h('p', { class: 'field-error', id: `${input.id}-err` }, [].concat(msgs).join('; '));
    input.insertAdjacentElement('afterend', p);
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', p.id);
    first = first || input;
  }
  if (first) first.focus();
}
function onSubmit(form, fn) {
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const btn = $('button[type="submit"]', form);
    btn.disabled = true;
    try {
      await fn(form.elements);
    } catch (e) {
      showErrors(form, e instanceof ApiError ? e : { message: String((e && e.message) || e) });
    } finally {
      btn.disabled = false;
    }
  });
}
function fillSelect(select, options, { empty, groups } = {}) {
  const keep = select.value;
  select.replaceChildren();
  if (empty !== undefined) select.append(h('option', { value: '' }, empty));
  if (groups) {
    for (const [label, opts] of groups) {
      if (!opts.length) continue;
      select.append(h('optgroup', { label }, opts.map(([v, t]) => h('option', { value: v }, t))));
    }
  } else {
    for (const [v, t] of options) select.append(h('option', { value: v }, t));
  }
  if ($$('option', select).some((o) => o.value === keep)) select.value = keep;
}

// ---- sign-in, roles, navigation
async function signIn(token, quiet) {
  state.token = token;
  try {
    await api('GET', '/api/v1/admin/overview');
  } catch (e) {
    state.token = null;
    if (e.status === 401) throw new ApiError(401, { message: 'This token is not known, or it was revoked.' });
    if (e.status === 403) throw new ApiError(403, { message: 'This token belongs to a provider, tenant or piece of equipment. Sign in with an operator or enforcement token.' });
    throw e;
  }
  let role = 'enforcement';
  try {
    await api('GET', '/api/v1/admin/providers');
    role = 'operator';
  } catch (e) {
    if (e.status !== 403) { state.token = null; throw e; }
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  state.role = role;
  $('#role-badge').textContent = role === 'operator' ? 'Operator' : 'Enforcement';
  $$('[data-role="operator"]').forEach((el) => { el.hidden = role !== 'operator'; });
  $('#nav').hidden = false;
  $('#who').hidden = false;
  searchFields(state.search.kind);
  if (!quiet) say(`Signed in as ${role}.`);
  await refreshOverview();
  state.pollTimer = setInterval(() => { if (!document.hidden) refreshOverview(); }, POLL_MS);
  if (role === 'operator') {
    loadAdminLists();
    live.start();
  }
  route();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(state.pollTimer);
  live.stop();
  Object.assign(state, {
    token: null, role: null, lots: [], lotsById: new Map(), lotsKey: '', adminLots: [],
    providers: [], tenants: [], pollTimer: null, charts: new Map(), editingLot: null,
  });
  state.search = { kind: 'tickets', params: null, page: 1 };
  for (const id of ['lots', 'events', 'verdict', 'results', 'setup-lots', 'setup-rates', 'principals',
    'setup-defs', 'setup-allocs']) $(`#${id}`).replaceChildren();
  $$('form').forEach((f) => { f.reset(); clearErrors(f); });
  $('#events-empty').hidden = false;
  $('#nav').hidden = true;
  $('#who').hidden = true;
  if (location.hash) history.replaceState(null, '', location.pathname);
  route();
  say(message || 'Signed out. The token was removed from this tab.', Boolean(message));
  $('#signin-token').focus();
}

function route(focus) {
  let view = location.hash.slice(1);
  if (!state.role) view = 'signin';
  else if (!VIEWS.includes(view) || (OPERATOR_ONLY.has(view) && state.role !== 'operator')) view = 'overview';
  for (const sec of $$('.view')) sec.hidden = sec.id !== `view-${view}`;
  for (const a of $$('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${view === 'signin' ? 'Sign in' : $(`#view-${view} h1`).textContent} · parkhub console`;
  if (focus) { const h1 = $(`#view-${view} h1`); h1.tabIndex = -1; h1.focus(); }
  if (view === 'setup') loadSetup();
  if (view === 'search' && !state.search.params) runSearch(1);
}

// ---- overview
async function refreshOverview() {
  if (!state.token) return;
  let lots;
  try {
    lots = await api('GET', '/api/v1/admin/overview');
  } catch (e) {
    if (state.token) say(`Overview: ${e.message}`, true);
    return;
  }
  if (!state.token) return;
  state.lots = lots;
  state.lotsById = new Map(lots.map((l) => [l.parkingLotId, l]));
  const key = lots.map((l) => `${l.parkingLotId}:${l.name}:${l.zoneCode}`).join('|');
  if (key !== state.lotsKey) { state.lotsKey = key; fillLotPickers(); }
  renderLots();
  $('#overview-updated').textContent = `Updated ${new Date().toLocaleTimeString('sv-SE')}`;
}

function fillLotPickers() {
  const lotOpts = state.lots.map((l) => [`lot:${l.parkingLotId}`, `${l.parkingLotId} · ${l.name}`]);
  const zones = [...new Set(state.lots.map((l) => l.zoneCode))].sort((a, b) => a - b);
  fillSelect($('#check-where'), null, {
    groups: [['Parking lots', lotOpts], ['Zones (every lot with the code)', zones.map((z) => [`zone:${z}`, `Zone ${z}`])]],
  });
  fillSelect($('#s-lot'), state.lots.map((l) => [l.parkingLotId, `${l.parkingLotId} · ${l.name}`]), { empty: 'Any lot' });
}

function renderLots() {
  const box = $('#lots');
  if (!state.lots.length) {
    box.replaceChildren(h('p', { class: 'muted' }, 'No parking lots yet.', state.role === 'operator' ? ' Create one under Setup.' : ''));
    return;
  }
  box.replaceChildren(...state.lots.map(lotCard));
  loadCharts();
}

function lotCard(l) {
  const cap = l.capacity;
  const pct = cap ? Math.min(100, Math.round((l.inside / cap) * 100)) : null;
  const bar = cap ? h('div', { class: `bar${pct >= 95 ? ' full' : ''}`, role: 'img', 'aria-label': `${pct}% occupied` }, h('span')) : null;
  if (bar) bar.firstChild.style.width = `${pct}%`;
  const stat = (label, value) => h('div', null, h('dt', null, label), h('dd', null, value ?? '—'));
  return h('article', { class: 'card lot', 'data-lot': l.parkingLotId, 'aria-labelledby': `lot-h-${l.parkingLotId}` },
    h('h2', { id: `lot-h-${l.parkingLotId}` }, l.name),
    h('p', { class: 'sub' }, `Lot ${l.parkingLotId} · zone ${l.zoneCode} · ${l.timeZone} · local time ${fmtTime(new Date(), l.timeZone, false)}`),
    h('dl', { class: 'nums' },
      stat('Inside', l.inside), stat('Free', cap == null ? '—' : l.free), stat('Capacity', cap),
      stat('Tickets', l.activeTickets), stat('Permits', l.activePermits), stat('Occupied', pct === null ? '—' : `${pct}%`)),
    bar,
    h('div', { class: 'chart', id: `chart-${l.parkingLotId}` }, chartFor(l.parkingLotId)));
}

function chartFor(lotId) {
  const c = state.charts.get(lotId);
  return c && c.node ? c.node : h('p', { class: 'muted' }, 'Loading the last 24 hours…');
}

async function loadCharts(force) {
  const now = Date.now();
  await Promise.all(state.lots.map(async (l) => {
    const c = state.charts.get(l.parkingLotId);
    if (c && (c.loading || (!force && now - c.at < CHART_MS))) return;
    state.charts.set(l.parkingLotId, { ...(c || {}), loading: true, at: now });
    let node;
    try {
      node = drawChart(await api('GET', `/api/v1/admin/parking-lots/${l.parkingLotId}/occupancy?hours=24`), l);
    } catch (e) {
      node = h('p', { class: 'muted' }, `No occupancy history: ${e.message}`);
    }
    state.charts.set(l.parkingLotId, { node, at: Date.now(), loading: false });
    const box = $(`#chart-${l.parkingLotId}`);
    if (box) box.replaceChildren(node);
  }));
}

function drawChart(data, lot) {
  const pts = data.points || [];
  const W = 320, H = 120, L = 30, R = 8, T = 10, B = 22;
  if (!pts.length) return h('p', { class: 'muted' }, 'No occupancy history yet.');
  const values = pts.map((p) => p.inside);
  const cap = data.capacity;
  const top = Math.max(cap || 0, ...values, 1);
  const x = (i) => L + (pts.length === 1 ? 0 : (i * (W - L - R)) / (pts.length - 1));
  const y = (v) => T + (H - T - B) * (1 - v / top);
  const line = pts.map((p, i) => `${x(i).toFixed(1)},${y(p.inside).toFixed(1)}`).join(' ');
  const area = `M${x(0)},${y(0)} L${line.replace(/ /g, ' L')} L${x(pts.length - 1)},${y(0)} Z`;
  const tz = data.timeZone || lot.timeZone;
  const peak = Math.max(...values);
  const label = `Vehicles inside ${lot.name} over the last ${pts.length} hours: now ${values[values.length - 1]}, peak ${peak}${cap ? ` of ${cap}` : ''}.`;
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label },
    s('title', {}, label),
    s('path', { class: 'area', d: area }),
    s('polyline', { class: 'line', points: line }),
    s('line', { class: 'axis', x1: L, y1: y(0), x2: W - R, y2: y(0) }),
    s('line', { class: 'axis', x1: L, y1: T, x2: L, y2: y(0) }),
    s('text', { x: L - 4, y: T + 4, 'text-anchor': 'end' }, String(top)),
    s('text', { x: L - 4, y: y(0), 'text-anchor': 'end' }, '0'),
    s('text', { x: L, y: H - 6 }, fmtTime(pts[0].at, tz, false)),
    s('text', { x: (L + W - R) / 2, y: H - 6, 'text-anchor': 'middle' }, fmtTime(pts[Math.floor(pts.length / 2)].at, tz, false)),
    s('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, fmtTime(pts[pts.length - 1].at, tz, false)));
  if (cap) svg.insertBefore(s('line', { class: 'cap', x1: L, y1: y(cap), x2: W - R, y2: y(cap) }), svg.querySelector('.axis'));
  return h('figure', { class: 'chart-fig' }, svg, h('figcaption', { class: 'muted' }, `Last ${pts.length - 1} h · now ${values[values.length - 1]} · peak ${peak}`));
}

// ---- live events
const live = (() => {
  let ws = null, stopped = true, retry = 0, timer = null, last = null, refreshTimer = null;
  const pill = $('#live-state');
  const show = (text, cls) => { pill.textContent = text; pill.className = `pill ${cls || ''}`; };
  function schedule() {
    clearTimeout(timer);
    const delay = Math.min(30000, 1000 * 2 ** retry) * (0.5 + Math.random() / 2);
    retry += 1;
    show(`reconnecting in ${Math.ceil(delay / 1000)} s`, 'off');
    timer = setTimeout(connect, delay);
  }
  async function connect() {
    if (stopped) return;
    show('connecting…');
    let ticket;
    try {
      ticket = (await api('POST', '/api/v1/ws-tickets')).ticket;
    } catch (e) {
      if (stopped) return;
      if (e.status === 403) { show('not available for this token', 'off'); return; }
      schedule();
      return;
    }
    if (stopped) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/api/TransactionMonitor${query({ ticket, subscription: 'console', after: last || 'latest' })}`;
    const sock = new WebSocket(url);
    ws = sock;
    sock.addEventListener('open', () => { retry = 0; show('connected', 'on'); });
    sock.addEventListener('message', (ev) => {
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      if (f.Heartbeat) return;
      if (f.Error) {
        say(`Live events: ${f.Message || f.Error}`, true);
        if (f.Error === 'resume_point_expired') last = null;
        return;
      }
      if (f.EventType) {
        if (f.EventID) last = f.EventID;
        addEvent(f);
        clearTimeout(refreshTimer);
        for (const c of state.charts.values()) c.at = 0; // the charts' last point is now
        refreshTimer = setTimeout(refreshOverview, 300);
      }
    });
    sock.addEventListener('close', (ev) => {
      if (ws !== sock) return;
      ws = null;
      if (ev.code === 4410) last = null;
      if (!stopped) schedule();
    });
  }
  return {
    start() { stopped = false; retry = 0; last = null; connect(); },
    stop() {
      stopped = true; clearTimeout(timer); clearTimeout(refreshTimer);
      if (ws) { const w = ws; ws = null; w.close(1000); }
      show('not connected');
    },
  };
})();

function lotOfCarpark(fac, cp) {
  return state.adminLots.find((l) => l.facilityNo === fac && l.carparkNo === cp);
}

function addEvent(f) {
  const lot = lotOfCarpark(f.FacilityNo, f.CarparkNo);
  const tz = lot ? lot.timeZone : undefined;
  const done = f.EventType === 'TransactionCompleted';
  const when = done ? (f.CompletionTime || f.EndTime) : f.StartTime;
  const details = [];
  if (done) {
    if (f.ParkingDuration !== undefined) details.push(`${f.ParkingDuration} min`);
    if (f.Amount !== undefined) details.push(`amount ${Number(f.Amount).toFixed(2)}`);
    if (f.RateNo !== undefined) details.push(`rate ${f.RateNo}`);
    if (f.StartTime) details.push(`in since ${fmtTime(f.StartTime, tz)}`);
  }
  if (f.ReferenceNo) details.push(`ref ${f.ReferenceNo}`);
  const row = h('tr', { class: 'fresh', 'data-event': f.EventID || '' },
    h('td', { 'data-label': 'Time', class: 'num' }, fmtTime(when, tz)),
    h('td', { 'data-label': 'Event' }, h('span', { class: `tag ${done ? 'out' : 'in'}` }, done ? 'Exit' : 'Entry'), ' ', f.EventType),
    h('td', { 'data-label': 'Car park' }, lot ? `${lot.id} · ${lot.name}` : `facility ${f.FacilityNo} / car park ${f.CarparkNo}`),
    h('td', { 'data-label': 'Ticket' }, h('strong', null, f.TicketNo), f.TicketType === 4 ? ' (plate)' : f.TicketType === 5 ? ' (QR)' : ''),
    h('td', { 'data-label': 'Details' }, details.join(' · ')));
  const body = $('#events');
  body.prepend(row);
  while (body.rows.length > MAX_EVENTS) body.lastElementChild.remove();
  $('#events-empty').hidden = true;
}

// ---- plate check
onSubmit($('#check-form'), async (f) => {
  const plate = f.licenseNumber.value.trim();
  if (!plate) throw new ApiError(422, { message: 'Enter a licence plate.', errors: { licenseNumber: ['is required'] } });
  const [kind, id] = f.where.value.split(':');
  if (!id) throw new ApiError(422, { message: 'Choose a lot or a zone.', errors: { where: ['is required'] } });
  const params = { licenseNumber: plate };
  params[kind === 'zone' ? 'zoneCode' : 'parkingLotId'] = id;
  const box = $('#verdict');
  box.replaceChildren();
  const r = await api('GET', `/api/v1/parking-rights${query(params)}`);
  renderVerdict(r);
});

function renderVerdict(r) {
  const tz = tzOf(r.parkingLotId || (r.parkingLotIds || [])[0]);
  const where = r.parkingLotId ? `lot ${lotLabel(r.parkingLotId)}` : `zone ${r.zoneCode} (${(r.parkingLotIds || []).map(lotLabel).join(', ') || 'no lots'})`;
  const word = r.allowed ? (r.grace ? 'ALLOWED (grace)' : 'ALLOWED') : 'NOT ALLOWED';
  const verdict = h('div', { class: `verdict ${r.allowed ? 'ok' : 'no'}`, 'data-allowed': String(r.allowed) },
    h('p', { class: 'big' }, word),
    h('p', { class: 'plate-no' }, r.licenseNumber),
    h('p', null, `at ${where}`),
    r.allowed ? h('p', null, r.validUntil ? `until ${fmtTime(r.validUntil, tz)}` : 'with no end time') : null,
    r.grace ? h('p', null, 'The right has just ended; the lot’s grace period still applies.') : null,
    h('p', { class: 'when' }, `checked for ${fmtTime(r.at, tz)}`));
  const rights = r.rights || [];
  $('#verdict').replaceChildren(...[verdict,
    h('h2', null, rights.length ? `Rights found (${rights.length})` : 'No ticket, permit or open stay found'),
    rights.length ? h('ul', { class: 'rights' }, rights.map(rightItem)) : null].filter(Boolean));
}

function rightItem(r) {
  const tz = rtz(r);
  const rows = [['Lot', lotLabel(r.parkingLotId)]];
  let title;
  if (r.kind === 'ticket') {
    title = `Ticket ${r.ticketId}`;
    rows.push(['Provider', r.provider], ['From', fmtTime(r.startDate, tz)], ['Until', r.endDate ? fmtTime(r.endDate, tz) : 'open-ended']);
  } else if (r.kind === 'permit') {
    title = `Permit: ${r.permitDefinitionName}`;
    rows.push(['Permit id', r.permit_id], ['Valid', `${fmtTime(r.validFrom, tz)} – ${fmtTime(r.validTo, tz)}`]);
    if (r.window) rows.push(['Window', `${(r.window.days || []).join(', ')} ${r.window.from}–${r.window.to}`]);
    if (r.windowEndsAt) rows.push(['Window ends', fmtTime(r.windowEndsAt, tz)]);
  } else if (r.kind === 'transaction') {
    title = `In the car park (transaction ${r.transactionId})`;
    rows.push(['Entered', fmtTime(r.entryTime, tz)], ['Reference', r.referenceNo]);
  } else {
    title = r.kind;
    for (const [k, v] of Object.entries(r)) if (k !== 'kind' && k !== 'parkingLotId') rows.push([k, String(v)]);
  }
  if (r.endedAt) rows.push(['Ended', `${fmtTime(r.endedAt, tz)} (grace)`]);
  return h('li', { 'data-kind': r.kind }, h('strong', null, title),
    h('dl', null, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
}

// ---- search
const money = (amount, cur) => (amount == null ? '—' : `${Number(amount).toFixed(2)} ${cur || ''}`.trim());
const SEARCH = {
  tickets: {
    path: '/api/v1/admin/tickets',
    fields: ['licenseNumber', 'providerId', 'parkingLotId', 'from', 'to'],
    cols: [
      ['Plate', (r) => r.licenseNumber], ['Lot', (r) => lotLabel(r.parkingLotId)],
      ['Provider', (r) => r.providerName || r.providerId], ['Ticket', (r) => r.ticketId],
      ['Start', (r) => fmtTime(r.startDate, rtz(r))],
      ['End', (r) => (r.endDate ? fmtTime(r.endDate, rtz(r)) : 'open-ended')],
      ['Status', (r) => (r.canceledAt ? `${r.status} ${fmtTime(r.canceledAt, rtz(r))}` : r.status)],
    ],
  },
  permits: {
    path: '/api/v1/admin/permits',
    fields: ['email', 'tenantId', 'allocationId'],
    cols: [
      ['E-mail', (r) => r.email], ['Tenant', (r) => r.tenantName || r.tenantId], ['Definition', (r) => r.definitionName],
      ['Valid from', (r) => fmtTime(r.validFrom, r.timeZone)], ['Valid to', (r) => fmtTime(r.validTo, r.timeZone)],
      ['Active', (r) => (r.activated ? `yes, since ${fmtTime(r.activatedAt, r.timeZone)}` : 'no (no vehicle yet)')],
      ['Permit id', (r) => r.permitId], ['Allocation', (r) => r.allocationId],
    ],
  },
  transactions: {
    path: '/api/v1/admin/transactions',
    fields: ['licenseNumber', 'parkingLotId', 'from', 'to'],
    cols: [
      ['Ticket no', (r) => `${r.ticketNo}${r.ticketType === 4 ? ' (plate)' : r.ticketType === 5 ? ' (QR)' : ''}`],
      ['Lot', (r) => lotLabel(r.parkingLotId)],
      ['Entry', (r) => fmtTime(r.entryTime, rtz(r))],
      ['Exit', (r) => (r.exitTime ? fmtTime(r.exitTime, rtz(r)) : 'still inside')],
      ['Minutes', (r) => r.durationMinutes ?? '—'],
      ['Amount', (r) => money(r.amount, r.currencyCode)],
      ['Reference', (r) => r.referenceNo || '—'], ['Id', (r) => r.transactionId],
    ],
  },
};

// Shows the filters of one kind of search (and the provider filter to operators only).
function searchFields(kind) {
  for (const b of $$('.tabs button')) b.setAttribute('aria-pressed', String(b.dataset.kind === kind));
  for (const f of $$('#search-form [data-for]')) {
    f.hidden = !f.dataset.for.split(' ').includes(kind) || (f.contains($('#s-provider')) && state.role !== 'operator');
  }
}
function setSearchKind(kind) {
  state.search = { kind, params: null, page: 1 };
  searchFields(kind);
  clearErrors($('#search-form'));
  $('#results').replaceChildren();
  if (kind === 'permits' && state.role === 'operator') fillSelect($('#s-tenant'), state.tenants.map((t) => [t.id, t.name]), { empty: 'Any tenant' });
  runSearch(1);
}
for (const b of $$('.tabs button')) b.addEventListener('click', () => setSearchKind(b.dataset.kind));

function searchParams() {
  const f = $('#search-form').elements;
  const cfg = SEARCH[state.search.kind];
  const tz = tzOf(f.parkingLotId.value) || (state.lots[0] || {}).timeZone;
  const p = {};
  for (const name of cfg.fields) {
    const v = f[name].value.trim();
    p[name] = name === 'from' || name === 'to' ? wallToRfc3339(v, tz) : v;
  }
  return p;
}

async function runSearch(page) {
  const form = $('#search-form');
  clearErrors(form);
  const { kind } = state.search;
  const cfg = SEARCH[kind];
  const params = state.search.params && page !== 1 ? state.search.params : searchParams();
  const box = $('#results');
  let res;
  try {
    res = await api('GET', `${cfg.path}${query({ ...params, page, perPage: PER_PAGE })}`);
  } catch (e) {
    if (state.search.kind === kind) { showErrors(form, e); box.replaceChildren(); }
    return;
  }
  if (state.search.kind !== kind) return;
  state.search.params = params;
  state.search.page = page;
  const rows = res.data || [];
  const meta = res.meta || { currentPage: page, lastPage: 1, total: rows.length };
  const table = h('table', { class: 'table stack' },
    h('caption', { class: 'sr' }, `${kind} found`),
    h('thead', null, h('tr', null, cfg.cols.map(([t]) => th(t)))),
    h('tbody', null, rows.map((r) => h('tr', null, cfg.cols.map(([t, fn]) => h('td', { 'data-label': t }, fn(r)))))));
  const pager = h('div', { class: 'pager' },
    h('button', { type: 'button', class: 'ghost small', disabled: meta.currentPage <= 1, onclick: () => runSearch(meta.currentPage - 1) }, '← Previous'),
    h('span', null, `Page ${meta.currentPage} of ${Math.max(1, meta.lastPage)} · ${meta.total} ${kind}`),
    h('button', { type: 'button', class: 'ghost small', disabled: meta.currentPage >= meta.lastPage, onclick: () => runSearch(meta.currentPage + 1) }, 'Next →'));
  box.replaceChildren(rows.length ? h('div', { class: 'scroll' }, table) : h('p', { class: 'muted' }, `No ${kind} match.`), pager);
}
$('#search-form').addEventListener('submit', (ev) => { ev.preventDefault(); state.search.params = null; runSearch(1); });

// ---- setup
async function loadAdminLists() {
  try {
    const [lots, providers, tenants] = await Promise.all([
      api('GET', '/api/v1/admin/parking-lots'), api('GET', '/api/v1/admin/providers'), api('GET', '/api/v1/admin/tenants')]);
    Object.assign(state, { adminLots: lots, providers, tenants });
    fillSelect($('#s-provider'), providers.map((p) => [p.id, p.name]), { empty: 'Any provider' });
    fillSelect($('#s-tenant'), tenants.map((t) => [t.id, t.name]), { empty: 'Any tenant' });
  } catch (e) {
    if (state.token) say(`Setup lists: ${e.message}`, true);
  }
}

async function loadSetup() {
  if (state.role !== 'operator') return;
  const tzList = $('#tz-list');
  if (!tzList.firstChild && Intl.supportedValuesOf) {
    tzList.append(...Intl.supportedValuesOf('timeZone').map((z) => h('option', { value: z })));
  }
  await loadAdminLists();
  renderSetupLots();
  renderPrincipals();
  loadRates();
  loadPermitSetup();
}

function renderSetupLots() {
  $('#setup-lots').replaceChildren(...state.adminLots.map((l) => h('tr', null,
    h('td', { class: 'num' }, l.id), h('td', null, l.name), h('td', null, l.zoneCode), h('td', null, l.timeZone),
    h('td', null, l.facilityNo == null ? '—' : `${l.facilityNo} / ${l.carparkNo}`),
    h('td', null, l.capacity ?? '—'),
    h('td', null, h('button', { type: 'button', class: 'ghost small', 'aria-label': `Edit lot ${l.id} ${l.name}`, onclick: () => editLot(l) }, 'Edit')))));
  fillSelect($('#rate-lot'), state.adminLots.map((l) => [l.id, `${l.id} · ${l.name}`]));
}

function editLot(l) {
  const form = $('#lot-form');
  clearErrors(form);
  state.editingLot = l.id;
  for (const k of ['id', 'name', 'zoneCode', 'timeZone', 'facilityNo', 'carparkNo', 'capacity', 'graceMinutes']) {
    form.elements[k].value = l[k] ?? '';
  }
  form.elements.id.readOnly = true;
  $('#lot-form-h').textContent = `Edit lot ${l.id}`;
  $('#lot-submit').textContent = 'Save changes';
  $('#lot-cancel').hidden = false;
  form.elements.name.focus();
}
function resetLotForm() {
  const form = $('#lot-form');
  form.reset();
  clearErrors(form);
  state.editingLot = null;
  form.elements.id.readOnly = false;
  $('#lot-form-h').textContent = 'New lot';
  $('#lot-submit').textContent = 'Create lot';
  $('#lot-cancel').hidden = true;
}
$('#lot-cancel').addEventListener('click', resetLotForm);

onSubmit($('#lot-form'), async (f) => {
  const body = { name: f.name.value.trim(), zoneCode: num(f.zoneCode.value), timeZone: f.timeZone.value.trim() };
  for (const k of ['facilityNo', 'carparkNo', 'capacity', 'graceMinutes']) {
    const v = num(f[k].value);
    if (v !== undefined) body[k] = v; else if (state.editingLot !== null && k !== 'graceMinutes') body[k] = null;
  }
  let lot;
  if (state.editingLot !== null) {
    lot = await api('PATCH', `/api/v1/admin/parking-lots/${state.editingLot}`, body);
    say(`Lot ${lot.id} saved.`);
  } else {
    body.id = num(f.id.value);
    lot = await api('POST', '/api/v1/admin/parking-lots', body);
    say(`Lot ${lot.id} created.`);
  }
  resetLotForm();
  await loadAdminLists();
  renderSetupLots();
  refreshOverview();
});

async function loadRates() {
  const lotId = $('#rate-lot').value;
  if (!lotId) { $('#setup-rates').replaceChildren(); return; }
  try {
    state.rates = await api('GET', `/api/v1/admin/parking-lots/${lotId}/rates`);
  } catch (e) {
    $('#setup-rates').replaceChildren(h('tr', null, h('td', { colspan: 8 }, e.message)));
    return;
  }
  $('#setup-rates').replaceChildren(...state.rates.map((r) => h('tr', null,
    h('td', { class: 'num' }, r.rateNo), h('td', null, r.name), h('td', { class: 'num' }, r.freeMinutes),
    h('td', { class: 'num' }, `${r.periodMinutes} min`), h('td', { class: 'num' }, `${r.pricePerPeriod} ${r.currencyCode}`),
    h('td', { class: 'num' }, r.maxPerDay ?? '—'),
    h('td', null, r.default ? 'yes' : ''),
    h('td', null, h('button', { type: 'button', class: 'ghost small', 'aria-label': `Edit rate ${r.rateNo}`, onclick: () => editRate(r) }, 'Edit'),
      ' ', h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete rate ${r.rateNo}`, onclick: () => deleteRate(r) }, 'Delete')))));
  if (!state.rates.length) $('#setup-rates').append(h('tr', null, h('td', { colspan: 8, class: 'muted' }, 'No rates: stays here are free.')));
}
$('#rate-lot').addEventListener('change', loadRates);

function editRate(r) {
  const f = $('#rate-form').elements;
  for (const k of ['rateNo', 'name', 'currencyCode', 'freeMinutes', 'periodMinutes', 'pricePerPeriod', 'maxPerDay']) f[k].value = r[k] ?? '';
  f.default.checked = Boolean(r.default);
  f.name.focus();
}
async function deleteRate(r) {
  if (!window.confirm(`Delete rate ${r.rateNo} (${r.name})?`)) return;
  try {
    await api('DELETE', `/api/v1/admin/parking-lots/${$('#rate-lot').value}/rates/${r.rateNo}`);
    say(`Rate ${r.rateNo} deleted.`);
  } catch (e) { say(`Delete rate: ${e.message}`, true); }
  loadRates();
}
onSubmit($('#rate-form'), async (f) => {
  const lotId = $('#rate-lot').value;
  if (!lotId) throw new Error('Choose a lot first.');
  const rateNo = num(f.rateNo.value);
  if (!rateNo) throw new ApiError(422, { message: 'Enter a rate number.', errors: { rateNo: ['is required'] } });
  const old = state.rates.find((r) => r.rateNo === rateNo);
  const body = {
    name: f.name.value.trim(), currencyCode: f.currencyCode.value.trim(), freeMinutes: num(f.freeMinutes.value),
    periodMinutes: num(f.periodMinutes.value), pricePerPeriod: num(f.pricePerPeriod.value),
    maxPerDay: num(f.maxPerDay.value) ?? null, default: f.default.checked, bands: old ? old.bands : [],
  };
  await api('PUT', `/api/v1/admin/parking-lots/${lotId}/rates/${rateNo}`, body);
  say(`Rate ${rateNo} of lot ${lotId} saved.`);
  $('#rate-form').reset();
  loadRates();
});

// Providers, tenants and equipment share one shape: a list, a create form, tokens.
const KINDS = [
  { key: 'providers', one: 'provider', title: 'Providers', lots: true },
  { key: 'tenants', one: 'tenant', title: 'Tenants', lots: false },
  { key: 'equipment', one: 'equipment', title: 'Equipment (gates, cameras)', lots: true },
];

async function renderPrincipals() {
  const box = $('#principals');
  if (!box.firstChild) box.append(...KINDS.map(principalBlock));
  await Promise.all(KINDS.map(async (k) => {
    let items;
    try { items = await api('GET', `/api/v1/admin/${k.key}`); } catch (e) { items = []; say(`${k.title}: ${e.message}`, true); }
    $(`#list-${k.key}`).replaceChildren(...items.map((it) => h('tr', null,
      h('td', { class: 'num' }, it.id), h('td', null, it.name),
      k.lots ? h('td', null, (it.parkingLotIds || []).join(', ') || 'all') : null,
      h('td', null, h('button', { type: 'button', class: 'ghost small', 'aria-label': `Tokens of ${k.one} ${it.name}`, onclick: () => openTokens(k, it) }, 'Tokens')))));
  }));
}

function principalBlock(k) {
  const form = h('form', { class: 'grid-form', id: `form-${k.key}`, novalidate: true },
    h('h4', { class: 'sr' }, `New ${k.one}`),
    h('div', { class: 'field' }, h('label', { for: `new-${k.key}-name` }, `New ${k.one}: name`), h('input', { id: `new-${k.key}-name`, name: 'name', required: true, autocomplete: 'off' })),
    k.lots ? h('div', { class: 'field' }, h('label', { for: `new-${k.key}-lots` }, 'Lot ids'), h('input', { id: `new-${k.key}-lots`, name: 'parkingLotIds', placeholder: 'all, or e.g. 12, 14', autocomplete: 'off' })) : null,
    h('p', { class: 'form-error', role: 'alert', hidden: true }),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, `Create ${k.one}`)),
    h('div', { class: 'secret-slot wide' }));
  onSubmit(form, async (f) => {
    const body = { name: f.name.value.trim() };
    if (k.lots && f.parkingLotIds.value.trim()) body.parkingLotIds = idList(f.parkingLotIds.value);
    const made = await api('POST', `/api/v1/admin/${k.key}`, body);
    form.reset();
    $('.secret-slot', form).replaceChildren(secretBox(`Token of ${k.one} “${made.name}” (id ${made.id})`, made.token));
    say(`${k.one[0].toUpperCase()}${k.one.slice(1)} ${made.name} created.`);
    renderPrincipals();
    if (k.key !== 'equipment') loadAdminLists();
  });
  return h('section', { class: 'principal-block', 'aria-labelledby': `h-${k.key}` },
    h('h3', { id: `h-${k.key}` }, k.title),
    h('div', { class: 'scroll' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, th('Id'), th('Name'),
        k.lots ? th('Lots') : null, th(h('span', { class: 'sr' }, 'Actions')))),
      h('tbody', { id: `list-${k.key}` }))),
    h('div', { class: 'panel', id: `tokens-${k.key}`, hidden: true }),
    form);
}

async function openTokens(k, it) {
  const panel = $(`#tokens-${k.key}`);
  panel.hidden = false;
  const base = `/api/v1/admin/${k.key}/${it.id}/tokens`;
  const slot = h('div');
  const tbody = h('tbody');
  const heading = h('h3', { tabindex: -1 }, `Tokens of ${k.one} “${it.name}”`);
  const issue = h('button', { type: 'button', onclick: async () => {
    issue.disabled = true;
    try {
      const t = await api('POST', base);
      slot.replaceChildren(secretBox(`New token for ${k.one} “${it.name}”`, t.token));
      await list();
    } catch (e) { slot.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, e.message)); }
    issue.disabled = false;
  } }, 'Issue a new token');
  async function list() {
    let tokens;
    try { tokens = await api('GET', base); } catch (e) { tbody.replaceChildren(h('tr', null, h('td', { colspan: 4 }, e.message))); return; }
    tbody.replaceChildren(...tokens.map((t) => h('tr', null,
      h('td', { class: 'num' }, t.id), h('td', null, h('code', null, t.hint)), h('td', null, fmtTime(t.createdAt)),
      h('td', null, t.revokedAt ? `revoked ${fmtTime(t.revokedAt)}` : h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke token ${t.id} (${t.hint})`, onclick: async () => {
        if (!window.confirm(`Revoke token ${t.hint}? Whoever uses it is refused at once.`)) return;
        try { await api('DELETE', `${base}/${t.id}`); say(`Token ${t.hint} revoked.`); } catch (e) { say(`Revoke: ${e.message}`, true); }
        list();
      } }, 'Revoke')))));
  }
  panel.replaceChildren(heading,
    h('div', { class: 'scroll' }, h('table', { class: 'table' }, h('thead', null, h('tr', null,
      th('Id'), th('Hint'), th('Created (your time)'), th('State'))), tbody)),
    h('div', { class: 'actions' }, issue, h('button', { type: 'button', class: 'ghost', onclick: () => { panel.hidden = true; panel.replaceChildren(); } }, 'Close')),
    slot);
  await list();
  heading.focus();
}

let secretSeq = 0;
function secretBox(title, token) {
  const node = $('#secret-tpl').content.firstElementChild.cloneNode(true);
  const id = `secret-${++secretSeq}`;
  $('.secret-title', node).textContent = title;
  $('label', node).setAttribute('for', id);
  const input = $('.secret-value', node);
  input.id = id;
  input.value = token;
  const note = $('.copy-note', node);
  const selectIt = (msg) => { input.focus(); input.select(); note.textContent = msg; };
  $('.copy', node).addEventListener('click', async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(token);
      note.textContent = 'Copied to the clipboard.';
    } catch {
      input.focus();
      input.select();
      let ok = false;
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      selectIt(ok ? 'Copied to the clipboard.' : 'The token is selected: press Ctrl+C (⌘C) to copy it.');
    }
  });
  input.addEventListener('focus', () => input.select());
  $('.done', node).addEventListener('click', () => node.remove());
  return node;
}

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
$('#def-days').append(...DAYS.map((d) => h('label', null, h('input', { type: 'checkbox', name: 'days', value: d }), d)));

async function loadPermitSetup() {
  let defs = [], allocs = [];
  try {
    [defs, allocs] = await Promise.all([api('GET', '/api/v1/admin/permit-definitions'), api('GET', '/api/v1/admin/permit-allocations')]);
  } catch (e) { say(`Permit setup: ${e.message}`, true); }
  const tenantName = (id) => (state.tenants.find((t) => t.id === id) || {}).name || id;
  $('#setup-defs').replaceChildren(...defs.map((d) => h('tr', null,
    h('td', { class: 'num' }, d.id), h('td', null, d.name), h('td', null, d.parkingLotIds.join(', ')),
    h('td', null, d.schedule && d.schedule.length ? d.schedule.map((w) => `${w.days.join(', ')} ${w.from}–${w.to}`).join('; ') : `all day (${d.timeZone})`))));
  $('#setup-allocs').replaceChildren(...allocs.map((a) => h('tr', null,
    h('td', null, h('code', null, a.id)), h('td', null, tenantName(a.tenantId)), h('td', null, a.permitDefinitionName),
    h('td', { class: 'num' }, `${a.issuedPermitCount} of ${a.permitCount}`), h('td', { class: 'num' }, a.parkingSpacesCount),
    h('td', null, `${fmtWall(a.validFrom).slice(0, 10)} – ${fmtWall(a.validTo).slice(0, 10)}`))));
  fillSelect($('#al-tenant'), state.tenants.map((t) => [t.id, t.name]));
  fillSelect($('#al-def'), defs.map((d) => [d.id, d.name]));
}

onSubmit($('#def-form'), async (f) => {
  const body = { name: f.name.value.trim(), parkingLotIds: idList(f.parkingLotIds.value) };
  const days = $$('input[name="days"]:checked', $('#def-form')).map((i) => i.value);
  if (days.length || f.from.value || f.to.value) body.schedule = [{ days, from: f.from.value, to: f.to.value }];
  const d = await api('POST', '/api/v1/admin/permit-definitions', body);
  say(`Permit definition ${d.name} created.`);
  $('#def-form').reset();
  loadPermitSetup();
});
onSubmit($('#alloc-form'), async (f) => {
  const body = {
    tenantId: num(f.tenantId.value), permitDefinitionId: num(f.permitDefinitionId.value),
    parkingSpacesCount: num(f.parkingSpacesCount.value), permitCount: num(f.permitCount.value),
    validFrom: f.validFrom.value || undefined, validTo: f.validTo.value || undefined,
  };
  const a = await api('POST', '/api/v1/admin/permit-allocations', body);
  say(`Allocation ${a.id} created.`);
  $('#alloc-form').reset();
  loadPermitSetup();
});

// ---- start
onSubmit($('#signin-form'), async (f) => {
  const token = f.token.value.trim();
  if (!token) throw new ApiError(422, { message: 'Paste a token to sign in.', errors: { token: ['is required'] } });
  await signIn(token);
  f.token.value = '';
});
$('#signout').addEventListener('click', () => signOut());
window.addEventListener('hashchange', () => route(true));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  signIn(saved, true).catch((e) => { sessionStorage.removeItem(TOKEN_KEY); route(); say(e.message, true); });
} else {
  route();
}
})();
