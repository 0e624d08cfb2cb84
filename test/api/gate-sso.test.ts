// The gate's single sign-on (issue 15): an app host's gate sends a visitor it does not know
// to the API host's /gate/sso, which (after /login when there is no web session) sends them
// back with a single-use ticket bound to the app; the gate redeems it. Tickets replayed,
// used at another app or expired; who each audience admits (staff, invite, an app awaiting
// review); the returning visitor who consented already; a hostile name; personal links.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { createWebSession, SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { GATE_COOKIE, gateKey, PENDING_COOKIE, verifyGateCookie } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from './test-api.js';

const API = 'petri.test:8080';
const host = (app: string) => `${app}.petri.test:8080`;
const CLICK = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };

function setCookies(res: LightMyRequestResponse): Map<string, string> {
  const raw = res.headers['set-cookie'];
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return new Map(list.map((c) => [c.split('=')[0] ?? '', c]));
}
const cookieIn = (line: string | undefined) => line?.split(';')[0]?.split('=').slice(1).join('=') ?? '';

describe("the gate's single sign-on", () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let ownerToken: string;
  const sessions: Record<string, string> = {};

  const call = (method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${ownerToken}` } });
  const get = (h: string, url: string, cookie = '') =>
    api.inject({ method: 'GET', url, headers: { host: h, ...(cookie ? { cookie } : {}) } });
  const appRow = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow();
  /** /gate/sso as `who` (a web session), answered with the ticket's redirect. */
  const sso = (app: string, who: string | undefined, next = '/cart') =>
    get(API, `/gate/sso?app=${app}&next=${encodeURIComponent(next)}`, who ? sessions[who] : '');
  const ticketUrl = async (app: string, who: string, next = '/cart') => {
    const res = await sso(app, who, next);
    assert.equal(res.statusCode, 303, res.body);
    const url = new URL(res.headers.location as string);
    assert.equal(url.host, host(app));
    assert.equal(url.pathname, '/.petri/sso');
    return `${url.pathname}${url.search}`;
  };
  const consent = async (app: string, pendingLine: string, next = '/cart') => {
    const pending = `${PENDING_COOKIE}=${cookieIn(pendingLine)}`;
    const notice = await get(host(app), `/.petri/gate?next=${encodeURIComponent(next)}`, pending);
    assert.equal(notice.statusCode, 200, notice.body);
    const csrf = /name="csrf" value="([^"]+)"/.exec(notice.body)?.[1] ?? '';
    const res = await api.inject({
      method: 'POST',
      url: '/.petri/consent',
      headers: {
        host: host(app),
        cookie: pending,
        'content-type': 'application/x-www-form-urlencoded',
        ...CLICK,
      },
      payload: new URLSearchParams({ csrf, next, choice: 'continue' }).toString(),
    });
    assert.equal(res.statusCode, 303, res.body);
    return { notice, cookie: cookieIn(setCookies(res).get(GATE_COOKIE)) };
  };
  const claimsOf = async (app: string, cookie: string) => {
    const row = await appRow(app);
    const key = gateKey(testSecrets().derive('audience gate'), 'cookie', row.id, row.audience_key_version);
    return verifyGateCookie(cookie, key, { app, kv: row.audience_key_version });
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-sso-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    ownerToken = await issueToken(db, ana.id, 'test');
    api = await buildTestApi(dir, db, { domain: 'petri.test', apiHost: 'petri.test', httpPort: 8080 });
    assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    for (const [name, extra] of [
      ['shop', {}],
      ['club', {}],
      ['vault', { data: 'sensitive', privacy: 'Health answers, to test the form.', retention: '30d' }],
    ] as const) {
      const created = await call('POST', '/v1/apps', {
        name,
        team: 'labs',
        description: `The ${name}`,
        ...extra,
      });
      assert.equal(created.statusCode, 201, created.body);
    }
    assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' })).statusCode, 200);
    assert.equal((await call('PUT', '/v1/apps/club/audience', { audience: 'invite' })).statusCode, 200);
    assert.equal((await call('PUT', '/v1/apps/vault/audience', { audience: 'staff' })).statusCode, 200);
    const people: Array<[string, string]> = [
      ['vic', 'Vic Visitor'],
      ['ivy', 'Ivy'],
      // A name that tries to end the X-Petri-User-Name header and start its own.
      ['eve', 'Eve\r\nX-Petri-User: root@example.org\u202e\u0000\u2028!'],
    ];
    for (const [who, name] of people) {
      const user = await createUser(db, name, 'member', { email: `${who}@example.org` });
      sessions[who] = `${SESSION_COOKIE}=${(await createWebSession(db, user.id)).cookie}`;
    }
    sessions.ana = `${SESSION_COOKIE}=${(await createWebSession(db, ana.id)).cookie}`;
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a visitor the gate does not know goes to the API host, and to /login without a session', async () => {
    const gate = await get(host('shop'), '/.petri/gate?next=%2Fcart%3Fa%3D1');
    assert.equal(gate.statusCode, 303);
    assert.equal(gate.headers.location, 'http://petri.test:8080/gate/sso?app=shop&next=%2Fcart%3Fa%3D1');
    const anon = await sso('shop', undefined, '/cart?a=1');
    assert.equal(anon.statusCode, 303);
    const login = anon.headers.location as string;
    assert.equal(login, `/login?next=${encodeURIComponent('/gate/sso?app=shop&next=%2Fcart%3Fa%3D1')}`);
    const page = await get(API, login);
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /continue to the experiment <strong>shop<\/strong>/);
  });

  test('staff: signed in, the ticket leads to the notice; consent lets the visitor through as themselves', async () => {
    const redeem = await get(host('shop'), await ticketUrl('shop', 'vic'));
    assert.equal(redeem.statusCode, 303, redeem.body);
    assert.equal(redeem.headers.location, '/.petri/gate?next=%2Fcart');
    const { notice, cookie } = await consent('shop', setCookies(redeem).get(PENDING_COOKIE) ?? '');
    assert.match(notice.body, /<strong>vic@example.org<\/strong> agreed/);
    const claims = await claimsOf('shop', cookie);
    assert.ok(claims.ok);
    assert.equal(claims.claims.sub, 'vic@example.org');
    assert.equal(claims.claims.name, 'Vic Visitor');
  });

  test('a returning visitor who consented to this notice is let through at once, with no notice', async () => {
    const redeem = await get(host('shop'), await ticketUrl('shop', 'vic', '/orders'));
    assert.equal(redeem.statusCode, 303, redeem.body);
    assert.equal(redeem.headers.location, '/orders');
    assert.equal(setCookies(redeem).has(PENDING_COOKIE), false);
    const claims = await claimsOf('shop', cookieIn(setCookies(redeem).get(GATE_COOKIE)));
    assert.ok(claims.ok);
    assert.equal(claims.claims.sub, 'vic@example.org');
    // A new notice (the privacy note changed) asks again.
    assert.equal(
      (await call('PATCH', '/v1/apps/shop/experiment', { privacy: 'Now your orders too.' })).statusCode,
      200,
    );
    const asked = await get(host('shop'), await ticketUrl('shop', 'vic'));
    assert.equal(asked.headers.location, '/.petri/gate?next=%2Fcart');
  });

  test('a ticket works once, only at its app, only within its minute', async () => {
    const url = await ticketUrl('shop', 'vic');
    assert.equal((await get(host('shop'), url)).statusCode, 303);
    const replay = await get(host('shop'), url);
    assert.equal(replay.statusCode, 403);
    assert.match(replay.body, /used already/);
    assert.equal(setCookies(replay).size, 0);

    const elsewhere = await ticketUrl('shop', 'vic');
    const other = await get(host('club'), elsewhere);
    assert.equal(other.statusCode, 403);

    const late = await ticketUrl('shop', 'vic');
    await db
      .updateTable('gate_tickets')
      .set({ expires_at: new Date(Date.now() - 1).toISOString() })
      .execute();
    assert.equal((await get(host('shop'), late)).statusCode, 403);
    assert.equal((await get(host('shop'), '/.petri/sso?ticket=forged-ticket-0123456789')).statusCode, 403);
  });

  test('next never leaves the app host, at /gate/sso nor at /.petri/sso', async () => {
    for (const next of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const res = await sso('shop', 'vic', next);
      assert.equal(res.statusCode, 303);
      assert.equal(new URL(res.headers.location as string).searchParams.get('next'), '/', next);
      const url = new URL(`http://x${await ticketUrl('shop', 'vic')}`);
      url.searchParams.set('next', next);
      const redeem = await get(host('shop'), `${url.pathname}${url.search}`);
      assert.equal(redeem.headers.location, '/.petri/gate?next=%2F', next);
    }
  });

  test('invite: only the people on the list (and the app team) get a ticket; removal ends their pass', async () => {
    const refused = await sso('club', 'ivy');
    assert.equal(refused.statusCode, 403);
    assert.match(refused.body, /is for invited people/);
    assert.match(refused.body, /ivy@example.org/);
    assert.equal((await sso('club', 'ana')).statusCode, 303, 'the owner’s team');
    assert.equal(
      (await call('POST', '/v1/apps/club/audience/invitees', { emails: ['ivy@example.org'] })).statusCode,
      200,
    );
    const redeem = await get(host('club'), await ticketUrl('club', 'ivy'));
    const { cookie } = await consent('club', setCookies(redeem).get(PENDING_COOKIE) ?? '');
    assert.ok((await claimsOf('club', cookie)).ok);
    assert.equal((await call('DELETE', '/v1/apps/club/audience/invitees/ivy@example.org')).statusCode, 200);
    const after = await claimsOf('club', cookie);
    assert.equal(after.ok, false);
    assert.equal((await sso('club', 'ivy')).statusCode, 403);
  });

  test('an app awaiting review: its team only; everyone else the awaits-review page', async () => {
    const vault = await appRow('vault');
    assert.equal(vault.approved_class, null);
    const outsider = await sso('vault', 'vic');
    assert.equal(outsider.statusCode, 403);
    assert.match(outsider.body, /awaits review/);
    assert.equal((await sso('vault', 'ana')).statusCode, 303);
    const link = await call('POST', '/v1/apps/vault/audience/links', {});
    const joined = await get(host('vault'), new URL(link.json().url as string).pathname);
    assert.equal(joined.statusCode, 403);
    assert.match(joined.body, /awaits review/);
  });

  test('a hostile name reaches the gate cookie without control or invisible characters', async () => {
    const redeem = await get(host('shop'), await ticketUrl('shop', 'eve'));
    const { cookie } = await consent('shop', setCookies(redeem).get(PENDING_COOKIE) ?? '');
    const claims = await claimsOf('shop', cookie);
    assert.ok(claims.ok);
    assert.equal(claims.claims.sub, 'eve@example.org');
    assert.equal(claims.claims.name, 'Eve X-Petri-User: root@example.org !');
    assert.doesNotMatch(claims.claims.name, /[\r\n\u0000-\u001f\u007f-\u009f\u2028\u2029\u202e]/);
  });

  test('a personal link lets its invitee in once, as themselves, and not once they are off the list', async () => {
    const invited = await call('POST', '/v1/apps/club/audience/invitees', {
      emails: ['out@partner.example', 'gone@partner.example'],
      link: true,
    });
    assert.equal(invited.statusCode, 200, invited.body);
    const links = invited.json().links as Array<{ email: string; url: string }>;
    assert.deepEqual(
      links.map((l) => l.email),
      ['out@partner.example', 'gone@partner.example'],
    );
    const [out, gone] = links.map((l) => new URL(l.url).pathname) as [string, string];
    const join = await get(host('club'), `${out}?next=/cart`);
    assert.equal(join.statusCode, 303, join.body);
    const { notice, cookie } = await consent('club', setCookies(join).get(PENDING_COOKIE) ?? '');
    assert.match(notice.body, /<strong>out@partner.example<\/strong> agreed/);
    const claims = await claimsOf('club', cookie);
    assert.ok(claims.ok);
    assert.equal(claims.claims.sub, 'out@partner.example');
    const twice = await get(host('club'), out);
    assert.equal(twice.statusCode, 403);
    assert.match(twice.body, /used as many times as it may/);

    const opened = await get(host('club'), gone);
    assert.equal(opened.statusCode, 303);
    assert.equal(
      (await call('DELETE', '/v1/apps/club/audience/invitees/gone@partner.example')).statusCode,
      200,
    );
    const later = await get(host('club'), gone);
    const pending = `${PENDING_COOKIE}=${cookieIn(setCookies(later).get(PENDING_COOKIE))}`;
    const notice2 = await get(host('club'), '/.petri/gate', pending);
    const csrf = /name="csrf" value="([^"]+)"/.exec(notice2.body)?.[1] ?? '';
    const post = await api.inject({
      method: 'POST',
      url: '/.petri/consent',
      headers: {
        host: host('club'),
        cookie: pending,
        'content-type': 'application/x-www-form-urlencoded',
        ...CLICK,
      },
      payload: new URLSearchParams({ csrf, choice: 'continue' }).toString(),
    });
    assert.equal(post.statusCode, 403);
    assert.match(post.body, /no longer invited/);
  });

  test('a disabled account gets no ticket; a public app needs none', async () => {
    await call('PUT', '/v1/apps/shop/audience', { audience: 'public' });
    const open = await sso('shop', undefined, '/x');
    assert.equal(open.statusCode, 303);
    assert.equal(open.headers.location, 'http://shop.petri.test:8080/x');
    await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' });
    await db
      .updateTable('users')
      .set({ disabled_at: new Date().toISOString() })
      .where('email', '=', 'vic@example.org')
      .execute();
    const res = await sso('shop', 'vic');
    assert.equal(res.statusCode, 303);
    assert.match(res.headers.location as string, /^\/login\?next=/);
  });
});
