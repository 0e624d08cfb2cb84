// Custom domains through the API (issue 20): a claim by the app's team, what it answers (the
// DNS to set up, the verification URL and token), who may claim and remove (the team's
// members; not its viewers, not another team), a name another app claimed (pending ones
// included, in any spelling), the platform's own names, the cap per app, the cap on a team's
// claims an hour, the audit trail, and what verification changes (routes, certificates, the
// gate's host -> app mapping).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  appNameOfDomain,
  domainHostsWantingCertificates,
  recordDomainCheck,
  verifiedDomainsByApp,
} from '../../src/domain/domains.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from '../api/test-api.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

describe('custom domains through the API', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
  const add = (who: string, app: string, host: string) =>
    call(who, 'POST', `/v1/apps/${app}/domains`, { host });
  const message = (res: { json: () => { error: { message: string } } }) => res.json().error.message;
  const events = (action: string) =>
    db
      .selectFrom('audit_events')
      .select(['actor', 'target', 'detail', 'outcome'])
      .where('action', '=', action)
      .orderBy('id')
      .execute();
  const domainId = async (host: string) =>
    (await db.selectFrom('domains').select('id').where('host', '=', host).executeTakeFirstOrThrow()).id;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-domains-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(
      db,
      [
        ['root', 'admin'],
        ['ana', 'member'],
        ['vic', 'member'],
        ['eve', 'member'],
      ],
      tokens,
      ids,
    );
    api = await buildTestApi(dir, db, {
      domain: 'petri.example.net',
      apiHost: 'api.example.net',
      httpPort: 8080,
      domains: { maxPerApp: 3, claimsPerTeamPerHour: 4, addresses: ['203.0.113.7'] },
    });
    for (const [who, team] of [
      ['ana', 'labs'],
      ['eve', 'rivals'],
    ]) {
      assert.equal((await call(who!, 'POST', '/v1/teams', { name: team })).statusCode, 201);
    }
    const viewer = await call('ana', 'PUT', '/v1/teams/labs/members/vic@example.org', { role: 'viewer' });
    assert.equal(viewer.statusCode, 200, viewer.body);
    for (const [who, name, team] of [
      ['ana', 'shop', 'labs'],
      ['ana', 'blog', 'labs'],
      ['eve', 'evil', 'rivals'],
    ]) {
      const res = await call(who!, 'POST', '/v1/apps', { name, team });
      assert.equal(res.statusCode, 201, res.body);
    }
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a member claims a domain: pending, with the DNS to set up and the token the router serves', async () => {
    const res = await add('ana', 'shop', 'WWW.Example.ORG.');
    assert.equal(res.statusCode, 201, res.body);
    const { domain, setup } = res.json();
    assert.equal(domain.host, 'www.example.org');
    assert.equal(domain.state, 'pending');
    assert.equal(domain.status, 'pending verification');
    assert.equal(domain.certificate, null);
    const id = await domainId('www.example.org');
    assert.equal(domain.verification.url, `http://www.example.org/.well-known/petri-domain/${id}`);
    assert.match(domain.verification.token, /^[A-Za-z0-9_-]{32}$/);
    assert.equal(domain.verification.txt, '_petri-challenge.www.example.org');
    assert.deepEqual(setup, { cname: 'shop.petri.example.net', addresses: ['203.0.113.7'] });

    const list = await call('vic', 'GET', '/v1/apps/shop/domains');
    assert.equal(list.statusCode, 200, list.body);
    assert.deepEqual(
      list.json().domains.map((d: { host: string }) => d.host),
      ['www.example.org'],
    );
    const [event] = await events('app.domain.add');
    assert.equal(event?.actor, 'ana');
    assert.equal(event?.target, 'shop');
    assert.deepEqual(JSON.parse(event!.detail), { host: 'www.example.org' });
  });

  test('a Unicode name is stored in punycode and shown as written', async () => {
    const res = await add('ana', 'shop', 'Bücher.example');
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().domain.host, 'xn--bcher-kva.example');
    assert.equal(res.json().domain.unicode, 'bücher.example');
  });

  test('no one claims a name another app has, in any spelling, and is not told whose it is', async () => {
    for (const spelling of ['www.example.org', 'WWW.EXAMPLE.ORG.', 'ｗｗｗ.example.org']) {
      const res = await add('eve', 'evil', spelling);
      assert.equal(res.statusCode, 409, res.body);
      assert.match(message(res), /claimed by another app/);
      assert.doesNotMatch(message(res), /shop|labs/);
    }
    // Not even the same team's other app.
    const own = await add('ana', 'blog', 'xn--bcher-kva.example');
    assert.equal(own.statusCode, 409);
    const again = await add('ana', 'shop', 'www.example.org');
    assert.equal(again.statusCode, 409);
    assert.match(message(again), /already a domain of 'shop' \(pending\)/);
  });

  test("another team's member neither sees, claims on nor removes the app's domains; a viewer only reads", async () => {
    assert.equal((await call('eve', 'GET', '/v1/apps/shop/domains')).statusCode, 404);
    assert.equal((await add('eve', 'shop', 'evil.example.org')).statusCode, 404);
    assert.equal((await call('eve', 'DELETE', '/v1/apps/shop/domains/www.example.org')).statusCode, 404);
    assert.equal((await add('vic', 'shop', 'vic.example.org')).statusCode, 403);
    assert.equal((await call('vic', 'DELETE', '/v1/apps/shop/domains/www.example.org')).statusCode, 403);
    assert.equal(
      await db.selectFrom('domains').select('id').where('host', 'like', '%evil%').executeTakeFirst(),
      undefined,
    );
  });

  test("the platform's own names, IPs and wildcards are refused with what to do", async () => {
    for (const [host, pattern] of [
      ['evil.petri.example.net', /one of Petri's own names/],
      ['shop.petri.example.net', /one of Petri's own names/],
      ['api.example.net', /one of Petri's own names/],
      ['example.net', /parent of Petri's own domain/],
      ['203.0.113.7', /IP address/],
      ['*.example.org', /wildcard/],
      ['xn--zz.example', /IDNA/],
    ] as const) {
      const res = await add('eve', 'evil', host);
      assert.equal(res.statusCode, 400, `${host}: ${res.body}`);
      assert.match(message(res), pattern);
    }
  });

  test('an app has at most domains.maxPerApp domains', async () => {
    assert.equal((await add('ana', 'shop', 'three.example.org')).statusCode, 201);
    const res = await add('ana', 'shop', 'four.example.org');
    assert.equal(res.statusCode, 403, res.body);
    assert.match(message(res), /has 3 domains, the most an app may have \(3\)/);
  });

  test('verification: routes, certificates and the gate know a verified domain, not a pending one', async () => {
    const id = await domainId('www.example.org');
    assert.equal(await appNameOfDomain(db, 'www.example.org'), undefined);
    assert.deepEqual(await domainHostsWantingCertificates(db), []);
    assert.equal(await recordDomainCheck(db, id, { ok: true }), true);
    assert.equal(await appNameOfDomain(db, 'WWW.example.org:8080'), 'shop');
    assert.deepEqual(await domainHostsWantingCertificates(db), ['www.example.org']);
    const shop = await db
      .selectFrom('apps')
      .select('id')
      .where('name', '=', 'shop')
      .executeTakeFirstOrThrow();
    assert.deepEqual((await verifiedDomainsByApp(db)).get(shop.id), ['www.example.org']);
    const list = (await call('ana', 'GET', '/v1/apps/shop/domains')).json();
    const www = list.domains.find((d: { host: string }) => d.host === 'www.example.org');
    // HTTPS is on by default and no certificate is in yet.
    assert.equal(www.status, 'issuing');
    assert.equal((await events('app.domain.verified')).length, 1);

    // A verified domain keeps routing through two failed checks, not three.
    for (const routed of [false, false, true]) {
      assert.equal(await recordDomainCheck(db, id, { ok: false, reason: 'no answer' }), routed);
    }
    assert.equal(await appNameOfDomain(db, 'www.example.org'), undefined);
    const failing = (await call('ana', 'GET', '/v1/apps/shop/domains')).json();
    const row = failing.domains.find((d: { host: string }) => d.host === 'www.example.org');
    assert.equal(row.status, 'failing');
    assert.equal(row.reason, 'no answer');
    assert.equal((await events('app.domain.unverified')).length, 1);
  });

  test('a member removes a domain in any spelling; it is audited and free again', async () => {
    const res = await call('ana', 'DELETE', `/v1/apps/shop/domains/${encodeURIComponent('BÜCHER.example.')}`);
    assert.equal(res.statusCode, 204, res.body);
    const [event] = await events('app.domain.remove');
    assert.deepEqual(JSON.parse(event!.detail), { host: 'xn--bcher-kva.example' });
    const missing = await call('ana', 'DELETE', '/v1/apps/shop/domains/nothing.example.org');
    assert.equal(missing.statusCode, 404);
    assert.match(message(missing), /not a domain of 'shop'/);
    assert.equal((await add('eve', 'evil', 'bücher.example')).statusCode, 201);
  });

  test('a claim that never verified lapses after a week when another app claims the name; a verified one does not', async () => {
    const weekAgo = new Date(Date.now() - 8 * 86_400_000).toISOString();
    await db.updateTable('domains').set({ created_at: weekAgo }).execute();
    // Claimed by evil just now, never verified, made old: blog may take it.
    const taken = await add('ana', 'blog', 'bücher.example');
    assert.equal(taken.statusCode, 201, taken.body);
    const [lapsed] = await events('app.domain.lapsed');
    assert.equal(lapsed?.target, 'evil');
    assert.deepEqual(JSON.parse(lapsed!.detail), { host: 'xn--bcher-kva.example', claimedBy: 'blog' });
    // Verified once (failing now): still shop's, however old.
    const kept = await add('eve', 'evil', 'www.example.org');
    assert.equal(kept.statusCode, 409);
    assert.match(message(kept), /lapses after 7 days/);
  });

  test('a team makes at most domains.claimsPerTeamPerHour claims an hour, removed ones counted', async () => {
    // rivals claimed bücher.example once (it lapsed since); claims refused (409) do not count.
    for (const host of ['a1.example.org', 'a2.example.org', 'a3.example.org']) {
      assert.equal((await add('eve', 'evil', host)).statusCode, 201, host);
      assert.equal((await call('eve', 'DELETE', `/v1/apps/evil/domains/${host}`)).statusCode, 204);
    }
    const res = await add('eve', 'evil', 'a4.example.org');
    assert.equal(res.statusCode, 429, res.body);
    assert.match(
      message(res),
      /^team 'rivals' has claimed 4 custom domains in the last hour, the most a team may \(domains\.claimsPerTeamPerHour: 4\); try again in (59|60) minutes$/,
    );
    assert.equal(
      await db.selectFrom('domains').select('id').where('host', '=', 'a4.example.org').executeTakeFirst(),
      undefined,
    );
  });
});
