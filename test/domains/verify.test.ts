// The check behind a custom domain's verification (controllers/domains.ts) against a real DNS
// server (pebble-challtestsrv) and a stand-in for the router: a domain whose TXT record
// _petri-challenge.HOST holds the claim's token and that resolves to one of the platform's
// addresses, where the token is served, passes; without the TXT record, or with another
// token in it, it fails saying what to add; one that resolves elsewhere fails saying where it
// points, and nothing is fetched from that address (no way to make Petri fetch an internal
// URL); a CNAME chain through another app's host or verified domain fails; a wrong, slow or
// endless answer fails with a reason, and a check ends by its deadline whatever DNS does.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { checkDomain } from '../../src/controllers/domains.js';
import { TestDns } from './dns.js';

describe('checking a custom domain', () => {
  let dns: TestDns;
  let server: http.Server;
  let port: number;
  /** What the stand-in router was asked: Host and path. */
  const asked: string[] = [];
  /** How it answers, by path. */
  let answer: (res: http.ServerResponse) => void;
  const domain = { id: 7, host: 'www.example.test', token: 'T0k3n_abc', app: 'shop' };

  before(async () => {
    dns = await TestDns.start();
    await dns.addA('far.example.test', ['198.51.100.77']);
    await dns.addA('inside.example.test', ['127.0.0.1']);
    await dns.setCname('ours.example.test', 'shop.petri.example.net');
    await dns.setCname('theirs.example.test', 'club.petri.example.net');
    // The claim's proof, for each name the claimant controls.
    for (const host of ['www', 'far', 'inside', 'corp', 'ours', 'theirs']) {
      await dns.setTxt(`_petri-challenge.${host}.example.test`, 'T0k3n_abc');
    }
    server = http.createServer((req, res) => {
      asked.push(`${req.headers.host} ${req.url}`);
      answer(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await dns?.stop();
  });

  const opts = () => ({
    domain: 'petri.example.net',
    addresses: ['127.0.0.1'],
    port,
    resolver: dns.resolver,
  });
  const check = (d = domain, addresses = ['127.0.0.1']) =>
    checkDomain(d, { domain: 'petri.example.net', addresses, port, resolver: dns.resolver });

  test('a name that resolves to the platform, where the router serves its token, passes', async () => {
    asked.length = 0;
    answer = (res) => res.end('T0k3n_abc\n');
    assert.deepEqual(await check(), { ok: true });
    assert.deepEqual(asked, [`www.example.test:${port} /.well-known/petri-domain/7`]);
  });

  test('a name that resolves elsewhere fails saying where it points, and nothing is fetched there', async () => {
    asked.length = 0;
    const outcome = await check({ ...domain, host: 'far.example.test' });
    assert.equal(outcome.ok, false);
    assert.match(
      (outcome as { reason: string }).reason,
      /far\.example\.test points to 198\.51\.100\.77, not to this platform \(127\.0\.0\.1\)/,
    );
    // An internal address that is not one of the platform's is never connected to, nor named
    // (the platform's resolver may know internal names).
    const inside = await check({ ...domain, host: 'inside.example.test' }, ['203.0.113.7']);
    assert.match((inside as { reason: string }).reason, /points to a private address, not to this platform/);
    await dns.addA('corp.example.test', ['10.1.2.3', '192.168.7.7', '198.51.100.9']);
    const corp = await check({ ...domain, host: 'corp.example.test' }, ['203.0.113.7']);
    assert.match((corp as { reason: string }).reason, /points to 198\.51\.100\.9, 2 private addresses, not/);
    assert.doesNotMatch((corp as { reason: string }).reason, /10\.1\.2\.3|192\.168/);
    assert.deepEqual(asked, []);
  });

  test("a CNAME to the app's own host passes; one to another app's host is that app's, and fails", async () => {
    answer = (res) => res.end('T0k3n_abc');
    assert.deepEqual(await check({ ...domain, host: 'ours.example.test' }), { ok: true });
    const theirs = await check({ ...domain, host: 'theirs.example.test' });
    assert.match(
      (theirs as { reason: string }).reason,
      /theirs\.example\.test is a CNAME to club\.petri\.example\.net, not to this app's shop\.petri\.example\.net/,
    );
  });

  test("without the TXT record holding the claim's token it fails, saying what to add; nothing is fetched", async () => {
    answer = (res) => res.end('T0k3n_abc');
    asked.length = 0;
    const missing = await check({ ...domain, host: 'apex.test' });
    assert.match(
      (missing as { reason: string }).reason,
      /_petri-challenge\.apex\.test has no TXT record: add _petri-challenge\.apex\.test TXT "T0k3n_abc"/,
    );
    await dns.setTxt('_petri-challenge.other.test', 'someone-elses-token');
    const wrong = await check({ ...domain, host: 'other.test' });
    assert.match(
      (wrong as { reason: string }).reason,
      /_petri-challenge\.other\.test has no TXT record with this claim's token \(1 other\): add/,
    );
    assert.deepEqual(asked, []);
    // Beside other TXT records, it passes.
    await dns.setTxt('_petri-challenge.other.test', 'T0k3n_abc');
    assert.deepEqual(await check({ ...domain, host: 'other.test' }), { ok: true });
  });

  test("a CNAME chain is followed: a hop that is another app's host or verified domain fails", async () => {
    answer = (res) => res.end('T0k3n_abc');
    await dns.setCname('alias.example.test', 'theirs.example.test');
    await dns.setTxt('_petri-challenge.alias.example.test', 'T0k3n_abc');
    const chained = await check({ ...domain, host: 'alias.example.test' });
    assert.match(
      (chained as { reason: string }).reason,
      /alias\.example\.test is a CNAME to theirs\.example\.test -> club\.petri\.example\.net, not to this app's/,
    );
    // Through the app's own host: passes.
    await dns.setCname('mine.example.test', 'ours.example.test');
    await dns.setTxt('_petri-challenge.mine.example.test', 'T0k3n_abc');
    assert.deepEqual(await check({ ...domain, host: 'mine.example.test' }), { ok: true });
    // Through another app's verified domain (whatever its records): fails; through this app's own passes.
    await dns.setCname('via.example.test', 'www.example.test');
    await dns.setTxt('_petri-challenge.via.example.test', 'T0k3n_abc');
    const via = (verified: string) =>
      checkDomain(
        { ...domain, host: 'via.example.test' },
        { ...opts(), verifiedDomains: new Map([['www.example.test', verified]]) },
      );
    assert.match(
      ((await via('club')) as { reason: string }).reason,
      /via\.example\.test is a CNAME to www\.example\.test, another app's domain/,
    );
    assert.deepEqual(await via('shop'), { ok: true });
    // A loop fails.
    await dns.setCname('loop1.example.test', 'loop2.example.test');
    await dns.setCname('loop2.example.test', 'loop1.example.test');
    const loop = await check({ ...domain, host: 'loop1.example.test' });
    assert.match((loop as { reason: string }).reason, /a loop/);
  });

  test('an answer without the token fails: another token, an error, a redirect, a long body', async () => {
    for (const [respond, pattern] of [
      [(res: http.ServerResponse) => res.end('other'), /answered 200 without the domain's token/],
      [
        (res: http.ServerResponse) => {
          res.statusCode = 404;
          res.end('T0k3n_abc');
        },
        /answered 404/,
      ],
      [
        (res: http.ServerResponse) => {
          res.writeHead(308, { location: 'http://169.254.169.254/' });
          res.end();
        },
        /answered 308/,
      ],
      [(res: http.ServerResponse) => res.end(`T0k3n_abc${' '.repeat(100_000)}`), /a long body/],
    ] as const) {
      answer = respond;
      const outcome = await check();
      assert.equal(outcome.ok, false);
      assert.match((outcome as { reason: string }).reason, pattern);
    }
  });

  test('no router at the address, or no platform address known, fails with what to do', async () => {
    const closed = await checkDomain(domain, { ...opts(), addresses: ['127.0.0.1'], port: 1 });
    assert.match((closed as { reason: string }).reason, /did not answer at 127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    const none = await checkDomain(domain, { ...opts(), addresses: [] });
    assert.match((none as { reason: string }).reason, /set domains\.addresses/);
  });

  test('a DNS server that does not answer fails the check, to be tried again', async () => {
    const outcome = await checkDomain(domain, { ...opts(), resolver: ['127.0.0.1:9'] });
    assert.match((outcome as { reason: string }).reason, /looking www\.example\.test up in DNS failed/);
  });

  test('a check ends by its deadline, DNS that drops queries or a router that never answers', async () => {
    const silent = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    const hang = http.createServer(() => {});
    await new Promise<void>((resolve) => hang.listen(0, '127.0.0.1', resolve));
    try {
      let started = Date.now();
      const dropped = await checkDomain(domain, {
        ...opts(),
        resolver: [`127.0.0.1:${(silent.address() as AddressInfo).port}`],
        deadlineMs: 1500,
      });
      assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
      assert.match(
        (dropped as { reason: string }).reason,
        /no answer within 1\.5 s looking up the CNAME of www\.example\.test; it is tried again/,
      );
      started = Date.now();
      const stuck = await checkDomain(domain, {
        ...opts(),
        port: (hang.address() as AddressInfo).port,
        deadlineMs: 1500,
      });
      assert.ok(Date.now() - started < 2500, `took ${Date.now() - started} ms`);
      assert.match(
        (stuck as { reason: string }).reason,
        /no answer within 1\.5 s waiting for Petri's router at 127\.0\.0\.1/,
      );
    } finally {
      silent.close();
      hang.closeAllConnections();
      await new Promise((resolve) => hang.close(resolve));
    }
  });
});
