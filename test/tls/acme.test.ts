// Certificates from ACME end to end (issue 20): a real Petri in the acme mode against Debian's
// pebble on loopback, HAProxy answering the HTTP-01 challenges. An app's host gets its own
// certificate and the router serves it (checked with pebble's root, as a browser would); a
// renewal window longer than the certificates' life renews them, swapped in with no reload; a
// challenge the CA cannot fetch and a directory that is down are failures recorded with their
// reason and retried later, shown by `petri certs`; only admins and auditors read them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls, { type PeerCertificate } from 'node:tls';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { parseShowInfo, sendCommand } from '../../src/router/runtime-api.js';
import { TestPetri } from '../e2e/petri.js';
import { Pebble } from './pebble.js';

interface Listed {
  mode: string;
  renewBeforeDays: number;
  default: { names: string[]; issuer: string; notAfter: string; daysLeft: number } | null;
  certificates: {
    host: string;
    source: string;
    issuer: string | null;
    serial: string | null;
    notBefore: string | null;
    notAfter: string | null;
    daysLeft: number | null;
    expiringSoon: boolean;
    lastAttemptAt: string | null;
    lastOutcome: string | null;
    failures: number;
    nextAttemptAt: string | null;
    unwantedSince: string | null;
  }[];
}

/** pebble's certificates live this long; with renewBeforeDays 1 each is renewed a third of
 * the way through (src/controllers/certificates.ts renewalTime): every 40 s. */
const LIFE_SECONDS = 120;

describe('certificates from ACME (pebble) in a real Petri', { timeout: 300_000 }, () => {
  let pebble: Pebble;
  let petri: TestPetri;

  before(async () => {
    const httpPort = await freePort();
    pebble = await Pebble.start({ httpPort, validitySeconds: LIFE_SECONDS });
    petri = await TestPetri.start(
      {
        tls: {
          mode: 'acme',
          acme: { directoryUrl: pebble.directoryUrl, email: 'ops@example.org', caFile: pebble.caFile },
          renewBeforeDays: 1,
        },
        // Custom domains are checked through the router, their names resolved by pebble's DNS.
        domains: {
          verifyPort: httpPort,
          resolver: [`127.0.0.1:${pebble.dnsPort}`],
          addresses: ['127.0.0.1'],
        },
      },
      { httpPort },
    );
  });

  after(async () => {
    await petri?.destroy();
    await pebble?.stop();
  });

  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `petri ${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  const listed = async () => JSON.parse((await ok(['certs', '--json'])).stdout) as Listed;
  const certOf = async (host: string) => (await listed()).certificates.find((c) => c.host === host);
  /** The host's entry once `ready` holds for it. */
  const certWhen = (host: string, ready: (c: Listed['certificates'][number]) => boolean, message: string) =>
    until(
      async () => {
        const cert = await certOf(host);
        return cert && ready(cert) ? cert : undefined;
      },
      { timeout: 60_000, message: `${message}: ${petri.output.slice(-2000)}` },
    );

  /** The certificate the router serves for `host` (SNI), not checked. */
  const served = (host: string) =>
    new Promise<PeerCertificate>((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port: petri.httpsPort, servername: host, rejectUnauthorized: false },
        () => {
          resolve(socket.getPeerCertificate());
          socket.end();
        },
      );
      socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
      socket.on('error', reject);
    });

  /** An HTTPS request as a browser would make it, trusting pebble's root only. */
  const httpsGet = (host: string) =>
    new Promise<{ status: number; cert: PeerCertificate }>((resolve, reject) => {
      const req = https.get(
        {
          host: '127.0.0.1',
          port: petri.httpsPort,
          servername: host,
          headers: { host },
          ca: pebble.root,
          agent: false,
        },
        (res) => {
          const cert = (res.socket as tls.TLSSocket).getPeerCertificate();
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cert }));
        },
      );
      req.setTimeout(10_000, () => req.destroy(new Error('HTTPS request timed out')));
      req.on('error', reject);
    });

  const worker = async () =>
    Number(
      parseShowInfo(await sendCommand(path.join(petri.dataDir, 'router', 'admin.sock'), 'show info')).get(
        'Pid',
      ),
    );

  test("an app's host gets a certificate from the ACME directory and the router serves it", async () => {
    await ok(['apps', 'create', 'shop']);
    const host = 'shop.petri.localhost';
    const cert = await certWhen(host, (c) => c.serial !== null, `a certificate for ${host}`);
    assert.equal(cert.source, 'acme');
    assert.match(cert.issuer ?? '', /^Pebble Intermediate CA/);
    assert.equal(cert.lastOutcome, 'ok');
    // Checked against pebble's root alone, for the host's name.
    const { status, cert: peer } = await httpsGet(host);
    assert.ok(status > 0);
    assert.match(String(peer.issuer.CN), /^Pebble Intermediate CA/);
    assert.match(peer.subjectaltname ?? '', /DNS:shop\.petri\.localhost/);
    // The account key is the platform's alone.
    const keyFile = path.join(petri.dataDir, 'tls', 'acme', 'account.key');
    assert.match(readFileSync(keyFile, 'utf8'), /BEGIN PRIVATE KEY/);
  });

  test("the API's host gets a certificate of its own too, served instead of the default one", async () => {
    await until(async () => (await certOf('petri.localhost'))?.lastOutcome === 'ok', {
      timeout: 30_000,
      message: 'a certificate for the API host',
    });
    const api = await httpsGet('petri.localhost');
    assert.match(String(api.cert.issuer.CN), /^Pebble Intermediate CA/);
    assert.match(api.cert.subjectaltname ?? '', /DNS:petri\.localhost/);
  });

  test('a renewal window longer than the certificate’s life renews it: a new serial served, no reload', async () => {
    const host = 'shop.petri.localhost';
    const before = await served(host);
    const pid = await worker();
    const renewed = await until(
      async () => {
        const now = await served(host);
        return now.serialNumber !== before.serialNumber && now;
      },
      { timeout: LIFE_SECONDS * 1000, interval: 500, message: 'a renewed certificate served' },
    );
    assert.match(String(renewed.issuer.CN), /^Pebble Intermediate CA/);
    assert.equal(await worker(), pid, 'the same HAProxy worker: no reload');
    const cert = await certOf(host);
    assert.equal(cert?.serial, renewed.serialNumber.toLowerCase());
    // Validated as a browser would, the renewed one too.
    assert.match((await httpsGet(host)).cert.subjectaltname ?? '', /shop\.petri\.localhost/);
  });

  test('`petri certs --json`: one entry per host with its facts; the human table highlights what expires soon', async () => {
    const list = await listed();
    assert.equal(list.mode, 'acme');
    assert.equal(list.renewBeforeDays, 1);
    // The local CA's default certificate serves any other host until a host's own is in.
    assert.ok(list.default?.names.includes('*.petri.localhost'), JSON.stringify(list.default));
    assert.match(list.default?.issuer ?? '', /^Petri local CA/);
    const shop = list.certificates.find((c) => c.host === 'shop.petri.localhost');
    assert.ok(shop);
    assert.deepEqual(Object.keys(shop).sort(), [
      'daysLeft',
      'expiringSoon',
      'failures',
      'host',
      'issuer',
      'lastAttemptAt',
      'lastOutcome',
      'nextAttemptAt',
      'notAfter',
      'notBefore',
      'ocsp',
      'serial',
      'source',
      'unwantedSince',
    ]);
    // Pebble, like Let's Encrypt now, names no OCSP responder: nothing to staple, and it says so.
    assert.equal((shop as unknown as { ocsp: { state: string } }).ocsp.state, 'none');
    assert.equal(shop.daysLeft, 0);
    assert.equal(shop.expiringSoon, true);
    assert.equal(shop.failures, 0);
    assert.ok(Date.parse(shop.notAfter!) - Date.parse(shop.notBefore!) <= LIFE_SECONDS * 1000);
    const text = (await ok(['certs'])).stdout;
    assert.match(text, /HOST\s+SOURCE\s+ISSUER\s+EXPIRES\s+DAYS LEFT\s+OCSP\s+LAST ATTEMPT\s+OUTCOME/);
    assert.match(
      text,
      /shop\.petri\.localhost\s+acme\s+Pebble Intermediate CA \S+\s+\S+\s+0\s+none\s+\S+\s+ok/,
    );
    assert.match(text, /expiring within 14 days/);
    // Prometheus: days to expiry per host (under a day here: a fraction of 0).
    const metrics = await fetch(`${petri.apiUrl}/metrics`, {
      headers: { authorization: `Bearer ${petri.token}` },
    });
    assert.match(
      await metrics.text(),
      /^petri_certificate_expiry_days\{host="shop\.petri\.localhost"\} 0\.\d+$/m,
    );
  });

  test('only admins and auditors read the certificates', async () => {
    await ok(['teams', 'create', 'shoppers']);
    const bot = JSON.parse(
      (await ok(['users', 'create-bot', 'clerk', '--team', 'shoppers', '--role', 'member', '--json'])).stdout,
    ) as { secret: string };
    const asMember = await fetch(`${petri.apiUrl}/v1/certs`, {
      headers: { authorization: `Bearer ${bot.secret}` },
    });
    assert.equal(asMember.status, 403);
    assert.equal((await fetch(`${petri.apiUrl}/v1/certs`)).status, 401);
    // (Auditors read them: test/api/route-access.test.ts, GET /v1/certs at platform.read.)
    assert.equal((await petri.cli(['certs'])).code, 0, 'the admin can');
  });

  test('a custom domain, once verified, gets its certificate from the ACME directory too', async () => {
    const added = JSON.parse(
      (await ok(['domains', 'add', 'www.shop.test', '--app', 'shop', '--json'])).stdout,
    ) as { domain: { verification: { txt: string; token: string } } };
    // The owner's proof that the name is theirs.
    await pebble.setTxt(added.domain.verification.txt, added.domain.verification.token);
    const cert = await certWhen(
      'www.shop.test',
      (c) => c.serial !== null,
      'a certificate for the custom domain',
    );
    assert.equal(cert.source, 'acme');
    assert.match(cert.issuer ?? '', /^Pebble Intermediate CA/);
    const { cert: peer } = await httpsGet('www.shop.test');
    assert.match(peer.subjectaltname ?? '', /DNS:www\.shop\.test/);
    // petri domains says so.
    const listed = JSON.parse((await ok(['domains', '--app', 'shop', '--json'])).stdout) as {
      domains: { host: string; status: string; certificate: { issuer: string | null } | null }[];
    };
    const www = listed.domains.find((d) => d.host === 'www.shop.test');
    assert.equal(www?.status, 'active');
    assert.match(www?.certificate?.issuer ?? '', /^Pebble Intermediate CA/);
  });

  test('a challenge the CA cannot fetch: the failure and its reason are recorded, and retried later', async () => {
    // pebble resolves this one host to 127.0.0.2, where no router listens.
    await pebble.addA('lost.petri.localhost', '127.0.0.2');
    await ok(['apps', 'create', 'lost']);
    const cert = await certWhen('lost.petri.localhost', (c) => c.failures > 0, 'a recorded failure');
    assert.equal(cert.issuer, null);
    assert.match(cert.lastOutcome ?? '', /127\.0\.0\.2.*connection refused/);
    // Tried again in 5 minutes, not at the next pass.
    const wait = Date.parse(cert.nextAttemptAt!) - Date.parse(cert.lastAttemptAt!);
    assert.equal(wait, 5 * 60_000);
    const text = (await ok(['certs'])).stdout;
    assert.match(
      text,
      /lost\.petri\.localhost\s+acme\s+-\s+none yet\s+-\s+-\s+\S+\s+failed: .*connection refused.*; next attempt/,
    );
    // The other hosts are not held back by it.
    assert.equal((await certOf('shop.petri.localhost'))?.failures, 0);
  });

  test('the ACME directory down: a recorded failure with backoff, shown in petri certs; nothing crashes', async () => {
    await pebble.stop();
    await ok(['apps', 'create', 'late']);
    // The first host tried (the new one, or a renewal that fell due) fails; the others wait
    // out the directory's own delay rather than fail one by one.
    const failed = await until(
      async () => (await listed()).certificates.find((c) => /not reachable/.test(c.lastOutcome ?? '')),
      { timeout: 60_000, message: 'a recorded failure of the directory' },
    );
    assert.match(failed.lastOutcome ?? '', /not reachable.*ECONNREFUSED/);
    assert.equal(failed.failures, 1);
    assert.equal(Date.parse(failed.nextAttemptAt!) - Date.parse(failed.lastAttemptAt!), 5 * 60_000);
    const text = (await ok(['certs'])).stdout;
    assert.match(
      text,
      new RegExp(`${failed.host.replace(/\./g, '\\.')} .*failed: .*not reachable.*; next attempt`),
    );
    // The control plane is fine, and the router still serves the certificates it had.
    assert.equal(petri.proc?.exitCode, null);
    assert.match(String((await served('shop.petri.localhost')).issuer.CN), /^Pebble Intermediate CA/);
  });
});
