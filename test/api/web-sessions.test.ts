// Signing in on the web (the dashboard's and the gate's sessions): the petri_session cookie
// from a password or from single sign-on against a real OIDC provider, /v1 with the cookie
// and its X-CSRF-Token, the session's ends (idle, absolute, sign-out, a disabled account),
// `next` that never leaves the API host, and forms posted from another origin (an app's
// host is the same site as the API's).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { createWebSession, SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { hashPassword } from '../../src/identity/passwords.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { CLIENT_ID, CLIENT_SECRET, TestBrowser, TestOidcProvider } from '../identity/oidc-provider.js';
import { buildTestApi } from './test-api.js';

const API_HOST = 'petri.test:8080';

/** name -> the Set-Cookie line an answer has for it. */
function setCookies(res: LightMyRequestResponse): Map<string, string> {
  const raw = res.headers['set-cookie'];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return new Map(list.map((c) => [c.split('=')[0] ?? '', c]));
}
const cookieIn = (line: string | undefined) => line?.split(';')[0]?.split('=').slice(1).join('=') ?? '';

describe('web sessions on the API host', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let provider: TestOidcProvider;
  let anaId: number;
  let adminToken: string;

  const get = (url: string, cookie = '', headers: Record<string, string> = {}) =>
    api.inject({
      method: 'GET',
      url,
      headers: { host: API_HOST, ...(cookie ? { cookie } : {}), ...headers },
    });
  const form = (url: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    api.inject({
      method: 'POST',
      url,
      headers: { host: API_HOST, 'content-type': 'application/x-www-form-urlencoded', ...headers },
      payload: new URLSearchParams(fields).toString(),
    });
  const signIn = async (login = 'ana@example.org', password = 'correct horse battery') => {
    const res = await form('/login/password', { login, password, next: '/apps' });
    assert.equal(res.statusCode, 303, res.body);
    return `${SESSION_COOKIE}=${cookieIn(setCookies(res).get(SESSION_COOKIE))}`;
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-web-'));
    db = await openStore(new DataPaths(dir).store);
    provider = await TestOidcProvider.start([
      { sub: 'oli', email: 'oli@example.org', email_verified: true, name: 'Oli', groups: ['staff'] },
    ]);
    provider.allowRedirect(`http://${API_HOST}/login/oidc/callback`);
    const ana = await createUser(db, 'ana', 'member', {
      email: 'ana@example.org',
      password_hash: await hashPassword('correct horse battery'),
    });
    anaId = ana.id;
    const admin = await createUser(db, 'root', 'admin', { email: 'root@example.org' });
    adminToken = await issueToken(db, admin.id, 'test');
    api = await buildTestApi(dir, db, {
      domain: 'petri.test',
      apiHost: 'petri.test',
      httpPort: 8080,
      identity: {
        oidc: {
          issuer: provider.issuer,
          clientId: CLIENT_ID,
          clientSecret: CLIENT_SECRET,
          allowedGroups: ['staff'],
        },
      },
    });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    await provider?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the sign-in page offers single sign-on and a password form, and loads nothing from elsewhere', async () => {
    const res = await get('/login?next=%2Fapps');
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    assert.match(res.body, /href="\/login\/oidc\?next=%2Fapps"/);
    assert.match(res.body, /<label for="login">/);
    assert.match(res.body, /<label for="password">/);
    assert.doesNotMatch(res.body, /<script|https?:\/\//);
  });

  test('a password sign-in sets an HttpOnly, SameSite=Lax cookie whose hash alone is stored', async () => {
    const res = await form('/login/password', {
      login: 'ana@example.org',
      password: 'correct horse battery',
      next: '/apps?x=1',
    });
    assert.equal(res.statusCode, 303, res.body);
    assert.equal(res.headers.location, '/apps?x=1');
    const line = setCookies(res).get(SESSION_COOKIE) ?? '';
    assert.match(
      line,
      /^petri_session=ps_[A-Za-z0-9_-]{43}; Path=\/; Max-Age=604800; HttpOnly; SameSite=Lax$/,
    );
    const rows = await db.selectFrom('web_sessions').selectAll().where('user_id', '=', anaId).execute();
    assert.ok(rows.length >= 1);
    assert.ok(rows.every((r) => !line.includes(r.token_hash)));
    // Over https (the router says so), the cookie is Secure too.
    const tls = await form(
      '/login/password',
      { login: 'ana@example.org', password: 'correct horse battery' },
      { 'x-forwarded-proto': 'https' },
    );
    // ...and named __Host-petri_session, which no other host can set.
    assert.match(setCookies(tls).get('__Host-petri_session') ?? '', /; Path=\/; .*; Secure$/);
  });

  test('a wrong password is refused on the page, which keeps the name but never the password', async () => {
    const res = await form('/login/password', {
      login: 'ana@example.org',
      password: 'wrong one',
      next: '/x',
    });
    assert.equal(res.statusCode, 401);
    assert.match(res.body, /role="alert"/);
    assert.match(res.body, /invalid e-mail or password/);
    assert.match(res.body, /value="ana@example.org"/);
    assert.doesNotMatch(res.body, /wrong one/);
    assert.equal(setCookies(res).has(SESSION_COOKIE), false);
  });

  test('a sign-in or sign-out posted from another origin (an app on a sibling host) is refused', async () => {
    for (const headers of <Record<string, string>[]>[
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site' },
      { origin: 'http://evil.petri.test:8080' },
    ]) {
      const res = await form(
        '/login/password',
        { login: 'ana@example.org', password: 'correct horse battery' },
        headers,
      );
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
      assert.equal(setCookies(res).has(SESSION_COOKIE), false);
    }
    const cookie = await signIn();
    const out = await api.inject({
      method: 'POST',
      url: '/logout',
      headers: { host: API_HOST, cookie, 'sec-fetch-site': 'same-site' },
    });
    assert.equal(out.statusCode, 403);
    assert.equal((await get('/v1/session', cookie)).statusCode, 200);
  });

  test('next is only ever a path on the API host, and never the sign-in page itself', async () => {
    for (const [next, expected] of [
      ['//evil.example/x', '/'],
      ['https://evil.example/', '/'],
      ['/\\evil.example', '/'],
      ['/%0d%0aSet-Cookie:%20x=1', '/%0d%0aSet-Cookie:%20x=1'],
      ['/login?next=/login', '/'],
      ['/gate/sso?app=shop&next=%2F', '/gate/sso?app=shop&next=%2F'],
    ] as const) {
      const res = await form('/login/password', {
        login: 'ana@example.org',
        password: 'correct horse battery',
        next,
      });
      assert.equal(res.statusCode, 303, `${next}: ${res.body}`);
      assert.equal(res.headers.location, expected, next);
    }
    // Signed in already: /login goes straight on (to a path of this host).
    const cookie = await signIn();
    const again = await get(`/login?next=${encodeURIComponent('//evil.example')}`, cookie);
    assert.equal(again.statusCode, 303);
    assert.equal(again.headers.location, '/');
  });

  test('GET /v1/session answers who and the CSRF token; changes need that token, reads do not', async () => {
    const cookie = await signIn();
    const session = await get('/v1/session', cookie);
    assert.equal(session.statusCode, 200, session.body);
    const body = session.json() as { user: { email: string; role: string }; csrf: string; expiresAt: string };
    assert.equal(body.user.email, 'ana@example.org');
    assert.equal(body.user.role, 'member');
    assert.match(body.csrf, /^[A-Za-z0-9_-]{32}$/);
    assert.equal((await get('/v1/apps', cookie)).statusCode, 200);
    const change = (headers: Record<string, string>) =>
      api.inject({
        method: 'POST',
        url: '/v1/teams',
        headers: { host: API_HOST, cookie, ...headers },
        payload: { name: `web-${Math.random().toString(36).slice(2, 8)}` },
      });
    const without = await change({});
    assert.equal(without.statusCode, 403);
    assert.match(without.json().error.message, /X-CSRF-Token/);
    const other = await signIn();
    const otherCsrf = (await get('/v1/session', other)).json().csrf as string;
    const stale = await change({ 'x-csrf-token': otherCsrf });
    assert.equal(stale.statusCode, 403);
    assert.match(stale.json().error.message, /not this session's/);
    const ok = await change({ 'x-csrf-token': body.csrf });
    assert.equal(ok.statusCode, 201, ok.body);
    // A bearer token needs no CSRF token, and wins over a cookie sent with it.
    const bearer = await api.inject({
      method: 'GET',
      url: '/v1/session',
      headers: { host: API_HOST, cookie, authorization: `Bearer ${adminToken}` },
    });
    assert.equal(bearer.json().user.email, 'root@example.org');
    assert.equal(bearer.json().csrf, null);
  });

  test('a WebSocket with the session cookie must come from the API host itself', async () => {
    const cookie = await signIn();
    const upgrade = (origin: string) =>
      get('/v1/session', cookie, { upgrade: 'websocket', connection: 'upgrade', origin });
    const res = await upgrade('http://evil.petri.test:8080');
    assert.equal(res.statusCode, 403);
    assert.match(res.json().error.message, /WebSocket/);
    assert.equal((await upgrade(`http://${API_HOST}`)).statusCode, 200);
  });

  test('a session ends when idle for 12 h, 7 days after sign-in, at sign-out, and for a disabled account', async () => {
    const idle = await createWebSession(db, anaId);
    const old = new Date(Date.now() - 13 * 3600_000).toISOString();
    await db
      .updateTable('web_sessions')
      .set({ last_used_at: old })
      .where('id', '=', idle.session.id)
      .execute();
    const idleRes = await get('/v1/session', `${SESSION_COOKIE}=${idle.cookie}`);
    assert.equal(idleRes.statusCode, 401);
    assert.match(idleRes.json().error.message, /session ended/);

    const aged = await createWebSession(db, anaId);
    await db
      .updateTable('web_sessions')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where('id', '=', aged.session.id)
      .execute();
    assert.equal((await get('/v1/session', `${SESSION_COOKIE}=${aged.cookie}`)).statusCode, 401);

    const cookie = await signIn();
    const out = await api.inject({ method: 'POST', url: '/logout', headers: { host: API_HOST, cookie } });
    assert.equal(out.statusCode, 303);
    assert.equal(out.headers.location, '/login');
    assert.match(setCookies(out).get(SESSION_COOKIE) ?? '', /=; Path=\/; Max-Age=0/);
    // Each Set-Cookie once: repeated lines once made a sign-out HAProxy refused (502).
    const lines = [out.headers['set-cookie'] ?? []].flat();
    assert.equal(new Set(lines).size, lines.length, lines.join('\n'));
    assert.ok(lines.length <= 12, `${lines.length} Set-Cookie lines`);
    assert.equal((await get('/v1/session', cookie)).statusCode, 401);

    const bob = await createUser(db, 'bob', 'member', { email: 'bob@example.org' });
    const live = await createWebSession(db, bob.id);
    assert.equal((await get('/v1/session', `${SESSION_COOKIE}=${live.cookie}`)).statusCode, 200);
    const disabled = await api.inject({
      method: 'POST',
      url: '/v1/users/bob@example.org/disable',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(disabled.statusCode, 200, disabled.body);
    assert.equal((await get('/v1/session', `${SESSION_COOKIE}=${live.cookie}`)).statusCode, 401);
  });

  test('single sign-on: the provider answers the API host, which makes a session and goes on to next', async () => {
    const start = await get(`/login/oidc?next=${encodeURIComponent('/gate/sso?app=x&next=%2F')}`);
    assert.equal(start.statusCode, 303, start.body);
    const authorize = new URL(start.headers.location as string);
    assert.equal(authorize.origin, provider.issuer);
    assert.equal(authorize.searchParams.get('redirect_uri'), `http://${API_HOST}/login/oidc/callback`);
    assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
    const flowLine = setCookies(start).get('petri_login_flow') ?? '';
    assert.match(flowLine, /; Path=\/login\/oidc; Max-Age=600; HttpOnly; SameSite=Lax$/);
    const flow = `petri_login_flow=${cookieIn(flowLine)}`;

    const end = await new TestBrowser('oli').run(
      authorize.href,
      (u) => u.pathname === '/login/oidc/callback',
    );
    assert.ok(end.url, end.page);
    const callback = `${end.url.pathname}${end.url.search}`;
    // Another browser (a login CSRF: the attacker's callback opened in the victim's browser)
    // has no flow cookie: refused, and it does not use the flow up.
    const stranger = await get(callback);
    assert.equal(stranger.statusCode, 401);
    assert.match(stranger.body, /not started in this browser/);
    const done = await get(callback, flow);
    assert.equal(done.statusCode, 303, done.body);
    assert.equal(done.headers.location, '/gate/sso?app=x&next=%2F');
    const cookie = `${SESSION_COOKIE}=${cookieIn(setCookies(done).get(SESSION_COOKIE))}`;
    const me = await get('/v1/session', cookie);
    assert.equal(me.json().user.email, 'oli@example.org');
    assert.equal(me.json().user.provider, 'oidc');
    // The same answer twice: the flow was used up.
    const replay = await get(callback, flow);
    assert.equal(replay.statusCode, 401);
    assert.equal(setCookies(replay).has(SESSION_COOKIE), false);
  });

  test('single sign-on starts on the API host the provider returns to', async () => {
    const res = await api.inject({
      method: 'GET',
      url: '/login/oidc?next=%2Fx',
      headers: { host: '127.0.0.1:4000' },
    });
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers.location, `http://${API_HOST}/login/oidc?next=%2Fx`);
  });
});
