// Attack (issue 20, downgrade): with HTTPS on, a gated app's sign-in hands its single-use
// ticket over plain HTTP. The visitor is on HTTPS throughout (app host, the API host's
// /gate/sso), yet /gate/sso sends them to appUrl(), always http://NAME.DOMAIN[:httpPort],
// with ?ticket= in the URL; a custom domain's way back may be http:// too (customOrigin takes
// either scheme, so a link crafted with origin=http://www.shop.example does it as well). The
// browser sends that request in the clear (the 308 to HTTPS and HSTS come after it left, and
// HSTS is never on a host's first visit); whoever sees or holds it redeems the ticket first
// and is the visitor to the app (gate cookie, X-Petri-User).
// Fix: when HTTPS is on, the way back is https://NAME.DOMAIN[:httpsPort] (and a custom origin
// is only ever taken as https://), at least whenever the sign-in itself came over HTTPS.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { recordDomainCheck } from '../../src/domain/domains.js';
import { createWebSession, SECURE_SESSION_COOKIE, SESSION_COOKIE } from '../../src/domain/web-sessions.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';

describe('attack: the gate ticket travels over plain HTTP', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  let session: string;

  const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  /** /gate/sso as the browser asks it: over HTTPS (the router says so), signed in. */
  const sso = (query: string) =>
    api.inject({
      method: 'GET',
      url: `/gate/sso?app=shop&next=%2Fcart${query}`,
      headers: { host: 'petri.test', 'x-forwarded-proto': 'https', cookie: session },
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'attack20-gate-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    token = await issueToken(db, ana.id, 'test');
    session = `${SECURE_SESSION_COOKIE}=${(await createWebSession(db, ana.id)).cookie}`;
    api = await buildTestApi(dir, db, {
      domain: 'petri.test',
      apiHost: 'petri.test',
      httpPort: 80,
      httpsPort: 443,
      tls: {
        mode: 'acme',
        acme: { directoryUrl: 'https://acme.invalid/dir', email: 'ops@example.org' },
        redirectHttp: true,
      },
    });
    assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    assert.equal((await call('POST', '/v1/apps', { name: 'shop', team: 'labs' })).statusCode, 201);
    assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' })).statusCode, 200);
    const claimed = await call('POST', '/v1/apps/shop/domains', { host: 'www.shop.example' });
    assert.equal(claimed.statusCode, 201, claimed.body);
    const row = await db.selectFrom('domains').select('id').executeTakeFirstOrThrow();
    await recordDomainCheck(db, row.id, { ok: true });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("the app's own host: the ticket goes back over HTTPS", async () => {
    const res = await sso('');
    assert.equal(res.statusCode, 303, res.body);
    const location = String(res.headers.location);
    assert.match(location, /\/\.petri\/sso\?ticket=/);
    assert.match(location, /^https:\/\/shop\.petri\.test\//, `the ticket is sent in the clear: ${location}`);
  });

  test('a custom domain: an http:// origin is not where a ticket goes', async () => {
    const res = await sso(`&origin=${encodeURIComponent('http://www.shop.example')}`);
    assert.equal(res.statusCode, 303, res.body);
    const location = String(res.headers.location);
    assert.ok(
      !/^http:\/\/[^?]*\/\.petri\/sso\?ticket=/.test(location),
      `the ticket is sent in the clear: ${location}`,
    );
    // The domain's https origin is its way back.
    const secure = await sso(`&origin=${encodeURIComponent('https://www.shop.example')}`);
    assert.match(String(secure.headers.location), /^https:\/\/www\.shop\.example\/\.petri\/sso\?ticket=/);
  });
});

// The laptop's default (HTTPS on 8443 with the local CA, no redirect): a visitor stays on the
// scheme they came by, and over HTTPS the API host is reached on the HTTPS port (it was sent
// to https://petri.test, port 443, where nothing listens).
describe('the way to the sign-in and back keeps the visitor’s scheme and its port', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  let cookies: { http: string; https: string };

  const call = (method: 'POST' | 'PUT', url: string, payload: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  const get = (host: string, url: string, https: boolean, cookie = '') =>
    api.inject({
      method: 'GET',
      url,
      headers: { host, 'x-forwarded-proto': https ? 'https' : 'http', ...(cookie ? { cookie } : {}) },
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'attack20-gate-laptop-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    token = await issueToken(db, ana.id, 'test');
    const web = (await createWebSession(db, ana.id)).cookie;
    cookies = { http: `${SESSION_COOKIE}=${web}`, https: `${SECURE_SESSION_COOKIE}=${web}` };
    api = await buildTestApi(dir, db, {
      domain: 'petri.test',
      apiHost: 'petri.test',
      httpPort: 8080,
      httpsPort: 8443,
    });
    assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    assert.equal((await call('POST', '/v1/apps', { name: 'shop', team: 'labs' })).statusCode, 201);
    assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' })).statusCode, 200);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const https of [true, false]) {
    const scheme = https ? 'https' : 'http';
    const port = https ? 8443 : 8080;
    test(`over ${scheme}: the gate sends to ${scheme}://petri.test:${port}, the ticket comes back to ${scheme}://shop.petri.test:${port}`, async () => {
      const gate = await get(`shop.petri.test:${port}`, '/.petri/gate?next=%2Fcart', https);
      assert.equal(gate.statusCode, 303, gate.body);
      assert.equal(gate.headers.location, `${scheme}://petri.test:${port}/gate/sso?app=shop&next=%2Fcart`);
      const sso = await get(`petri.test:${port}`, '/gate/sso?app=shop&next=%2Fcart', https, cookies[scheme]);
      assert.equal(sso.statusCode, 303, sso.body);
      assert.match(
        String(sso.headers.location),
        new RegExp(`^${scheme}://shop\\.petri\\.test:${port}/\\.petri/sso\\?ticket=`),
      );
    });
  }
});
