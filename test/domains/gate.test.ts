// The audience gate on a custom domain (issue 20): the gate's pages under a verified domain of
// a gated app are the app's (a pending one is no app's), and its sign-in comes back to that
// domain (the ticket is redeemed there, so the gate cookie is the domain's own); /gate/sso
// goes back to a given origin only when it is a verified domain of that very app.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { recordDomainCheck } from '../../src/domain/domains.js';
import { createWebSession, SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { PENDING_COOKIE } from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';

const API = 'petri.test:8080';
const WWW = 'www.shop.example:8080';

describe('the audience gate on a custom domain', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  let session: string;

  const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  const get = (host: string, url: string, cookie = '') =>
    api.inject({ method: 'GET', url, headers: { host, ...(cookie ? { cookie } : {}) } });
  const claim = async (app: string, host: string, verify: boolean) => {
    const res = await call('POST', `/v1/apps/${app}/domains`, { host });
    assert.equal(res.statusCode, 201, res.body);
    const row = await db
      .selectFrom('domains')
      .select('id')
      .where('host', '=', host)
      .executeTakeFirstOrThrow();
    if (verify) await recordDomainCheck(db, row.id, { ok: true });
  };
  const sso = (origin: string, cookie = session) =>
    get(API, `/gate/sso?app=shop&next=%2Fcart&origin=${encodeURIComponent(origin)}`, cookie);

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-domain-gate-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    token = await issueToken(db, ana.id, 'test');
    session = `${SESSION_COOKIE}=${(await createWebSession(db, ana.id)).cookie}`;
    api = await buildTestApi(dir, db, { domain: 'petri.test', apiHost: 'petri.test', httpPort: 8080 });
    assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    for (const name of ['shop', 'club']) {
      assert.equal((await call('POST', '/v1/apps', { name, team: 'labs' })).statusCode, 201);
      assert.equal((await call('PUT', `/v1/apps/${name}/audience`, { audience: 'staff' })).statusCode, 200);
    }
    await claim('shop', 'www.shop.example', true);
    await claim('shop', 'soon.shop.example', false);
    await claim('club', 'www.club.example', true);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a verified domain's gate is the app's, and sends the visitor to sign in with the way back", async () => {
    const gate = await get(WWW, '/.petri/gate?next=%2Fcart');
    assert.equal(gate.statusCode, 303, gate.body);
    assert.equal(
      gate.headers.location,
      `http://petri.test:8080/gate/sso?app=shop&next=%2Fcart&origin=${encodeURIComponent('http://www.shop.example:8080')}`,
    );
    // Signed out: /login, and the way back keeps the origin.
    const anon = await sso('http://www.shop.example:8080', '');
    assert.equal(anon.statusCode, 303);
    assert.match(
      decodeURIComponent(decodeURIComponent(anon.headers.location as string)),
      /origin=http:\/\/www\.shop\.example:8080/,
    );
  });

  test('a pending domain is no app’s at the gate', async () => {
    const gate = await get('soon.shop.example:8080', '/.petri/gate?next=%2F');
    assert.equal(gate.statusCode, 404);
  });

  test('the ticket comes back to the verified domain and is redeemed there', async () => {
    const res = await sso('http://www.shop.example:8080');
    assert.equal(res.statusCode, 303, res.body);
    const back = new URL(res.headers.location as string);
    assert.equal(back.origin, 'http://www.shop.example:8080');
    assert.equal(back.pathname, '/.petri/sso');
    const redeemed = await get(WWW, `${back.pathname}${back.search}`);
    assert.equal(redeemed.statusCode, 303, redeemed.body);
    assert.match(String(redeemed.headers['set-cookie']), new RegExp(`${PENDING_COOKIE}=`));
  });

  test("any other origin goes back to the app's own host: another app's domain, a stranger's, a URL with a path", async () => {
    for (const origin of [
      'http://www.club.example:8080',
      'http://soon.shop.example:8080',
      'http://evil.example',
      'http://www.shop.example:8080/x',
      'javascript://www.shop.example',
      'http://user@www.shop.example',
    ]) {
      const res = await sso(origin);
      assert.equal(res.statusCode, 303, res.body);
      assert.equal(new URL(res.headers.location as string).origin, 'http://shop.petri.test:8080', origin);
    }
  });
});
