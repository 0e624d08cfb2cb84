// Pure parts of HTTPS at the router: the config's TLS lines (golden file), the crt-list, the
// checks of certificate PEMs and names, the well-known map and its runtime commands.
// UPDATE_GOLDEN=1 rewrites the golden file.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/lib/config.js';
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
      '/r/certs/_default.pem default.petri.invalid\n/r/certs/a.example.org.pem a.example.org\n/r/certs/b.example.org.pem b.example.org\n',
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

describe('config: httpsPort and tls', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-tls-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (extra: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
    loadConfig({ dataDir: dir, ...extra }, env);

  it('defaults: HTTPS on 8443, self-signed, no redirect, renewal 30 days before', () => {
    const config = load({});
    assert.equal(config.httpsPort, 8443);
    assert.deepEqual(config.tls, { mode: 'self-signed', redirectHttp: false, renewBeforeDays: 30 });
    assert.equal(load({ httpsPort: '0' }).httpsPort, 0);
    assert.equal(load({}, { PETRI_HTTPS_PORT: '9443' }).httpsPort, 9443);
  });

  it('redirects by default in the wildcard and acme modes, unless HTTPS is off', () => {
    const wildcard = load({ tls: { mode: 'wildcard', certFile: '/etc/w.pem', keyFile: '/etc/w.key' } }).tls;
    assert.deepEqual(wildcard, {
      mode: 'wildcard',
      certFile: '/etc/w.pem',
      keyFile: '/etc/w.key',
      redirectHttp: true,
      renewBeforeDays: 30,
    });
    const acme = load({
      tls: { mode: 'acme', acme: { directoryUrl: 'https://acme.example/dir/', email: 'ops@example.org' } },
    }).tls;
    assert.equal(acme.redirectHttp, true);
    assert.deepEqual(acme.acme, { directoryUrl: 'https://acme.example/dir', email: 'ops@example.org' });
    const off = load({
      httpsPort: 0,
      tls: { mode: 'acme', acme: { directoryUrl: 'https://a.example/d', email: 'a@b.co' } },
    });
    assert.equal(off.tls.redirectHttp, false);
  });

  it('refuses bad input with a message naming the key', () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [
        { httpsPort: 70000 },
        /'httpsPort' must be an integer from 0 to 65535|'httpsPort' must be a number from 0 to 65535/,
      ],
      [{ httpsPort: 8080 }, /'httpsPort' must be another port than httpPort/],
      [{ tls: 'on' }, /'tls' must be an object/],
      [{ tls: { mode: 'letsencrypt' } }, /'tls.mode' must be one of "self-signed", "wildcard" or "acme"/],
      [{ tls: { mode: 'wildcard' } }, /'tls.certFile' must be an absolute path in the wildcard mode/],
      [
        { tls: { mode: 'wildcard', certFile: 'w.pem', keyFile: '/w.key' } },
        /'tls.certFile' must be the absolute path of a PEM file/,
      ],
      [{ tls: { certFile: '/w.pem' } }, /'tls.certFile' must be left out unless tls.mode is "wildcard"/],
      [{ tls: { mode: 'acme' } }, /'tls.acme' must be an object .* in the acme mode/],
      [{ tls: { redirectHTTP: true } }, /'tls.redirectHTTP' is unknown/],
      [{ tls: { redirectHttp: 'yes' } }, /'tls.redirectHttp' must be true or false/],
      [{ httpsPort: 0, tls: { redirectHttp: true } }, /'tls.redirectHttp' must be false when httpsPort is 0/],
      [{ tls: { renewBeforeDays: -1 } }, /'tls.renewBeforeDays' must be a number from 0 to 3650/],
      [
        { tls: { acme: { directoryUrl: 'http://acme.example/dir', email: 'a@b.co' } } },
        /'tls.acme.directoryUrl' must be a URL/,
      ],
      [
        { tls: { acme: { directoryUrl: 'https://acme.example/dir', email: 'nobody' } } },
        /'tls.acme.email' must be an e-mail/,
      ],
      [
        { tls: { acme: { directoryUrl: 'https://a.example/d', email: 'a@b.co', eabKid: 'k' } } },
        /go together/,
      ],
      [
        { tls: { acme: { directoryUrl: 'https://a.example/d', email: 'a@b.co', hmac: 'x' } } },
        /'tls.acme.hmac' is unknown/,
      ],
    ];
    for (const [extra, message] of cases) {
      assert.throws(() => load(extra), message, JSON.stringify(extra));
    }
  });

  it('never repeats the EAB key', () => {
    const secret = 'not base64 but secret!';
    assert.throws(
      () =>
        load({
          tls: {
            acme: { directoryUrl: 'https://a.example/d', email: 'a@b.co', eabKid: 'kid', eabHmac: secret },
          },
        }),
      (err: Error) => /eabHmac/.test(err.message) && !err.message.includes(secret),
    );
    const ok = load({
      tls: {
        acme: {
          directoryUrl: 'https://a.example/d',
          email: 'a@b.co',
          eabKid: 'kid',
          eabHmac: 'aGVsbG8taGVsbG8taGVsbG8',
        },
      },
    });
    assert.equal(ok.tls.acme?.eabKid, 'kid');
  });
});
