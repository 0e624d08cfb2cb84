// Custom domains end to end (issue 20): a real `petri server` and router, an app behind it,
// and a real DNS server (pebble-challtestsrv) as the domains' resolver. A domain added with
// the CLI, its TXT record _petri-challenge.HOST set to the claim's token as `add` says, is
// verified through the router (the token it serves) and then reaches the app,
// which is told the host in X-Forwarded-Host, and gets its certificate (HTTPS by SNI); a
// domain that points elsewhere stays failing with the reason; removing a domain stops its
// routing; a member of another team can neither add a domain to the app nor claim the app's
// domain for their own, nor have a name that is a CNAME to the app's host, or a name someone
// else pointed at the platform (no TXT record of their token), verified for theirs;
// a gated app's domain is gated by the router, and its sign-in comes back to the domain.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AppDomainList } from '../../src/client/index.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from '../e2e/petri.js';
import { TestDns } from './dns.js';

// These files run two at a time with the light tests: a first start of an app there took over
// TestPetri's 5 s in CI, so the boot timeout of the other end-to-end tests.
const BOOT_MS = 30_000;

const APP = path.join(FIXTURES, 'forwarded-headers');

/** GET / over HTTPS with SNI and Host `host`, the chain checked against `ca`. */
function httpsGet(port: number, host: string, ca: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/', servername: host, headers: { host }, ca, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('custom domains', () => {
  let dns: TestDns;
  let petri: TestPetri;

  const api = async (method: string, url: string, token: string, body?: object) => {
    const res = await fetch(`${petri.apiUrl}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> };
  };
  const domains = async (): Promise<AppDomainList> => {
    const r = await petri.cli(['domains', '--app', 'fwd', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as AppDomainList;
  };
  const domain = async (host: string) => (await domains()).domains.find((d) => d.host === host);

  before(async () => {
    dns = await TestDns.start();
    // Not the platform's address: the check must not connect there.
    await dns.addA('elsewhere.example.test', ['192.0.2.44']);
    const httpPort = await freePort();
    petri = await TestPetri.start(
      {
        bootTimeoutMs: BOOT_MS,
        domains: { verifyPort: httpPort, resolver: dns.resolver, addresses: ['127.0.0.1'] },
      },
      { httpPort },
    );
    for (const argv of [
      ['apps', 'create', 'fwd'],
      ['deploy', APP, '--app', 'fwd'],
    ]) {
      const r = await petri.cli(argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    }
  });
  after(async () => {
    await petri?.destroy();
    await dns?.stop();
  });

  test('added, it prints what to set up; verified through the router, it reaches the app', async () => {
    const before = await petri.request('www.example.test', '/');
    assert.equal(before.status, 404, 'not routed before it is verified');
    const added = await petri.cli(['domains', 'add', 'WWW.Example.Test.', '--app', 'fwd']);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /www\.example\.test claimed for fwd/);
    assert.match(added.stdout, /www\.example\.test {2}CNAME {2}fwd\.petri\.localhost\./);
    assert.match(added.stdout, /www\.example\.test {2}A {2}127\.0\.0\.1/);
    const url = new RegExp(
      `GET http://www\\.example\\.test:${petri.httpPort}/\\.well-known/petri-domain/(\\d+)`,
    );
    const id = url.exec(added.stdout)?.[1];
    assert.ok(id, added.stdout);
    const token = /must answer ([A-Za-z0-9_-]+)/.exec(added.stdout)?.[1];
    assert.ok(token, added.stdout);
    assert.match(added.stdout, new RegExp(`_petri-challenge\\.www\\.example\\.test {2}TXT {2}"${token}"`));
    // What the domain's owner sets in their DNS.
    await dns.setTxt('_petri-challenge.www.example.test', token);
    // The router serves the token, on any host.
    await until(
      async () =>
        (await petri.request('anything.example', `/.well-known/petri-domain/${id}`)).body.trim() === token,
      { timeout: 10_000, message: 'the router to serve the token' },
    );
    // A check may come before the TXT record is set: the next is 15 s after it.
    await until(async () => (await domain('www.example.test'))?.state === 'verified', {
      timeout: 35_000,
      message: 'www.example.test to be verified',
    });
    await until(async () => (await petri.request('www.example.test', '/')).status === 200, {
      timeout: 10_000,
      message: 'www.example.test to route',
    });
    const res = await petri.request('www.example.test', '/');
    const seen = JSON.parse(res.body) as { host: string; proto: string };
    assert.equal(seen.host, `www.example.test`);
    assert.equal(seen.proto, 'http');
    // Its certificate (the local CA's in the self-signed mode), served by SNI over HTTPS.
    await until(async () => (await domain('www.example.test'))?.status === 'active', {
      timeout: 30_000,
      message: 'www.example.test to have its certificate',
    });
    const list = await petri.cli(['domains', '--app', 'fwd']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^www\.example\.test +active +until \d{4}-\d\d-\d\d/m);
    const ca = readFileSync(path.join(petri.dataDir, 'tls/ca.pem'), 'utf8');
    const secure = await httpsGet(petri.httpsPort, 'www.example.test', ca);
    assert.equal(secure.status, 200);
    assert.deepEqual(JSON.parse(secure.body).proto, 'https');
  });

  test('a domain that points elsewhere stays failing, saying where it points', async () => {
    const added = await petri.cli(['domains', 'add', 'elsewhere.example.test', '--app', 'fwd']);
    assert.equal(added.code, 0, added.stderr);
    await until(async () => (await domain('elsewhere.example.test'))?.state === 'failing', {
      timeout: 20_000,
      message: 'elsewhere.example.test to fail',
    });
    const d = await domain('elsewhere.example.test');
    assert.match(d?.reason ?? '', /points to 192\.0\.2\.44, not to this platform \(127\.0\.0\.1\)/);
    assert.equal(d?.status, 'failing');
    assert.equal((await petri.request('elsewhere.example.test', '/')).status, 404);
    const list = await petri.cli(['domains', '--app', 'fwd']);
    assert.match(
      list.stdout,
      /elsewhere\.example\.test +failing +- +[\d-]+ +elsewhere\.example\.test points to 192\.0\.2\.44/,
    );
  });

  test("another team's member can neither add a domain to the app nor claim its domain", async () => {
    assert.equal((await api('POST', '/v1/teams', petri.token, { name: 'rivals' })).status, 201);
    const bot = await api('POST', '/v1/users/bots', petri.token, {
      name: 'rival',
      team: 'rivals',
      role: 'member',
    });
    assert.equal(bot.status, 201, JSON.stringify(bot.body));
    const rival = bot.body.secret as string;
    assert.equal((await api('POST', '/v1/apps', rival, { name: 'evil', team: 'rivals' })).status, 201);
    const onTheirs = await api('POST', '/v1/apps/fwd/domains', rival, { host: 'mine.example.test' });
    assert.equal(onTheirs.status, 404);
    for (const host of ['www.example.test', 'WWW.EXAMPLE.TEST.', 'elsewhere.example.test']) {
      const claim = await api('POST', '/v1/apps/evil/domains', rival, { host });
      assert.equal(claim.status, 409, host);
      assert.doesNotMatch(JSON.stringify(claim.body), /fwd/);
    }
    for (const host of ['evil.petri.localhost', 'fwd.petri.localhost', '127.0.0.1', '*.example.test']) {
      assert.equal((await api('POST', '/v1/apps/evil/domains', rival, { host })).status, 400, host);
    }
    // A name its owner pointed at fwd (a CNAME to fwd's host) but has not claimed yet: the
    // rival may claim it, but it never verifies for their app, nor routes to it.
    await dns.setCname('alias.example.test', 'fwd.petri.localhost');
    assert.equal(
      (await api('POST', '/v1/apps/evil/domains', rival, { host: 'alias.example.test' })).status,
      201,
    );
    await until(
      async () => {
        const list = await api('GET', '/v1/apps/evil/domains', rival);
        const alias = (list.body.domains as AppDomainList['domains']).find(
          (d) => d.host === 'alias.example.test',
        );
        return alias?.state === 'failing' && /is a CNAME to fwd\.petri\.localhost/.test(alias.reason ?? '');
      },
      { timeout: 20_000, message: 'alias.example.test to fail for evil' },
    );
    assert.equal((await petri.request('alias.example.test', '/')).status, 404);
    // A name someone pointed at the platform with an A record (as `add` tells them to), not
    // claimed yet: the rival may claim it, but without its TXT record of their token it never
    // verifies.
    await dns.addA('apex.example.test', ['127.0.0.1']);
    assert.equal(
      (await api('POST', '/v1/apps/evil/domains', rival, { host: 'apex.example.test' })).status,
      201,
    );
    await until(
      async () => {
        const list = await api('GET', '/v1/apps/evil/domains', rival);
        const apex = (list.body.domains as AppDomainList['domains']).find(
          (d) => d.host === 'apex.example.test',
        );
        return (
          apex?.state === 'failing' &&
          /_petri-challenge\.apex\.example\.test has no TXT record/.test(apex.reason ?? '')
        );
      },
      { timeout: 20_000, message: 'apex.example.test to fail for evil' },
    );
    assert.equal((await petri.request('apex.example.test', '/')).status, 404);
    const removal = await api('DELETE', '/v1/apps/fwd/domains/www.example.test', rival);
    assert.equal(removal.status, 404);
    assert.equal((await petri.request('www.example.test', '/')).status, 200);
  });

  test("a gated app's custom domain is gated too, and its sign-in comes back to the domain", async () => {
    const staff = await petri.cli(['audience', 'set', 'staff', '--app', 'fwd']);
    assert.equal(staff.code, 0, staff.stderr);
    await until(async () => (await petri.request('www.example.test', '/cart')).status === 302, {
      timeout: 10_000,
      message: 'the router to gate www.example.test',
    });
    const gated = await petri.request('www.example.test', '/cart');
    assert.equal(gated.headers.location, '/.petri/gate?next=%2Fcart');
    // As a browser sends it: with the port.
    const gate = await petri.request(`www.example.test:${petri.httpPort}`, '/.petri/gate?next=%2Fcart');
    assert.equal(gate.status, 303, gate.body);
    const sso = new URL(gate.headers.location as string);
    assert.equal(sso.pathname, '/gate/sso');
    assert.equal(sso.searchParams.get('app'), 'fwd');
    assert.equal(sso.searchParams.get('origin'), `http://www.example.test:${petri.httpPort}`);
    const open = await petri.cli(['audience', 'set', 'public', '--app', 'fwd']);
    assert.equal(open.code, 0, open.stderr);
    await until(async () => (await petri.request('www.example.test', '/cart')).status === 200, {
      timeout: 10_000,
      message: 'www.example.test to be public again',
    });
  });

  test('removed, the domain stops routing and its token is no longer served', async () => {
    const www = await domain('www.example.test');
    const id = www?.verification.url.split('/').pop();
    const removed = await petri.cli(['domains', 'remove', 'www.example.test', '--app', 'fwd']);
    assert.equal(removed.code, 0, removed.stderr);
    await until(async () => (await petri.request('www.example.test', '/')).status === 404, {
      timeout: 10_000,
      message: 'www.example.test to stop routing',
    });
    await until(
      async () =>
        (await petri.request('anything.example', `/.well-known/petri-domain/${id}`)).body.trim() !==
        www?.verification.token,
      { timeout: 10_000, message: 'the token to be withdrawn' },
    );
    assert.equal((await petri.app('fwd')).status, 200);
    assert.equal(await domain('www.example.test'), undefined);
  });
});
