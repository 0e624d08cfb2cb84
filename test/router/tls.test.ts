// HTTPS through the real HAProxy: certificates from a local CA checked by the client, HTTP/2
// by ALPN, TLS 1.1 refused, the redirect and HSTS, the router's well-known answers, and
// certificates added, swapped (under load, with no failed request) and removed through the
// runtime API with no reload.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { parseShowInfo, sendCommand } from '../../src/router/runtime-api.js';
import { LocalCa } from '../../src/tls/local-ca.js';
import { SteadyLoad } from '../e2e/load.js';
import { type Backend, get, makeRouterWorld, type RouterWorld, startBackend } from './helpers.js';

interface TlsReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  serial: string;
  subjectAltName: string;
}

function httpsGet(port: number, host: string, ca: string, urlPath = '/'): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: urlPath, servername: host, headers: { host }, ca, agent: false },
      (res) => {
        const cert = (res.socket as tls.TLSSocket).getPeerCertificate();
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body,
            serial: cert.serialNumber,
            subjectAltName: cert.subjectaltname ?? '',
          }),
        );
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The serial of the certificate served for this SNI name (unverified: which one is it?). */
function servedSerial(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

describe('HTTPS at the router', () => {
  let world: RouterWorld;
  let app: Backend;
  let ca: LocalCa;
  let caDir: string;
  let httpsPort: number;
  const worker = async () =>
    Number(parseShowInfo(await sendCommand(`${world.dir}/admin.sock`, 'show info')).get('Pid'));

  before(async () => {
    caDir = mkdtempSync(path.join(os.tmpdir(), 'petri-ca-'));
    ca = (await LocalCa.open(caDir)).ca;
    const def = await ca.issueHostCertificate(['*.petri.localhost', 'petri.localhost']);
    httpsPort = await freePort();
    world = await makeRouterWorld({
      https: { port: httpsPort, hsts: true, redirectHttp: true },
      defaultCertificate: def.certPem + def.keyPem,
    });
    app = await startBackend('app');
    await world.router.start();
    await world.router.apply([
      { host: 'app.petri.localhost', app: 'app', servers: [app.route] },
      { host: 'shop.example.org', app: 'app', servers: [app.route] },
    ]);
  });

  after(async () => {
    await world?.cleanup();
    await app?.close();
    rmSync(caDir, { recursive: true, force: true });
  });

  it('serves apps over HTTPS with a certificate the local CA signed; the app sees X-Forwarded-Proto https', async () => {
    const reply = await httpsGet(httpsPort, 'app.petri.localhost', ca.certPem, '/x');
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^backend:app \/x/);
    assert.equal(reply.headers['x-forwarded-proto-seen'], 'https');
    assert.match(reply.subjectAltName, /DNS:\*\.petri\.localhost/);
  });

  it('negotiates HTTP/2 by ALPN', async () => {
    const session = http2.connect(`https://127.0.0.1:${httpsPort}`, {
      ca: ca.certPem,
      servername: 'app.petri.localhost',
    });
    try {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/h2', ':authority': 'app.petri.localhost' });
        let status = 0;
        let body = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8');
        req.on('data', (c: string) => (body += c));
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal(status, 200);
      assert.match(body, /^backend:app \/h2/);
    } finally {
      session.close();
    }
  });

  it('refuses TLS 1.1 (the server says protocol version), takes 1.2 and 1.3', async () => {
    const attempt = (minVersion: tls.SecureVersion, maxVersion: tls.SecureVersion) =>
      new Promise<string>((resolve) => {
        const socket = tls.connect({
          host: '127.0.0.1',
          port: httpsPort,
          servername: 'app.petri.localhost',
          ca: ca.certPem,
          minVersion,
          maxVersion,
          // The client's own floor is lowered, so that a refusal is the server's.
          ciphers: 'DEFAULT@SECLEVEL=0',
        });
        socket.on('secureConnect', () => {
          resolve(socket.getProtocol() ?? '?');
          socket.end();
        });
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
      });
    assert.match(await attempt('TLSv1', 'TLSv1.1'), /error ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION/);
    assert.equal(await attempt('TLSv1.2', 'TLSv1.2'), 'TLSv1.2');
    assert.equal(await attempt('TLSv1.3', 'TLSv1.3'), 'TLSv1.3');
  });

  it("redirects HTTP with 308 to the https port, but the router's well-known answers; HSTS on HTTPS answers only", async () => {
    const plain = await get(world.opts.httpPort, `App.Petri.Localhost:${world.opts.httpPort}`, '/a?b=c');
    assert.equal(plain.status, 308);
    assert.equal(plain.headers.location, `https://app.petri.localhost:${httpsPort}/a?b=c`);
    assert.equal(plain.headers['strict-transport-security'], undefined);
    // An app's own documents there (and a challenge the router does not hold) go to HTTPS too.
    for (const urlPath of ['/.well-known/openid-configuration', '/.well-known/acme-challenge/none']) {
      assert.equal((await get(world.opts.httpPort, 'app.petri.localhost', urlPath)).status, 308, urlPath);
    }
    await world.router.setWellKnown('/.well-known/acme-challenge/held', 'held.Thumb');
    const held = await get(world.opts.httpPort, 'app.petri.localhost', '/.well-known/acme-challenge/held');
    assert.equal(held.status, 200);
    assert.equal(held.body, 'held.Thumb');
    await world.router.deleteWellKnown('/.well-known/acme-challenge/held');
    const secure = await httpsGet(httpsPort, 'app.petri.localhost', ca.certPem);
    assert.equal(secure.headers['strict-transport-security'], 'max-age=31536000');
    // The router's own answers too (an unknown host's 404).
    const unknown = await httpsGet(httpsPort, 'nobody.petri.localhost', ca.certPem);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.headers['strict-transport-security'], 'max-age=31536000');
  });

  it("answers the router's well-known paths on every host, over HTTP and HTTPS, until deleted", async () => {
    const urlPath = '/.well-known/acme-challenge/tok_en-1';
    const body = `tok_en-1.${randomBytes(8).toString('hex')}`;
    const pid = await worker();
    await world.router.setWellKnown(urlPath, body);
    await world.router.setWellKnown(urlPath, body); // idempotent
    for (const host of ['app.petri.localhost', 'unrouted.example.net']) {
      const plain = await get(world.opts.httpPort, host, urlPath);
      assert.equal(plain.status, 200, host);
      assert.equal(plain.body, body);
      assert.match(String(plain.headers['content-type']), /^text\/plain/);
    }
    assert.equal((await httpsGet(httpsPort, 'app.petri.localhost', ca.certPem, urlPath)).body, body);
    // The file follows in a batch (for a reload or a restart to load).
    await until(() => readFileSync(`${world.dir}/well-known.map`, 'utf8').includes(`${urlPath} ${body}\n`), {
      timeout: 5000,
      message: 'the well-known map file to hold the answer',
    });
    // On a gated app's host too: the gate would otherwise send the ACME server to sign in.
    await world.router.apply([
      { host: 'app.petri.localhost', app: 'app', servers: [app.route] },
      { host: 'shop.example.org', app: 'app', servers: [app.route] },
      { host: 'lab.petri.localhost', app: 'lab', servers: [app.route], gate: { key: 'k'.repeat(43) } },
    ]);
    const gatedPage = await httpsGet(httpsPort, 'lab.petri.localhost', ca.certPem, '/');
    assert.equal(gatedPage.status, 302, 'the gate is on');
    const gated = await get(world.opts.httpPort, 'lab.petri.localhost', urlPath);
    assert.equal(gated.status, 200);
    assert.equal(gated.body, body);
    await world.router.deleteWellKnown(urlPath);
    // No longer the router's: HTTP redirects it like any path, HTTPS finds no app.
    assert.equal((await get(world.opts.httpPort, 'unrouted.example.net', urlPath)).status, 308);
    assert.equal((await httpsGet(httpsPort, 'nobody.petri.localhost', ca.certPem, urlPath)).status, 404);
    assert.equal(await worker(), pid, 'no reload');
  });

  it('refuses well-known paths and bodies outside their patterns', async () => {
    for (const [p, b] of [
      ['/.well-known/other/x', 'a'],
      ['/.well-known/acme-challenge/a b', 'a'],
      ['/.well-known/acme-challenge/a\nset map x', 'a'],
      ['/.well-known/acme-challenge/ok', 'a b'],
      ['/.well-known/acme-challenge/ok', '%[src]'],
      ['/.well-known/acme-challenge/ok', 'x'.repeat(513)],
      [`/.well-known/acme-challenge/${'x'.repeat(129)}`, 'a'],
    ] as const) {
      await assert.rejects(world.router.setWellKnown(p, b), /must match/, `${p} ${b}`);
    }
  });

  it('adds, replaces and removes a host certificate with no reload; files mode 600', async () => {
    const pid = await worker();
    const defaultSerial = await servedSerial(httpsPort, 'shop.example.org');
    const first = await ca.issueHostCertificate(['shop.example.org']);
    await world.router.setCertificate('shop.example.org', first.certPem + first.keyPem);
    const one = await httpsGet(httpsPort, 'shop.example.org', ca.certPem);
    assert.equal(one.status, 200);
    assert.match(one.subjectAltName, /DNS:shop\.example\.org/);
    // Again: nothing changes.
    await world.router.setCertificate('shop.example.org', first.certPem + first.keyPem);
    const second = await ca.issueHostCertificate(['shop.example.org']);
    // Blank lines and text around the blocks, as files often have: the payload has none.
    await world.router.setCertificate(
      'shop.example.org',
      `Bag Attributes\n${second.certPem}\n\n${second.keyPem}\n\n`,
    );
    const two = await httpsGet(httpsPort, 'shop.example.org', ca.certPem);
    assert.notEqual(two.serial, one.serial);
    const file = `${world.dir}/certs/shop.example.org.pem`;
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(
      readFileSync(`${world.dir}/certs.list`, 'utf8'),
      /certs\/shop\.example\.org\.pem shop\.example\.org\n/,
    );
    await world.router.removeCertificate('shop.example.org');
    assert.equal(await servedSerial(httpsPort, 'shop.example.org'), defaultSerial);
    assert.doesNotMatch(readFileSync(`${world.dir}/certs.list`, 'utf8'), /shop/);
    assert.equal(await worker(), pid, 'no reload');
  });

  it("serves a host's own certificate for a name the default one also covers (the API host, app hosts)", async () => {
    const defaultSerial = await servedSerial(httpsPort, 'petri.localhost');
    for (const host of ['petri.localhost', 'app.petri.localhost']) {
      const own = await ca.issueHostCertificate([host]);
      await world.router.setCertificate(host, own.certPem + own.keyPem);
      const served = await httpsGet(httpsPort, host, ca.certPem);
      assert.equal(served.subjectAltName, `DNS:${host}`, host);
    }
    // Any other name still gets the default.
    assert.equal(await servedSerial(httpsPort, 'other.petri.localhost'), defaultSerial);
    await world.router.removeCertificate('petri.localhost');
    await world.router.removeCertificate('app.petri.localhost');
    assert.equal(await servedSerial(httpsPort, 'petri.localhost'), defaultSerial);
  });

  it('keeps certificates and well-known answers across a reload', async () => {
    const cert = await ca.issueHostCertificate(['kept.example.org']);
    await world.router.setCertificate('kept.example.org', cert.certPem + cert.keyPem);
    await world.router.setWellKnown('/.well-known/petri-domain/7', 'token7');
    const serial = await servedSerial(httpsPort, 'kept.example.org');
    const pid = await worker();
    // A reload not the router's own (an operator's) loads the file: once its batch is written.
    await until(() => readFileSync(`${world.dir}/well-known.map`, 'utf8').includes('/7 token7\n'), {
      timeout: 5000,
      message: 'the well-known map file to hold the answer',
    });
    await sendCommand(`${world.dir}/master.sock`, 'reload');
    await until(async () => (await worker().catch(() => pid)) !== pid, { timeout: 10_000 });
    assert.equal(await servedSerial(httpsPort, 'kept.example.org'), serial);
    assert.equal(
      (await get(world.opts.httpPort, 'x.example.org', '/.well-known/petri-domain/7')).body,
      'token7',
    );
    // And a change after the reload still goes through the runtime API.
    const next = await ca.issueHostCertificate(['kept.example.org']);
    await world.router.setCertificate('kept.example.org', next.certPem + next.keyPem);
    assert.notEqual(await servedSerial(httpsPort, 'kept.example.org'), serial);
  });

  it('refuses odd names, a key of another certificate and a chain too big to swap in', async () => {
    const good = await ca.issueHostCertificate(['odd.example.org']);
    const pem = good.certPem + good.keyPem;
    for (const name of [
      'a b.example.org',
      'odd.example.org\nshow ssl cert',
      '../../etc/passwd',
      'Odd.example.org',
      '*.example.org',
      '',
      `${'a'.repeat(64)}.org`,
    ]) {
      await assert.rejects(world.router.setCertificate(name, pem), /certificate name/, JSON.stringify(name));
    }
    const other = await ca.issueHostCertificate(['odd.example.org']);
    await assert.rejects(
      world.router.setCertificate('odd.example.org', good.certPem + other.keyPem),
      /not the certificate's/,
    );
    await assert.rejects(world.router.setCertificate('odd.example.org', good.keyPem), /0 certificate/);
    const huge = good.certPem + ca.certPem.repeat(40) + good.keyPem;
    await assert.rejects(
      world.router.setCertificate('odd.example.org', huge),
      /more than the router can swap in/,
    );
    await assert.rejects(world.router.removeCertificate('_default'), /never removed/);
    // Nothing half-made is left in the running worker.
    const loaded = await sendCommand(`${world.dir}/admin.sock`, 'show ssl cert');
    assert.doesNotMatch(loaded, /odd\.example\.org/);
  });

  it('swaps a certificate under load over fresh and kept-alive connections: no request fails', async () => {
    const host = 'busy.example.org';
    const cert = await ca.issueHostCertificate([host]);
    await world.router.apply([
      { host: 'app.petri.localhost', app: 'app', servers: [app.route] },
      { host, app: 'app', servers: [app.route] },
    ]);
    await world.router.setCertificate(host, cert.certPem + cert.keyPem);
    const load = new SteadyLoad(httpsPort, host, {
      keepAlive: 4,
      fresh: 4,
      maxMs: 60_000,
      tls: { ca: ca.certPem },
    });
    const pid = await worker();
    const serials = new Set<string>();
    for (let i = 0; i < 10; i++) {
      const next = await ca.issueHostCertificate([host]);
      await world.router.setCertificate(host, next.certPem + next.keyPem);
      serials.add(await servedSerial(httpsPort, host));
    }
    const result = await load.stop();
    assert.ok(result.requests > 100, `${result.requests} requests`);
    assert.deepEqual(result.failures, []);
    assert.equal(serials.size, 10, 'each swap served at once');
    assert.equal(await worker(), pid, 'no reload');
    // The app's server was added at runtime: its connections are kept and reused all the same
    // (config.ts SERVER_OPTIONS), not one new connection to the app per request.
    const stat = (await sendCommand(`${world.dir}/admin.sock`, 'show stat -1 4 -1')).split('\n');
    const columns = (stat[0] ?? '').replace(/^# /, '').split(',');
    const row = stat.map((l) => l.split(',')).find((f) => f[1] === app.route.id);
    const reuse = Number(row?.[columns.indexOf('reuse')]);
    const connect = Number(row?.[columns.indexOf('connect')]);
    // (A fresh client connection's first request still gets a new one: http-reuse safe.)
    assert.ok(reuse > connect, `connections to the app: ${connect} made, ${reuse} reused`);
  });
});
