// Two ways the gate's single sign-on lets the wrong person in (issue 15), through the API.
//
// 1. A ticket outlives the decision it was made on. /gate/sso checks that the person is on an
//    invite app's list and issues a 60-second ticket; /.petri/sso redeems it without asking
//    again and signs a cookie with the app's CURRENT key version. So an invitee removed
//    between the ticket and its redemption (the removal that is meant to lock them out "on
//    their next request" and rotates the key) is let straight back in with a fresh cookie
//    under the new key. Fix: bind the ticket to the key version (or re-run gateAdmission
//    at redemption) and refuse it when that changed.
//
// 2. Login CSRF by cookie tossing. The API host (petri.localhost by default) is the parent
//    domain of every app host, so a tenant's app can set `petri_session=<its owner's own
//    session>; Domain=petri.localhost; Path=/gate`. The browser sends the longer-path cookie
//    first, and signedIn() (like webSessionOf for /v1) takes the FIRST session that
//    authenticates: the victim, signed in as herself, visits another app and is signed in to
//    it as the attacker (her visits, consents and what she types land under the attacker's
//    identity; with Path=/v1 the dashboard too). Fix: a cookie a sibling host cannot set
//    (`__Host-` prefix, which needs HTTPS), or when two different people's sessions arrive
//    together treat the request as signed in by neither (and clear them), or serve apps
//    from a domain that is not the API host's parent.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { createWebSession, SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { GATE_COOKIE, PENDING_COOKIE } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';

const API = 'petri.test:8080';
const host = (app: string) => `${app}.petri.test:8080`;
const CLICK = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };

let dir: string;
let db: Store;
let api: FastifyInstance;
let ownerToken: string;
const sessions: Record<string, string> = {};

const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
  api.inject({ method, url, payload, headers: { authorization: `Bearer ${ownerToken}` } });
const get = (h: string, url: string, cookie = '') =>
  api.inject({ method: 'GET', url, headers: { host: h, ...(cookie ? { cookie } : {}) } });
function setCookies(res: LightMyRequestResponse): Map<string, string> {
  const raw = res.headers['set-cookie'];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return new Map(list.map((c) => [c.split('=')[0] ?? '', c]));
}
const cookieIn = (line: string | undefined) => line?.split(';')[0]?.split('=').slice(1).join('=') ?? '';
const ticketUrl = async (app: string, cookie: string) => {
  const res = await get(API, `/gate/sso?app=${app}&next=%2F`, cookie);
  assert.equal(res.statusCode, 303, res.body);
  const url = new URL(res.headers.location as string);
  assert.equal(url.pathname, '/.petri/sso');
  return `${url.pathname}${url.search}`;
};
/** The visitor the gate lets through after a ticket: the cookie's or the pending state's sub. */
const visitorAfter = async (app: string, ticket: string) => {
  const res = await get(host(app), ticket);
  const jar = setCookies(res);
  const token = cookieIn(jar.get(GATE_COOKIE) ?? jar.get(PENDING_COOKIE));
  if (!token) return { status: res.statusCode, sub: undefined, gate: false };
  const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
  return {
    status: res.statusCode,
    sub: claims.sub as string,
    gate: jar.has(GATE_COOKIE),
    pending: jar.get(PENDING_COOKIE),
  };
};

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack15-sso-'));
  db = await openStore(new DataPaths(dir).store);
  const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
  ownerToken = await issueToken(db, ana.id, 'test');
  api = await buildTestApi(dir, db, { domain: 'petri.test', apiHost: 'petri.test', httpPort: 8080 });
  assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
  for (const name of ['club', 'shop']) {
    assert.equal((await call('POST', '/v1/apps', { name, team: 'labs', description: name })).statusCode, 201);
  }
  assert.equal((await call('PUT', '/v1/apps/club/audience', { audience: 'invite' })).statusCode, 200);
  assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' })).statusCode, 200);
  for (const who of ['bob', 'vic', 'mallory']) {
    const user = await createUser(db, who, 'member', { email: `${who}@example.org` });
    sessions[who] = `${SESSION_COOKIE}=${(await createWebSession(db, user.id)).cookie}`;
  }
});
after(async () => {
  await api?.close();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('an invitee removed after their ticket was issued is not let in by redeeming it', async () => {
  const invited = await call('POST', '/v1/apps/club/audience/invitees', { emails: ['bob@example.org'] });
  assert.equal(invited.statusCode, 200, invited.body);
  // Bob consented once (a returning visitor)...
  const first = await visitorAfter('club', await ticketUrl('club', sessions.bob!));
  assert.equal(first.sub, 'bob@example.org');
  const notice = await get(
    host('club'),
    '/.petri/gate?next=%2F',
    `${PENDING_COOKIE}=${cookieIn(first.pending)}`,
  );
  const csrf = /name="csrf" value="([^"]+)"/.exec(notice.body)?.[1] ?? '';
  const consent = await api.inject({
    method: 'POST',
    url: '/.petri/consent',
    headers: {
      host: host('club'),
      cookie: `${PENDING_COOKIE}=${cookieIn(first.pending)}`,
      'content-type': 'application/x-www-form-urlencoded',
      ...CLICK,
    },
    payload: new URLSearchParams({ csrf, next: '/', choice: 'continue' }).toString(),
  });
  assert.equal(consent.statusCode, 303, consent.body);
  // ...his cookie expires; /gate/sso gives him a ticket; a moment later the owner removes him.
  const ticket = await ticketUrl('club', sessions.bob!);
  const removed = await call('DELETE', '/v1/apps/club/audience/invitees/bob@example.org');
  assert.equal(removed.statusCode, 200, removed.body);
  const after = await visitorAfter('club', ticket);
  assert.ok(
    !after.gate && after.sub === undefined,
    `bob, removed from the list, got ${after.gate ? 'a gate cookie under the new key version' : 'a pending state'} (${after.status}) from a ticket issued before the removal`,
  );
});

test("a session cookie tossed by an app host does not sign the visitor in as the app's owner", async () => {
  // Vic is signed in (her own host-only session). Mallory's app set her own session for
  // Domain=petri.test; Path=/gate, so Vic's browser sends it first on /gate/sso.
  const cookie = `${sessions.mallory}; ${sessions.vic}`;
  const res = await get(API, '/gate/sso?app=shop&next=%2F', cookie);
  if (res.statusCode === 303 && String(res.headers.location).includes('/.petri/sso')) {
    const url = new URL(res.headers.location as string);
    const who = await visitorAfter('shop', `${url.pathname}${url.search}`);
    assert.notEqual(
      who.sub,
      'mallory@example.org',
      "Vic's visit to shop was signed in as mallory, whose app tossed the cookie",
    );
  }
  // And the dashboard's API: Path=/v1 puts Vic's browser in mallory's account.
  const session = await get(API, '/v1/session', cookie);
  assert.doesNotMatch(session.body, /mallory/, `GET /v1/session answered mallory's session: ${session.body}`);
});

test('several session cookies sign in nobody: /gate/sso sends to /login and expires them, /v1 says why', async () => {
  const cookie = `${sessions.mallory}; ${sessions.vic}`;
  const res = await get(API, '/gate/sso?app=shop&next=%2F', cookie);
  assert.equal(res.statusCode, 303);
  assert.match(String(res.headers.location), /^\/login\?next=/);
  const set = [res.headers['set-cookie'] ?? []].flat().map(String);
  assert.ok(
    set.some((c) => /^petri_session=; Domain=petri\.test; Path=\/gate;/.test(c)),
    `the tossed copy (Path=/gate) is expired: ${set.join('\n')}`,
  );
  assert.match(set.at(-1) ?? '', /^petri_session=; Path=\/; Max-Age=0/);
  const session = await get(API, '/v1/session', cookie);
  assert.equal(session.statusCode, 401);
  assert.match(session.body, /several sign-ins/);
  // One of them alone still works.
  assert.equal((await get(API, '/v1/session', sessions.vic!)).statusCode, 200);
});

test('over https only __Host-petri_session is read, which another host cannot set', async () => {
  const value = sessions.vic!.split('=').slice(1).join('=');
  const over = (cookie: string) =>
    api.inject({
      method: 'GET',
      url: '/v1/session',
      headers: { host: API, cookie, 'x-forwarded-proto': 'https' },
    });
  assert.equal((await over(`petri_session=${value}`)).statusCode, 401);
  const ok = await over(`__Host-petri_session=${value}`);
  assert.equal(ok.statusCode, 200, ok.body);
  assert.match(ok.body, /vic/);
});
