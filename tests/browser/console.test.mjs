// The operator console in a real Chromium, against a running `parkhub serve --demo`.
// Run through scripts/browser-test, which starts the server and passes what it printed:
//   PARKHUB_URL, PARKHUB_OPERATOR_TOKEN, PARKHUB_PROVIDER_TOKEN, PARKHUB_GATE_TOKEN,
//   PARKHUB_ENFORCEMENT_TOKEN (optional), PARKHUB_BACKEND (a label), CHROMIUM, SCREENSHOT_DIR.
// Prints one line per step; exits non-zero at the first failure (with a screenshot of it).
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) { console.error(`missing ${name}`); process.exit(2); }
  return v;
};
const BASE = env('PARKHUB_URL').replace(/\/$/, '');
const OPERATOR = env('PARKHUB_OPERATOR_TOKEN');
const PROVIDER = env('PARKHUB_PROVIDER_TOKEN');
const GATE = env('PARKHUB_GATE_TOKEN');
const ENFORCEMENT = process.env.PARKHUB_ENFORCEMENT_TOKEN || '';
const BACKEND = env('PARKHUB_BACKEND', 'sqlite');
const SHOTS = env('SCREENSHOT_DIR', 'target/screenshots');
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const TIMEOUT = 10_000;

async function call(token, method, p, body) {
  const res = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

mkdirSync(SHOTS, { recursive: true });
const userDataDir = mkdtempSync(path.join(tmpdir(), 'parkhub-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: DESKTOP,
  timeout: 30_000,
});
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(TIMEOUT);

// Every TransactionMonitor socket goes through Playwright (unchanged), so a step can cut one.
const monitorSockets = [];
await page.routeWebSocket(/\/api\/TransactionMonitor/, (ws) => {
  ws.connectToServer();
  monitorSockets.push(ws);
});

// Anything the page logs as an error (a CSP violation, an exception) fails the run.
const pageErrors = [];
page.on('pageerror', (e) => pageErrors.push(`exception: ${e.message}`));
page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`console: ${m.text()}`); });

let shot = 0;
async function screenshots(name) {
  shot += 1;
  const base = path.join(SHOTS, `${BACKEND}-${String(shot).padStart(2, '0')}-${name}`);
  await page.screenshot({ path: `${base}-desktop.png`, fullPage: true });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(150);
  await page.screenshot({ path: `${base}-phone.png`, fullPage: true });
  // Nothing may stick out sideways at phone width (wide tables scroll inside their box).
  const wide = await page.evaluate(() => {
    const w = document.documentElement.clientWidth;
    if (document.documentElement.scrollWidth <= w) return null;
    return Array.from(document.querySelectorAll('body *'))
      .filter((e) => e.getBoundingClientRect().right > w + 1 && !(e.parentElement && e.parentElement.closest('.scroll')))
      .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? `#${e.id}` : ''}.${e.className}`);
  });
  await page.setViewportSize(DESKTOP);
  assert.equal(wide, null, `${name} is wider than the phone: ${wide}`);
}

let failed = false;
const started = Date.now();
async function step(name, fn) {
  if (failed) return;
  const t0 = Date.now();
  try {
    await fn();
    console.log(`ok   ${BACKEND} ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed = true;
    console.log(`FAIL ${BACKEND} ${name}: ${e.stack || e}`);
    await page.screenshot({ path: path.join(SHOTS, `${BACKEND}-failure.png`), fullPage: true }).catch(() => {});
  }
}
const go = async (view) => {
  await page.click(`#nav a[data-view="${view}"]`);
  await page.waitForSelector(`#view-${view}:not([hidden])`);
};

const plate = `BT${Math.floor(Math.random() * 90000 + 10000)}`;

await step('sign-in page is served with its script and style', async () => {
  const res = await page.goto(`${BASE}/`);
  assert.equal(res.status(), 200);
  await page.waitForSelector('#signin-token');
  assert.equal(await page.title(), 'Sign in · parkhub console');
  await page.fill('#signin-token', 'phk_not-a-real-token');
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#signin-form .form-error:not([hidden])');
  assert.match(await page.textContent('#signin-form .form-error'), /not known|revoked/);
  await screenshots('signin');
});

await step('operator signs in and sees lot 12 in the overview', async () => {
  await page.fill('#signin-token', OPERATOR);
  await page.click('#signin-form button[type="submit"]');
  await page.waitForSelector('#lots [data-lot="12"]');
  assert.equal(await page.textContent('#role-badge'), 'Operator');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('parkhub.token')), OPERATOR);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  assert.ok(await page.isVisible('#nav a[data-view="setup"]'), 'operator sees Setup');
  await page.waitForSelector('#chart-12 svg');
});

await step('an entry posted by the gate appears live, and the overview follows', async () => {
  await go('live');
  await page.waitForFunction(() => document.querySelector('#live-state').textContent === 'connected');
  const id = await call(PROVIDER, 'PUT', '/api/v1/identifiers', { ticketNo: plate, ticketType: 4 });
  assert.ok(id.status === 200 || id.status === 201, JSON.stringify(id.body));
  const entry = await call(GATE, 'POST', '/api/v1/carparks/entries', { facilityNo: 1, carparkNo: 2, ticketNo: plate, ticketType: 4 });
  assert.ok(entry.status === 200 || entry.status === 201, JSON.stringify(entry.body));
  const row = await page.waitForSelector(`#events tr[data-event="${entry.body.eventId}"]`);
  const text = await row.textContent();
  assert.match(text, new RegExp(plate));
  assert.match(text, /TransactionStarted/);
  assert.match(text, /Falun|12 ·/);
  await page.click('#nav a[data-view="overview"]');
  await page.waitForFunction(() => /Inside\s*1/.test(document.querySelector('#lots [data-lot="12"] .nums').textContent));
  await page.waitForFunction(() => /now 1 /.test(document.querySelector('#chart-12 figcaption')?.textContent));
  await screenshots('overview');
});

await step('plate check: a car inside is ALLOWED', async () => {
  await go('check');
  await page.fill('#check-plate', plate.toLowerCase());
  await page.selectOption('#check-where', 'lot:12');
  await page.click('#check-form button[type="submit"]');
  await page.waitForSelector('.verdict[data-allowed="true"]');
  assert.match(await page.textContent('.verdict .big'), /^ALLOWED/);
  assert.match(await page.textContent('#verdict .rights'), /In the car park/);
  await screenshots('check-allowed');
});

await step('plate check: an unknown plate is NOT ALLOWED (by zone)', async () => {
  await page.fill('#check-plate', 'NOPE999');
  await page.selectOption('#check-where', 'zone:123');
  await page.click('#check-form button[type="submit"]');
  await page.waitForSelector('.verdict[data-allowed="false"]');
  assert.equal(await page.textContent('.verdict .big'), 'NOT ALLOWED');
  await screenshots('check-not-allowed');
});

await step('the exit appears live with its amount', async () => {
  await go('live');
  const exit = await call(GATE, 'POST', '/api/v1/carparks/exits', { facilityNo: 1, carparkNo: 2, ticketNo: plate, ticketType: 4 });
  assert.ok(exit.status === 200 || exit.status === 201, JSON.stringify(exit.body));
  const row = await page.waitForSelector(`#events tr[data-event="${exit.body.eventId}"]`);
  assert.match(await row.textContent(), /TransactionCompleted/);
  assert.equal(await page.$$eval('#events tr', (rows) => rows.length), 2);
  assert.equal(await page.getAttribute('#events tr:first-child', 'data-event'), exit.body.eventId, 'newest first');
  await screenshots('live');
});

await step('search finds a ticket and the stay', async () => {
  const iso = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
  const ticket = await call(PROVIDER, 'POST', '/api/v1/actions/tickets', {
    eventType: 'CreateOrUpdate', ticketId: `t-${plate}`, parkingLotId: 12, licenseNumber: `${plate} T`,
    startDate: iso(Date.now() - 3_600_000), endDate: iso(Date.now() + 7_200_000),
    ticketCost: { amountInclVat: 6100, vatRate: 25, currencyCode: 'SEK' },
  });
  assert.ok(ticket.status < 300, JSON.stringify(ticket.body));
  await go('search');
  assert.ok(!(await page.isVisible('#s-email')), 'the ticket filters only');
  assert.ok(await page.isVisible('#s-provider'));
  await page.fill('#s-plate', `${plate}T`);
  await page.click('#search-form button[type="submit"]');
  await page.waitForFunction((t) => document.querySelector('#results tbody')?.textContent.includes(t), `t-${plate}`);
  await screenshots('search-tickets');
  await page.click('.tabs button[data-kind="transactions"]');
  await page.fill('#s-plate', plate);
  await page.click('#search-form button[type="submit"]');
  await page.waitForFunction((p) => document.querySelector('#results tbody')?.textContent.includes(p), plate);
  assert.match(await page.textContent('#results .pager'), /Page 1 of 1 · 1 transactions/);
  await screenshots('search-transactions');
});

await step('a cut live socket reconnects with a new ticket and misses nothing', async () => {
  await go('live');
  await page.waitForFunction(() => document.querySelector('#live-state').textContent === 'connected');
  const before = monitorSockets.length;
  await monitorSockets[before - 1].close({ code: 1011, reason: 'cut by the test' });
  // An event while the console is away: it must arrive through the next socket.
  const entry = await call(GATE, 'POST', '/api/v1/carparks/entries', { facilityNo: 1, carparkNo: 2, ticketNo: plate, ticketType: 4 });
  assert.equal(entry.status, 201, JSON.stringify(entry.body));
  await page.waitForSelector(`#events tr[data-event="${entry.body.eventId}"]`, { timeout: 20_000 });
  await page.waitForFunction(() => document.querySelector('#live-state').textContent === 'connected');
  assert.ok(monitorSockets.length > before, 'a new socket was opened');
  const url = monitorSockets[monitorSockets.length - 1].url();
  assert.match(url, /[?&]ticket=wst_/, url);
  assert.doesNotMatch(url, /phk_/, 'no token in the URL');
  assert.equal(await page.$$eval(`#events tr[data-event="${entry.body.eventId}"]`, (rows) => rows.length), 1, 'shown once');
  // And out again, as the later steps expect (a car that has just left).
  const exit = await call(GATE, 'POST', '/api/v1/carparks/exits', { facilityNo: 1, carparkNo: 2, ticketNo: plate, ticketType: 4 });
  assert.equal(exit.status, 201, JSON.stringify(exit.body));
  await page.waitForSelector(`#events tr[data-event="${exit.body.eventId}"]`);
});

let providerToken;
await step('create a provider and copy its token', async () => {
  await go('setup');
  await page.click('#view-setup details:nth-of-type(3) > summary');
  await page.fill('#new-providers-name', `console-${plate}`);
  await page.fill('#new-providers-lots', '12');
  await page.click('#form-providers button[type="submit"]');
  await page.waitForSelector('#form-providers .secret-value');
  const shown = await page.inputValue('#form-providers .secret-value');
  await page.click('#form-providers .secret .copy');
  await page.waitForFunction(() => /Copied/.test(document.querySelector('#form-providers .copy-note').textContent));
  providerToken = await page.evaluate(() => navigator.clipboard.readText());
  assert.ok(providerToken.startsWith('phk_'), `clipboard holds ${providerToken}`);
  assert.equal(providerToken, shown);
  const mine = await call(providerToken, 'GET', '/api/v1/actions/tickets');
  assert.equal(mine.status, 200, 'the copied token works');
  await page.waitForFunction((n) => document.querySelector('#list-providers').textContent.includes(n), `console-${plate}`);
});

await step('issue a second token and revoke the first', async () => {
  await page.click(`#list-providers button[aria-label="Tokens of provider console-${plate}"]`);
  await page.waitForSelector('#tokens-providers:not([hidden]) tbody tr');
  assert.equal(await page.$$eval('#tokens-providers tbody tr', (r) => r.length), 1);
  await page.click('#tokens-providers button:text("Issue a new token")');
  await page.waitForSelector('#tokens-providers .secret-value');
  const second = await page.inputValue('#tokens-providers .secret-value');
  await page.waitForFunction(() => document.querySelectorAll('#tokens-providers tbody tr').length === 2);
  page.once('dialog', (d) => d.accept());
  await page.click('#tokens-providers tbody tr:first-child button:text("Revoke")');
  await page.waitForFunction(() => /revoked/.test(document.querySelector('#tokens-providers tbody tr:first-child').textContent));
  assert.equal((await call(providerToken, 'GET', '/api/v1/actions/tickets')).status, 401, 'the revoked token is refused');
  assert.equal((await call(second, 'GET', '/api/v1/actions/tickets')).status, 200, 'the new token works');
  await screenshots('setup-tokens');
});

await step('API errors are shown beside the form and the field', async () => {
  await page.fill('#lot-id', '12');
  await page.fill('#lot-name', 'Twin of 12');
  await page.fill('#lot-zone', '123');
  await page.fill('#lot-tz', 'Europe/Stockholm');
  const dup = await call(OPERATOR, 'POST', '/api/v1/admin/parking-lots', { id: 12, name: 'Twin of 12', zoneCode: 123, timeZone: 'Europe/Stockholm' });
  assert.equal(dup.status, 409);
  await page.click('#lot-submit');
  await page.waitForSelector('#lot-form .form-error:not([hidden])');
  assert.equal(await page.textContent('#lot-form .form-error'), dup.body.message);

  await page.fill('#lot-id', '77');
  await page.fill('#lot-tz', 'Mars/Olympus_Mons');
  const bad = await call(OPERATOR, 'POST', '/api/v1/admin/parking-lots', { id: 77, name: 'Twin of 12', zoneCode: 123, timeZone: 'Mars/Olympus_Mons' });
  assert.equal(bad.status, 422);
  await page.click('#lot-submit');
  await page.waitForSelector('#lot-tz-err');
  assert.equal(await page.textContent('#lot-form .form-error'), bad.body.message);
  assert.equal(await page.textContent('#lot-tz-err'), bad.body.errors.timeZone.join('; '));
  assert.equal(await page.getAttribute('#lot-tz', 'aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'lot-tz', 'focus moves to the field');
  await screenshots('setup');

  await page.fill('#lot-tz', 'Europe/Stockholm');
  await page.fill('#lot-fac', '5');
  await page.fill('#lot-cp', '1');
  await page.fill('#lot-cap', '40');
  await page.click('#lot-submit');
  await page.waitForFunction(() => document.querySelector('#setup-lots').textContent.includes('Twin of 12'));
  assert.equal(await page.$('#lot-tz-err'), null, 'the error goes once fixed');
});

await step('rates, a tenant, a permit definition and an allocation; a permit is found', async () => {
  await page.click('#view-setup details:nth-of-type(2) > summary');
  await page.selectOption('#rate-lot', '12');
  await page.waitForSelector('#setup-rates tr td');
  await page.fill('#rate-no', '2');
  await page.fill('#rate-name', 'Evening');
  await page.fill('#rate-price', '1000');
  await page.fill('#rate-max', '5000');
  await page.click('#rate-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#setup-rates').textContent.includes('Evening'));
  const rates = await call(OPERATOR, 'GET', '/api/v1/admin/parking-lots/12/rates');
  assert.ok(rates.body.some((r) => r.rateNo === 2 && r.pricePerPeriod === 1000 && r.maxPerDay === 5000));

  await page.fill('#new-tenants-name', `Acme ${plate}`);
  await page.click('#form-tenants button[type="submit"]');
  await page.waitForSelector('#form-tenants .secret-value');
  const tenantToken = await page.inputValue('#form-tenants .secret-value');

  await page.click('#view-setup details:nth-of-type(4) > summary');
  await page.fill('#def-name', 'Mornings');
  await page.fill('#def-lots', '12');
  for (const d of ['mon', 'tue', 'wed', 'thu', 'fri']) await page.check(`#def-days input[value="${d}"]`);
  await page.fill('#def-from', '05:00');
  await page.fill('#def-to', '09:00');
  await page.click('#def-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#setup-defs').textContent.includes('Mornings'));
  assert.match(await page.textContent('#setup-defs'), /mon, tue, wed, thu, fri 05:00–09:00/);

  await page.selectOption('#al-tenant', { label: `Acme ${plate}` });
  await page.selectOption('#al-def', { label: 'Mornings' });
  await page.fill('#al-spaces', '5');
  await page.fill('#al-count', '3');
  await page.fill('#al-from', '2025-01-01');
  await page.fill('#al-to', '2030-12-31');
  await page.click('#alloc-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#setup-allocs').textContent.includes('0 of 3'));
  const allocation = (await call(tenantToken, 'GET', '/permit/v3/tenant_permit_allocations')).body[0];
  const permit = await call(tenantToken, 'POST', '/permit/v3/end_user_permit', {
    email: 'driver@example.com', permit_allocation_id: allocation.permit_allocation_id, valid_to: '2029-12-31',
  });
  assert.ok(permit.status < 300, JSON.stringify(permit.body));
  await screenshots('setup-permits');

  await go('search');
  await page.click('.tabs button[data-kind="permits"]');
  await page.fill('#s-email', 'driver@example.com');
  await page.click('#search-form button[type="submit"]');
  await page.waitForFunction(() => document.querySelector('#results tbody')?.textContent.includes('driver@example.com'));
  assert.match(await page.textContent('#results tbody'), /Mornings/);
  await screenshots('search-permits');
});

await step('a reload keeps the session; Tab reaches the skip link and the views', async () => {
  await page.goto(`${BASE}/#overview`);
  await page.reload();
  await page.waitForSelector('#lots [data-lot="12"]');
  assert.equal(await page.textContent('#role-badge'), 'Operator');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.dataset.view), 'live');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#view-live:not([hidden])');
});

await step('sign-out clears sessionStorage', async () => {
  await page.click('#signout');
  await page.waitForSelector('#view-signin:not([hidden])');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  assert.equal(await page.$$eval('#events tr', (r) => r.length), 0, 'nothing left of the session');
  await page.reload();
  await page.waitForSelector('#view-signin:not([hidden])');
});

if (ENFORCEMENT) {
  await step('enforcement signs in without the operator views', async () => {
    await page.fill('#signin-token', ENFORCEMENT);
    await page.click('#signin-form button[type="submit"]');
    await page.waitForSelector('#lots [data-lot="12"]');
    assert.equal(await page.textContent('#role-badge'), 'Enforcement');
    assert.ok(!(await page.isVisible('#nav a[data-view="setup"]')), 'no Setup');
    assert.ok(!(await page.isVisible('#nav a[data-view="live"]')), 'no Live');
    await page.goto(`${BASE}/#setup`);
    await page.waitForSelector('#view-overview:not([hidden])');
    await go('search');
    assert.ok(!(await page.isVisible('.tabs button[data-kind="permits"]')), 'no permit search');
    assert.ok(!(await page.isVisible('#s-provider')), 'no provider filter');
    await page.waitForFunction(() => /1 tickets/.test(document.querySelector('#results .pager')?.textContent));
    await go('check');
    await page.fill('#check-plate', plate);
    await page.selectOption('#check-where', 'lot:12');
    await page.click('#check-form button[type="submit"]');
    await page.waitForSelector('.verdict[data-allowed="true"]');
    assert.equal(await page.textContent('.verdict .big'), 'ALLOWED (grace)', 'just left: grace');
    await screenshots('enforcement-check');
    await page.click('#signout');
    await page.waitForSelector('#view-signin:not([hidden])');
  });
}

await step('no script errors or CSP violations in the page', async () => {
  assert.deepEqual(pageErrors.filter((e) => !/401|403|404|409|422/.test(e)), []);
});

await context.close();
rmSync(userDataDir, { recursive: true, force: true });
console.log(`${failed ? 'FAILED' : 'passed'} ${BACKEND} console test in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
