// The cookie tossing of tossed-gate-cookie-loops-visitors.test.ts in a real browser (Debian's
// Chromium via playwright-core), through the real HAProxy and the real gate: a visitor who
// holds a valid gate cookie for `lab` opens the tenant's public app `evil` once, whose page's
// script sets `petri_gate=junk; domain=petri.localhost; path=/`. From then on Chromium
// sends lab.petri.localhost both cookies, the tossed one last, and the router (which reads the
// last) sends the visitor to the gate. The gate must end that: it expires the parent domain's
// copy and sets the host's own cookie anew, so the visitor is back at the app, not in a loop.
//
// (The attacker's second test, a cookie bomb for the parent domain, is not here: only serving
// apps from a domain that is not the API host's parent ends it; README, Audiences.)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { GATE_COOKIE, gateKey, signGateCookie } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from '../api/test-api.js';
import { makeRouterWorld, type RouterWorld } from '../router/helpers.js';

let world: RouterWorld;
let apps: http.Server;
let browser: Browser;
let dir: string;
let db: Store;
let api: FastifyInstance;
let labCookie: string;

const listen = async (server: http.Server) => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

before(async () => {
  apps = http.createServer((req, res) => {
    if (req.headers.host?.startsWith('evil.')) {
      // The router turns an app's Set-Cookie of petri_* into a harmless one; the page's own
      // script can still toss one for the parent domain.
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<h1>a harmless-looking page</h1><script>document.cookie = '${GATE_COOKIE}=junk; domain=petri.localhost; path=/'</script>`,
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<h1>lab app for ${req.headers['x-petri-user']}</h1>`);
  });
  const appsPort = await listen(apps);
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack15-browser-'));
  db = await openStore(new DataPaths(dir).store);
  const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
  const token = await issueToken(db, ana.id, 'test');
  api = await buildTestApi(dir, db, { domain: 'petri.localhost', apiHost: 'petri.localhost' });
  const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
  assert.equal((await call('POST', '/v1/apps', { name: 'lab', team: 'labs' })).statusCode, 201);
  assert.equal((await call('PUT', '/v1/apps/lab/audience', { audience: 'staff' })).statusCode, 200);
  const row = await db.selectFrom('apps').selectAll().where('name', '=', 'lab').executeTakeFirstOrThrow();
  const key = gateKey(testSecrets().derive('audience gate'), 'cookie', row.id, row.audience_key_version);
  labCookie = signGateCookie(key, {
    app: 'lab',
    sub: 'ana@example.org',
    name: 'Ana',
    nv: row.notice_version,
    kv: row.audience_key_version,
  });
  await api.listen({ host: '127.0.0.1', port: 0 });
  const apiPort = (api.server.address() as AddressInfo).port;
  world = await makeRouterWorld({ apiServer: { address: '127.0.0.1', port: apiPort } });
  await world.router.start();
  const server = (app: string) => [{ id: `${app}-web.1`, address: '127.0.0.1', port: appsPort }];
  await world.router.apply([
    { host: 'lab.petri.localhost', app: 'lab', servers: server('lab'), gate: { key } },
    { host: 'evil.petri.localhost', app: 'evil', servers: server('evil') },
  ]);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
});
after(async () => {
  await browser?.close();
  await world?.cleanup();
  apps?.closeAllConnections();
  apps?.close();
  await api?.close();
  await db?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('opening another app once does not lock the visitor out of a gated app (the gate ends the loop)', async () => {
  const port = world.opts.httpPort;
  const context = await browser.newContext();
  // The visitor's host-only gate cookie, as /.petri/consent sets it.
  await context.addCookies([
    { name: GATE_COOKIE, value: labCookie, url: `http://lab.petri.localhost:${port}/`, httpOnly: true },
  ]);
  const page = await context.newPage();
  await page.goto(`http://lab.petri.localhost:${port}/`);
  assert.match((await page.locator('h1').textContent()) ?? '', /lab app for ana@example.org/);
  await page.goto(`http://evil.petri.localhost:${port}/`);
  const tossed = await context.cookies(`http://lab.petri.localhost:${port}/`);
  assert.equal(tossed.filter((c) => c.name === GATE_COOKIE).length, 2, 'evil tossed its cookie');
  const res = await page.goto(`http://lab.petri.localhost:${port}/`);
  assert.equal(res?.status(), 200);
  assert.match(
    (await page.locator('h1').textContent()) ?? '',
    /lab app for ana@example.org/,
    `after evil.petri.localhost tossed a cookie, the visitor ended at ${page.url()}`,
  );
  // The tossed copy is gone: the next request goes straight to the app.
  const left = (await context.cookies(`http://lab.petri.localhost:${port}/`)).filter(
    (c) => c.name === GATE_COOKIE,
  );
  assert.deepEqual(
    left.map((c) => [c.domain, c.value === labCookie]),
    [['lab.petri.localhost', true]],
  );
});
