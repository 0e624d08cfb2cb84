// HTTPS end to end (issue 20): a real `petri server` and an app behind it. The self-signed mode
// on a laptop (the local CA at DATA_DIR/tls/ca.pem, HTTP still served, no HSTS); the wildcard
// mode with the operator's files (the redirect, HSTS, a new pair swapped in under load with no
// reload and no failed request, a bad new pair refused with the old one kept), and bad files
// refused at start.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { parseShowInfo, sendCommand } from '../../src/router/runtime-api.js';
import { LocalCa } from '../../src/tls/local-ca.js';
import { SteadyLoad } from '../e2e/load.js';
import { FIXTURES, runPetriServer, TestPetri } from '../e2e/petri.js';

// These files run two at a time with the light tests: a first start of an app there took over
// TestPetri's 5 s in CI, so the boot timeout of the other end-to-end tests.
const BOOT_MS = 30_000;

const APP = path.join(FIXTURES, 'forwarded-headers');
const HOST = 'fwd.petri.localhost';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  serial: string;
}

function httpsGet(port: number, host: string, ca: string, urlPath = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: urlPath, servername: host, headers: { host }, ca, agent: false },
      (res) => {
        const serial = (res.socket as tls.TLSSocket).getPeerCertificate().serialNumber;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, serial }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function h2Get(port: number, host: string, ca: string): Promise<{ alpn: string | undefined; body: string }> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { ca, servername: host });
  return new Promise<{ alpn: string | undefined; body: string }>((resolve, reject) => {
    session.on('error', reject);
    const req = session.request({ ':path': '/', ':authority': host });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve({ alpn: session.alpnProtocol, body }));
    req.on('error', reject);
    req.end();
  }).finally(() => session.close());
}

/** The TLS version the router settles on, or the error a client gets. */
function handshake(
  port: number,
  ca: string,
  min: tls.SecureVersion,
  max: tls.SecureVersion,
): Promise<string> {
  return new Promise((resolve) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: HOST,
      ca,
      minVersion: min,
      maxVersion: max,
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    socket.on('secureConnect', () => {
      resolve(socket.getProtocol() ?? '?');
      socket.end();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
  });
}

async function workerPid(petri: TestPetri): Promise<number> {
  const info = await sendCommand(path.join(petri.dataDir, 'router/admin.sock'), 'show info');
  return Number(parseShowInfo(info).get('Pid'));
}

async function deploy(petri: TestPetri): Promise<void> {
  for (const argv of [
    ['apps', 'create', 'fwd'],
    ['deploy', APP, '--app', 'fwd'],
  ]) {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
  }
}

describe('HTTPS, self-signed (the default)', () => {
  let petri: TestPetri;
  let ca: string;

  before(async () => {
    petri = await TestPetri.start({ bootTimeoutMs: BOOT_MS });
    ca = readFileSync(path.join(petri.dataDir, 'tls/ca.pem'), 'utf8');
    await deploy(petri);
  });
  after(async () => {
    await petri?.destroy();
  });

  test('prints the CA; the app answers over HTTPS verified against DATA_DIR/tls/ca.pem, and knows it', async () => {
    assert.match(petri.output, new RegExp(`HTTPS: https://NAME\\.petri\\.localhost:${petri.httpsPort}`));
    assert.match(petri.output, new RegExp(`Local CA .*${petri.dataDir}/tls/ca\\.pem`));
    const res = await httpsGet(petri.httpsPort, HOST, ca);
    assert.equal(res.status, 200);
    const seen = JSON.parse(res.body) as { proto: string; host: string; port: string };
    assert.equal(seen.proto, 'https');
    assert.equal(seen.host, HOST);
    assert.equal(seen.port, String(petri.httpsPort));
    assert.equal(res.headers['strict-transport-security'], undefined, 'no HSTS with the local CA');
    // The API host too.
    assert.equal((await httpsGet(petri.httpsPort, 'petri.localhost', ca, '/v1/openapi.json')).status, 200);
  });

  test('HTTP/2 by ALPN; TLS 1.1 refused', async () => {
    const { alpn, body } = await h2Get(petri.httpsPort, HOST, ca);
    assert.equal(alpn, 'h2');
    assert.equal((JSON.parse(body) as { proto: string }).proto, 'https');
    assert.match(await handshake(petri.httpsPort, ca, 'TLSv1', 'TLSv1.1'), /PROTOCOL_VERSION/);
    assert.equal(await handshake(petri.httpsPort, ca, 'TLSv1.2', 'TLSv1.2'), 'TLSv1.2');
  });

  test('plain HTTP keeps working on a laptop: no redirect', async () => {
    const res = await petri.app('fwd');
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body) as { proto: string }).proto, 'http');
  });
});

describe('HTTPS, wildcard', () => {
  let petri: TestPetri;
  let operatorCaDir: string;
  let operator: LocalCa;
  let certFile: string;
  let keyFile: string;

  const writePair = async (hosts: string[], opts: { days?: number; otherKey?: boolean } = {}) => {
    const pair = await operator.issueHostCertificate(hosts, opts.days);
    const key = opts.otherKey ? (await operator.issueHostCertificate(hosts)).keyPem : pair.keyPem;
    writeFileSync(certFile, pair.certPem);
    writeFileSync(keyFile, key);
  };

  before(async () => {
    operatorCaDir = mkdtempSync(path.join(tmpdir(), 'petri-operator-'));
    operator = (await LocalCa.open(path.join(operatorCaDir, 'ca'))).ca;
    certFile = path.join(operatorCaDir, 'wildcard.pem');
    keyFile = path.join(operatorCaDir, 'wildcard.key');
    await writePair(['*.petri.localhost', 'petri.localhost']);
    petri = await TestPetri.start({ bootTimeoutMs: BOOT_MS, tls: { mode: 'wildcard', certFile, keyFile } });
    await deploy(petri);
  });
  after(async () => {
    await petri?.destroy();
    rmSync(operatorCaDir, { recursive: true, force: true });
  });

  test("serves the operator's certificate with HSTS; HTTP gets a 308 to HTTPS, /.well-known/ too", async () => {
    const res = await httpsGet(petri.httpsPort, HOST, operator.certPem);
    assert.equal(res.status, 200);
    assert.equal(res.headers['strict-transport-security'], 'max-age=31536000');
    const plain = await petri.request(HOST, '/path?q=1');
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, `https://${HOST}:${petri.httpsPort}/path?q=1`);
    // Only the router's own answers are spared (test/router/tls): not a challenge it does not
    // hold, nor an app's documents there.
    for (const urlPath of ['/.well-known/acme-challenge/abc', '/.well-known/openid-configuration']) {
      assert.equal((await petri.request(HOST, urlPath)).status, 308, urlPath);
    }
    assert.doesNotMatch(petri.output, /Local CA/, 'no local CA in the wildcard mode');
  });

  test('a new pair is served within seconds under load, with no reload and no failed request', async () => {
    const pid = await workerPid(petri);
    const before = (await httpsGet(petri.httpsPort, HOST, operator.certPem)).serial;
    const load = new SteadyLoad(petri.httpsPort, HOST, {
      keepAlive: 3,
      fresh: 2,
      maxMs: 60_000,
      tls: { ca: operator.certPem },
    });
    try {
      await writePair(['*.petri.localhost', 'petri.localhost']);
      await until(async () => (await httpsGet(petri.httpsPort, HOST, operator.certPem)).serial !== before, {
        timeout: 20_000,
        message: 'the new wildcard certificate to be served',
      });
    } finally {
      const result = await load.stop();
      assert.ok(result.requests > 50, `${result.requests} requests`);
      assert.deepEqual(result.failures, [], `${result.failures.length} of ${result.requests} failed`);
    }
    assert.equal(await workerPid(petri), pid, 'the same HAProxy worker: no reload');
  });

  test('a bad new pair is refused with a warning, and the old one keeps serving', async () => {
    const serving = (await httpsGet(petri.httpsPort, HOST, operator.certPem)).serial;
    for (const [bad, why] of [
      [() => writePair(['*.other.example']), /not for \*\.petri\.localhost/],
      [() => writePair(['*.petri.localhost'], { otherKey: true }), /not the certificate's/],
      [() => writePair(['*.petri.localhost'], { days: -1 }), /expired/],
    ] as const) {
      const seen = petri.output.length;
      await bad();
      await until(() => why.test(petri.output.slice(seen)), {
        timeout: 20_000,
        message: `a warning matching ${why}`,
      });
      assert.match(petri.output.slice(seen), /new wildcard certificate refused/);
      assert.equal((await httpsGet(petri.httpsPort, HOST, operator.certPem)).serial, serving);
    }
    assert.doesNotMatch(petri.output, /BEGIN (EC )?PRIVATE KEY/, 'no key in the log');
  });
});

describe('HTTPS, wildcard files refused at start', () => {
  let dir: string;
  let operator: LocalCa;
  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-badtls-'));
    operator = (await LocalCa.open(path.join(dir, 'ca'))).ca;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('expired, for another domain, another key, missing: a clear error, nothing left running', async () => {
    const certFile = path.join(dir, 'w.pem');
    const keyFile = path.join(dir, 'w.key');
    const cases: [string, () => Promise<void>, RegExp][] = [
      [
        'expired',
        async () => pair(await operator.issueHostCertificate(['*.petri.localhost'], -1)),
        /expired on/,
      ],
      [
        'other domain',
        async () => pair(await operator.issueHostCertificate(['*.example.org'])),
        /not for \*\.petri\.localhost/,
      ],
      [
        'other key',
        async () => {
          const a = await operator.issueHostCertificate(['*.petri.localhost']);
          const b = await operator.issueHostCertificate(['*.petri.localhost']);
          pair({ certPem: a.certPem, keyPem: b.keyPem });
        },
        /not the certificate's/,
      ],
      ['missing', async () => rmSync(keyFile), /cannot read tls\.keyFile .*ENOENT/],
      [
        'not PEM',
        async () => {
          pair(await operator.issueHostCertificate(['*.petri.localhost']));
          writeFileSync(certFile, 'hello');
        },
        /no PEM certificate/,
      ],
    ];
    function pair(p: { certPem: string; keyPem: string }): void {
      writeFileSync(certFile, p.certPem);
      writeFileSync(keyFile, p.keyPem);
    }
    for (const [name, make, message] of cases) {
      await make();
      const data = path.join(dir, `data-${name.replace(/ /g, '-')}`);
      const config = path.join(dir, 'config.json');
      writeFileSync(
        config,
        JSON.stringify({
          httpPort: await freePort(),
          httpsPort: await freePort(),
          apiPort: await freePort(),
          wakerPort: await freePort(),
          cgroupParent: `petri-badtls-${path
            .basename(dir)
            .slice(-6)
            .toLowerCase()
            .replace(/[^a-z0-9]/g, 'x')}`,
          network: { enabled: false, bridge: 'unused', subnet: '10.213.252.0/24' },
          mail: { enabled: false },
          logLevel: 'warn',
          addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'off' } },
          tls: { mode: 'wildcard', certFile, keyFile },
        }),
      );
      try {
        const started = await runPetriServer(['--data-dir', data, '--config', config]);
        assert.equal(started.running, false, `${name}: started anyway`);
        assert.notEqual(started.code, 0);
        assert.match(started.output, /the wildcard certificate .* is refused|cannot read tls/, name);
        assert.match(started.output, message, name);
        assert.doesNotMatch(started.output, /PRIVATE KEY/);
      } finally {
        await runPetriServer(['--data-dir', data, '--config', config, '--stop-all']);
      }
    }
  });
});
