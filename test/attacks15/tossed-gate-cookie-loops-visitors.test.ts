// A hostile tenant locks every visitor of every other gated app out (issue 15).
//
// Apps are served at NAME.<domain> and the API at <domain> (petri.localhost by default), so
// an app's own responses may set cookies for the parent domain: `Set-Cookie: petri_gate=x;
// Domain=petri.localhost; Path=/`. A browser then sends that cookie to every app host too,
// after the host's own petri_gate (same path length, created later). The router reads the
// cookie with req.cook(petri_gate), which is the LAST occurrence: the tossed junk, so a
// visitor with a perfectly valid cookie for the app is sent to the gate. The gate reads
// every value (cookieValues + firstValid), finds the valid one and sends the visitor
// "straight on" to next: back to the router, which sends them to the gate again. An endless
// redirect loop for anyone who ever opened the tenant's app, on every gated app, until they
// clear their cookies.
//
// Fix: let the router accept any valid occurrence (or refuse to decide on the last one:
// e.g. try the first and the last, or have the gate expire same-named cookies of the parent
// domain and re-issue its own when it sees more than one), and never answer "through
// already" while the router would not let the same Cookie header through.
//
// Here: the gate's side (it expires the parent domain's copies and sets its own anew, so the
// browser's next request carries the valid cookie last). The browser proof, through the
// real HAProxy and the real gate, is browser-tossed-gate-cookie.test.ts. The router's side
// (reading any valid occurrence) is not in this file.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { GATE_COOKIE, gateKey, signGateCookie } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from '../api/test-api.js';

let dir: string;
let db: Store;
let api: FastifyInstance;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack15-toss-'));
  db = await openStore(new DataPaths(dir).store);
});

after(async () => {
  await api?.close();
  await db?.destroy();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the gate never sends a visitor straight back to a request the router will refuse (no redirect loop)', async () => {
  // The same Cookie header, at the gate's own page: it answers "through already".
  const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
  const token = await issueToken(db, ana.id, 'test');
  api = await buildTestApi(dir, db, { domain: 'petri.test', httpPort: 8080 });
  const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
  assert.equal((await call('POST', '/v1/apps', { name: 'shop', team: 'labs' })).statusCode, 201);
  assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'invite' })).statusCode, 200);
  const row = await db.selectFrom('apps').selectAll().where('name', '=', 'shop').executeTakeFirstOrThrow();
  const key = gateKey(testSecrets().derive('audience gate'), 'cookie', row.id, row.audience_key_version);
  const valid = signGateCookie(key, {
    app: 'shop',
    sub: 'ana@example.org',
    name: 'Ana',
    nv: row.notice_version,
    kv: row.audience_key_version,
  });
  const res = await api.inject({
    method: 'GET',
    url: '/.petri/gate?next=%2F',
    headers: {
      host: 'shop.petri.test:8080',
      cookie: `${GATE_COOKIE}=${valid}; ${GATE_COOKIE}=tossed-by-evil`,
    },
  });
  // The router (test above) sent this very Cookie header here; answering 303 to `/` with no
  // new cookie sends the browser back into the router's refusal, forever.
  assert.ok(
    !(res.statusCode === 303 && res.headers.location === '/' && res.headers['set-cookie'] === undefined),
    `the gate sends the visitor straight back to / with the same cookies: ${res.statusCode} ${res.headers.location}`,
  );
  // It expires the parent domain's copy and sets this host's own anew (the newest, sent last).
  const set = [res.headers['set-cookie'] ?? []].flat().map(String);
  assert.ok(
    set.some((c) => c.startsWith(`${GATE_COOKIE}=;`) && /Domain=petri\.test/.test(c) && /Max-Age=0/.test(c)),
    set.join('\n'),
  );
  assert.equal(set.at(-1)?.startsWith(`${GATE_COOKIE}=${valid};`), true, set.join('\n'));
  assert.doesNotMatch(set.at(-1) ?? '', /Domain=/);
});
