// Pure parts of HTTPS at the router: the config's TLS lines (golden file), the crt-list, the
// checks of certificate PEMs and names, the well-known map and its runtime commands.
// UPDATE_GOLDEN=1 rewrites the golden file.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  assertCertName,
  certNames,
  normalizeCertificatePem,
  parseShowSslCert,
  renderCrtList,
} from '../../src/router/certificates.js';
import { fingerprintOf, type RenderOptions, renderHaproxyConfig } from '../../src/router/config.js';
import { sendCommand } from '../../src/router/runtime-api.js';
import { parseWellKnownMap, planWellKnown, renderWellKnownMap } from '../../src/router/well-known.js';
import { LocalCa } from '../../src/tls/local-ca.js';

const opts: RenderOptions = {
  dir: '/var/lib/petri/router',
  httpPort: 8080,
  https: { port: 8443, hsts: true, redirectHttp: true },
  apiHost: 'petri.localhost',
  apiServer: { address: '127.0.0.1', port: 3000 },
  domain: 'petri.localhost',
};

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `${name} differs from its golden file (UPDATE_GOLDEN=1)`);
}

describe('the HTTPS config', () => {
  it('renders the golden config: TLS 1.2+, the crt-list bind with ALPN, the redirect, HSTS', () => {
    golden('haproxy-https.cfg', renderHaproxyConfig(opts, []));
  });

  it('leaves out the redirect, HSTS and the port on 443 as asked; TLS settings change the fingerprint', () => {
    const laptop = renderHaproxyConfig(
      { ...opts, https: { port: 8443, hsts: false, redirectHttp: false } },
      [],
    );
    assert.doesNotMatch(laptop, /Strict-Transport-Security|redirect location https/);
    assert.match(laptop, /ssl crt-list \/var\/lib\/petri\/router\/certs\.list alpn h2,http\/1\.1/);
    const on443 = renderHaproxyConfig({ ...opts, https: { port: 443, hsts: true, redirectHttp: true } }, []);
    assert.match(on443, /location https:\/\/%\[var\(txn\.host\)\]%\[pathq\] code 308/);
    const plain = renderHaproxyConfig({ ...opts, https: undefined }, []);
    assert.doesNotMatch(plain, /crt-list|ssl-default|Strict-Transport/);
    const prints = new Set([laptop, on443, plain, renderHaproxyConfig(opts, [])].map(fingerprintOf));
    assert.equal(prints.size, 4);
  });

  it('refuses an https port that is no port', () => {
    assert.throws(() =>
      renderHaproxyConfig({ ...opts, https: { port: 0, hsts: false, redirectHttp: false } }, []),
    );
  });
});

describe('certificates', () => {
  let dir: string;
  let ca: LocalCa;
  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-ca-'));
    ca = (await LocalCa.open(dir)).ca;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the default certificate first, then hosts with their SNI filter', () => {
    const names = certNames([
      'b.example.org.pem',
      '_default.pem',
      'a.example.org.pem',
      'x.pem.tmp',
      'A B.pem',
    ]);
    assert.equal(
      renderCrtList('/r/certs', names),
      '/r/certs/_default.pem\n/r/certs/a.example.org.pem a.example.org\n/r/certs/b.example.org.pem b.example.org\n',
    );
  });

  it('takes host names and _default only', () => {
    for (const good of ['_default', 'a.example.org', 'xn--bcher-kva.example', 'a-b.c']) assertCertName(good);
    for (const bad of [
      '',
      'A.example.org',
      'a b',
      'a\n',
      '../x',
      'a..b',
      '-a.b',
      '*.a.b',
      'a/b',
      `${'a'.repeat(254)}`,
    ]) {
      assert.throws(() => assertCertName(bad), /certificate name/, JSON.stringify(bad));
    }
  });

  it('keeps only the PEM blocks, the chain then the key, with no blank line', async () => {
    const issued = await ca.issueHostCertificate(['a.example.org']);
    const pem = normalizeCertificatePem(
      `junk\r\n${issued.keyPem}\n\n${issued.certPem.replace(/\n/g, '\r\n')}\n# end\n`,
    );
    assert.doesNotMatch(pem, /\n\n|\r|junk|end/);
    assert.match(pem, /^-----BEGIN CERTIFICATE-----/);
    assert.match(pem, /-----END PRIVATE KEY-----\n$/);
    assert.equal(pem.match(/BEGIN CERTIFICATE/g)?.length, 2, 'leaf and CA');
  });

  it('parses show ssl cert', () => {
    const files = parseShowSslCert('# filename\n/r/certs/_default.pem\n*/r/certs/a.pem\n');
    assert.deepEqual([...files], ['/r/certs/_default.pem', '/r/certs/a.pem']);
  });

  it('refuses a command payload with a blank line before sending anything', async () => {
    await assert.rejects(
      sendCommand('/nonexistent.sock', 'set ssl cert /x', 1000, 'a\n\nb'),
      /no empty line/,
    );
    await assert.rejects(sendCommand('/nonexistent.sock', 'set ssl cert /x', 1000, '  '), /non-empty/);
  });
});

describe('the well-known map', () => {
  it('renders, parses and plans add, set and del', () => {
    const map = new Map([
      ['/.well-known/petri-domain/12', 'tok'],
      ['/.well-known/acme-challenge/x_y-z', 'x_y-z.Thumb'],
    ]);
    const text = renderWellKnownMap(map);
    assert.deepEqual(parseWellKnownMap(text), map);
    assert.deepEqual(
      planWellKnown('/m', '/.well-known/petri-domain/12', 'new', undefined).map((c) => c.command),
      ['add map /m /.well-known/petri-domain/12 new'],
    );
    assert.deepEqual(
      planWellKnown('/m', '/p', 'new', 'old').map((c) => c.command),
      ['set map /m /p new'],
    );
    assert.deepEqual(
      planWellKnown('/m', '/p', undefined, 'old').map((c) => c.command),
      ['del map /m /p'],
    );
    assert.deepEqual(planWellKnown('/m', '/p', 'same', 'same'), []);
    assert.throws(() => renderWellKnownMap(new Map([['/.well-known/acme-challenge/x', 'a b']])));
  });
});
