// Attack (issue 20, downgrade): with tls.redirectHttp on (and HSTS), everything an app serves
// under /.well-known/ is still served over plain HTTP. The router exempts the whole prefix from
// the 308 (src/router/tls.ts redirectLines: !{ path_beg /.well-known/ }) although only its own
// answers there (acme-challenge, petri-domain) must work over HTTP. Apps keep security
// documents there (openid-configuration and jwks.json, security.txt, change-password,
// assetlinks.json, apple-app-site-association, mta-sts.txt): a client that asks for them over
// HTTP gets them unredirected, so anyone on the path can rewrite them (an attacker's JWKS or
// issuer, a change-password link to their site).
// Fix: exempt only the router's own paths (/.well-known/acme-challenge/ and
// /.well-known/petri-domain/), or only those the well-known map answers; every other
// /.well-known/ request gets the 308 like any path.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { LocalCa } from '../../src/tls/local-ca.js';
import { TestPetri } from '../e2e/petri.js';

// These files run two at a time with the light tests: a first start of an app there took over
// TestPetri's 5 s in CI, so the boot timeout of the other end-to-end tests.
const BOOT_MS = 30_000;

const ECHO = path.join(import.meta.dirname, 'fixtures/echo');
const HOST = 'echo.petri.localhost';

describe('attack: /.well-known/ of an app over plain HTTP despite the redirect', () => {
  let petri: TestPetri;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'attack20-wk-'));
    const operator = (await LocalCa.open(path.join(dir, 'ca'))).ca;
    const pair = await operator.issueHostCertificate(['*.petri.localhost', 'petri.localhost']);
    writeFileSync(path.join(dir, 'w.pem'), pair.certPem);
    writeFileSync(path.join(dir, 'w.key'), pair.keyPem);
    petri = await TestPetri.start({
      bootTimeoutMs: BOOT_MS,
      tls: { mode: 'wildcard', certFile: path.join(dir, 'w.pem'), keyFile: path.join(dir, 'w.key') },
    });
    for (const argv of [
      ['apps', 'create', 'echo'],
      ['deploy', ECHO, '--app', 'echo'],
    ]) {
      const r = await petri.cli(argv);
      assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    }
  });
  after(async () => {
    await petri?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the redirect holds for an ordinary path (holds)', async () => {
    const res = await petri.request(HOST, '/login');
    assert.equal(res.status, 308);
  });

  for (const doc of [
    '/.well-known/openid-configuration',
    '/.well-known/security.txt',
    '/.well-known/jwks.json',
  ]) {
    test(`${doc} over HTTP is redirected to HTTPS, not served by the app`, async () => {
      const res = await petri.request(HOST, doc);
      assert.equal(
        res.status,
        308,
        `the app answered ${res.status} over plain HTTP: ${res.body.slice(0, 120)}`,
      );
    });
  }
});
