// OCSP stapling through the real HAProxy: a CA made with the openssl CLI, whose responder is
// `openssl ocsp` (behind a loopback HTTP front that can also misbehave: down, hanging, 100 MB,
// another serial's answer), certificates naming it in their AIA; clients ask for the status
// in the handshake (Node's requestOCSP, openssl s_client -status).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { HaproxyRouter } from '../../src/router/haproxy-router.js';
import type { Router } from '../../src/router/router.js';
import { LocalCa } from '../../src/tls/local-ca.js';
import {
  checkOcspResponse,
  fetchOcspResponse,
  OcspStapler,
  type OcspTarget,
  ocspTarget,
  withOcspStapling,
} from '../../src/tls/ocsp.js';
import { type Backend, makeRouterWorld, type RouterWorld, startBackend } from '../router/helpers.js';

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

/** A CA (ECDSA P-256), its delegated OCSP signer, and leaves naming the responder. */
class TestCa {
  private readonly index: Map<string, string> = new Map();
  constructor(
    readonly dir: string,
    readonly responderUrl: string,
  ) {
    openssl(dir, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-subj',
      '/CN=Test OCSP CA',
      '-days',
      '30',
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    this.issue('ocsp-signer', 'extendedKeyUsage=OCSPSigning');
  }

  /** chain PEM (leaf, CA, key) and serial (hex, upper case). */
  issue(
    name: string,
    ext = `subjectAltName=DNS:${name}\nauthorityInfoAccess=OCSP;URI:${this.responderUrl}`,
  ): {
    pem: string;
    serial: string;
  } {
    const d = this.dir;
    writeFileSync(
      path.join(d, `${name}.ext`),
      `basicConstraints=CA:false\nkeyUsage=critical,digitalSignature\n${ext}\n`,
    );
    openssl(d, [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    ]);
    openssl(d, [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '10',
      '-extfile',
      `${name}.ext`,
    ]);
    const serial = openssl(d, ['x509', '-in', `${name}.pem`, '-noout', '-serial'])
      .toString()
      .trim()
      .split('=')[1] as string;
    this.setStatus(serial, 'V');
    const read = (f: string) => readFileSync(path.join(d, f), 'utf8');
    return { pem: read(`${name}.pem`) + read('ca.pem') + read(`${name}.key`), serial };
  }

  forget(serial: string): void {
    this.index.delete(serial);
    writeFileSync(path.join(this.dir, 'index.txt'), `${[...this.index.values()].join('\n')}\n`);
  }

  setStatus(serial: string, status: 'V' | 'R'): void {
    const expiry = '361231235959Z';
    this.index.set(
      serial,
      status === 'V'
        ? `V\t${expiry}\t\t${serial}\tunknown\t/CN=x`
        : `R\t${expiry}\t260101000000Z\t${serial}\tunknown\t/CN=x`,
    );
    writeFileSync(path.join(this.dir, 'index.txt'), `${[...this.index.values()].join('\n')}\n`);
    // Every leaf here has the same subject: openssl's index refuses that unless told.
    writeFileSync(path.join(this.dir, 'index.txt.attr'), 'unique_subject = no\n');
  }

  /** What `openssl ocsp` answers to this request, signed by `signer` (the delegated one). */
  respond(request: Buffer, signer = 'ocsp-signer', validity = ['-ndays', '1']): Buffer {
    const d = this.dir;
    writeFileSync(path.join(d, 'req.der'), request);
    openssl(d, [
      'ocsp',
      '-index',
      'index.txt',
      '-CA',
      'ca.pem',
      '-rsigner',
      `${signer}.pem`,
      '-rkey',
      `${signer}.key`,
      '-reqin',
      'req.der',
      '-respout',
      'resp.der',
      ...validity,
    ]);
    return readFileSync(path.join(d, 'resp.der'));
  }
}

type Mode = 'openssl' | 'down' | 'hang' | 'huge' | 'other';

/** The loopback responder: `openssl ocsp` per request, or one of the ways a responder fails. */
class Responder {
  mode: Mode = 'openssl';
  requests = 0;
  hugeBytesSent = 0;
  /** `other` answers about this request's certificate instead. */
  otherRequest: Buffer | undefined;
  private readonly hanging: http.ServerResponse[] = [];
  readonly server: http.Server;

  constructor(private readonly ca: () => TestCa) {
    this.server = http.createServer((req, res) => {
      this.requests++;
      if (this.mode === 'down') return void req.socket.destroy();
      if (this.mode === 'hang') return void this.hanging.push(res);
      if (this.mode === 'huge') return this.flood(res);
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const request = this.mode === 'other' ? (this.otherRequest as Buffer) : Buffer.concat(chunks);
        try {
          const der = this.ca().respond(request);
          res.writeHead(200, { 'content-type': 'application/ocsp-response' }).end(der);
        } catch (err) {
          res.writeHead(500).end(String(err));
        }
      });
    });
  }

  /** 100 MB, as fast as the client takes it. */
  private flood(res: http.ServerResponse): void {
    const chunk = Buffer.alloc(1 << 20, 0x30);
    res.writeHead(200, { 'content-type': 'application/ocsp-response' });
    const pump = () => {
      while (this.hugeBytesSent < 100 * (1 << 20)) {
        this.hugeBytesSent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      res.end();
    };
    res.on('error', () => undefined);
    pump();
  }

  close(): Promise<void> {
    for (const res of this.hanging.splice(0)) res.destroy();
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The OCSP response stapled to the handshake for this name, if any. */
function stapled(port: number, servername: string): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let response: Buffer | null = null;
    // requestOCSP is a TLSSocket option tls.connect passes on (missing from its type).
    const options: tls.ConnectionOptions & { requestOCSP: boolean } = {
      host: '127.0.0.1',
      port,
      servername,
      requestOCSP: true,
      rejectUnauthorized: false,
    };
    const socket = tls.connect(options);
    // Emitted with null when the server staples nothing.
    socket.on('OCSPResponse', (r: Buffer | null) => {
      response = r;
    });
    socket.on('secureConnect', () => {
      socket.end();
      resolve(response !== null && response.length > 0 ? response : undefined);
    });
    socket.on('error', reject);
  });
}

/** An HTTPS request through the router, checked against the CA: it is served. */
function served(port: number, host: string, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: host, ca }, () => {
      socket.write(`GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
    });
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.on('end', () => resolve(Number(text.split(' ')[1])));
    socket.on('error', reject);
  });
}

function target(pem: string): OcspTarget {
  const found = ocspTarget(pem);
  assert.ok(!('none' in found), 'none' in found ? found.none : '');
  return found;
}

describe('OCSP stapling at the router', () => {
  let dir: string;
  let ca: TestCa;
  let responder: Responder;
  let world: RouterWorld;
  let app: Backend;
  let stapler: OcspStapler;
  let router: Router;
  let httpsPort: number;
  /** The serial of good.petri.localhost's certificate. */
  let goodSerial: string;
  const warnings: { o: Record<string, unknown>; msg: string }[] = [];
  const logger = {
    info: () => undefined,
    warn: (o: object, msg?: string) =>
      void warnings.push({ o: o as Record<string, unknown>, msg: msg ?? '' }),
  };
  /** The stapled answer about `host`'s certificate, asked for with `sni`. */
  const status = async (host: string, sni = host) => {
    const der = await stapled(httpsPort, sni);
    return (
      der &&
      checkOcspResponse(
        new Uint8Array(der),
        target(
          readFileSync(path.join(dir, `${host}.pem`), 'utf8') +
            readFileSync(path.join(dir, 'ca.pem'), 'utf8'),
        ),
      )
    );
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-ocsp-'));
    const port = await freePort();
    responder = new Responder(() => ca);
    await new Promise<void>((resolve) => responder.server.listen(port, '127.0.0.1', resolve));
    ca = new TestCa(dir, `http://127.0.0.1:${port}/`);
    const local = (await LocalCa.open(path.join(dir, 'local'))).ca;
    const def = await local.issueHostCertificate(['*.petri.localhost', 'petri.localhost']);
    httpsPort = await freePort();
    world = await makeRouterWorld({
      https: { port: httpsPort, hsts: false, redirectHttp: false },
      defaultCertificate: def.certPem + def.keyPem,
    });
    app = await startBackend('app');
    await world.router.start();
    await world.router.apply(
      ['plain', 'good', 'late', 'revoked'].map((h) => ({
        host: `${h}.petri.localhost`,
        app: 'app',
        servers: [app.route],
      })),
    );
    stapler = new OcspStapler({
      router: world.router,
      logger,
      retryMs: 200,
      retryMaxMs: 400,
      fetchTimeoutMs: 1500,
      refreshMs: 700,
    });
    await stapler.start();
    router = withOcspStapling(world.router, stapler);
  });

  after(async () => {
    stapler?.stop();
    await world?.cleanup();
    await app?.close();
    await responder?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('staples nothing, and asks no one, for a certificate whose issuer offers no OCSP (the local CA)', async () => {
    assert.deepEqual(stapler.state('_default'), {
      state: 'none',
      detail: 'none offered by issuer',
      failures: 0,
    });
    const local = (await LocalCa.open(path.join(dir, 'local'))).ca;
    const cert = await local.issueHostCertificate(['plain.petri.localhost']);
    await router.setCertificate('plain.petri.localhost', cert.certPem + cert.keyPem);
    assert.equal(stapler.state('plain.petri.localhost')?.state, 'none');
    assert.equal(await stapled(httpsPort, 'plain.petri.localhost'), undefined);
    assert.equal(await served(httpsPort, 'plain.petri.localhost', local.certPem), 200);
    assert.equal(responder.requests, 0);
  });

  it("staples the responder's 'good' answer, seen by openssl s_client -status, and keeps it beside the certificate for reloads", async () => {
    const { pem, serial } = ca.issue('good.petri.localhost');
    goodSerial = serial;
    await router.setCertificate('good.petri.localhost', pem);
    const answer = await until(() => status('good.petri.localhost'), {
      timeout: 10_000,
      message: 'a stapled response',
    });
    assert.equal(answer.status, 'good');
    const client = execFileSync(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${httpsPort}`, '-servername', 'good.petri.localhost', '-status'],
      { input: '', stdio: 'pipe' },
    ).toString();
    assert.match(client, /OCSP Response Status: successful/);
    assert.match(client, new RegExp(`Serial Number: ${serial}[\\s\\S]*Cert Status: good`));
    assert.ok(existsSync(path.join(world.dir, 'certs', 'good.petri.localhost.pem.ocsp')));
    await until(() => stapler.state('good.petri.localhost')?.state === 'stapled', {
      timeout: 5_000,
      message: "the stapler's state",
    });
  });

  it('serves without a staple while the responder is down, retries, and staples once it answers', async () => {
    responder.mode = 'down';
    const { pem } = ca.issue('late.petri.localhost');
    await router.setCertificate('late.petri.localhost', pem);
    await until(() => (stapler.state('late.petri.localhost')?.failures ?? 0) >= 2, {
      timeout: 10_000,
      message: 'retries',
    });
    assert.equal(stapler.state('late.petri.localhost')?.state, 'failing');
    assert.equal(await stapled(httpsPort, 'late.petri.localhost'), undefined);
    assert.equal(
      await served(httpsPort, 'late.petri.localhost', readFileSync(path.join(dir, 'ca.pem'), 'utf8')),
      200,
    );
    responder.mode = 'openssl';
    const answer = await until(() => status('late.petri.localhost'), {
      timeout: 10_000,
      message: 'a stapled response',
    });
    assert.equal(answer.status, 'good');
  });

  it('staples no revoked answer, and warns the operator', async () => {
    const { pem, serial } = ca.issue('revoked.petri.localhost');
    ca.setStatus(serial, 'R');
    await router.setCertificate('revoked.petri.localhost', pem);
    await until(() => stapler.state('revoked.petri.localhost')?.state === 'revoked', {
      timeout: 10_000,
      message: 'revoked',
    });
    assert.ok(warnings.some((w) => w.o.certificate === 'revoked.petri.localhost' && /REVOKED/.test(w.msg)));
    assert.equal(await stapled(httpsPort, 'revoked.petri.localhost'), undefined);
  });

  for (const [mode, reason] of [
    ['other', /not about serial/],
    ['huge', /larger than 10000 bytes/],
    ['hang', /did not answer within 1500 ms/],
    ['down', /asking the OCSP responder failed/],
  ] as const) {
    it(`keeps the good response stapled when a refresh meets a responder that ${mode === 'other' ? 'answers about another serial' : mode === 'huge' ? 'sends 100 MB' : mode === 'hang' ? 'hangs' : 'is down'}`, async () => {
      if (mode === 'other')
        responder.otherRequest = Buffer.from(target(ca.issue('other.petri.localhost').pem).request);
      const before = stapler.state('good.petri.localhost')?.failures ?? 0;
      responder.mode = mode;
      await until(
        () => {
          const state = stapler.state('good.petri.localhost');
          return (state?.failures ?? 0) >= before + 2 && reason.test(state?.detail ?? '');
        },
        { timeout: 15_000, message: `failed refreshes (${mode})` },
      );
      assert.equal(stapler.state('good.petri.localhost')?.state, 'stapled');
      assert.equal((await status('good.petri.localhost'))?.status, 'good');
      if (mode === 'huge')
        assert.ok(responder.hugeBytesSent < 100 * (1 << 20), `${responder.hugeBytesSent} bytes sent`);
      responder.mode = 'openssl';
      await until(() => stapler.state('good.petri.localhost')?.failures === 0, {
        timeout: 10_000,
        message: 'a good refresh',
      });
    });
  }

  it('withdraws the staple when the certificate is revoked later', async () => {
    ca.setStatus(goodSerial, 'R');
    // The staple leaves HAProxy a moment before the stapler hears back from the runtime API
    // and records 'revoked': wait for both, as `petri certs` and a browser would see them.
    await until(
      async () =>
        stapler.state('good.petri.localhost')?.state === 'revoked' &&
        (await stapled(httpsPort, 'good.petri.localhost')) === undefined,
      { timeout: 10_000, message: 'no staple, and the state revoked' },
    );
    assert.ok(!existsSync(path.join(world.dir, 'certs', 'good.petri.localhost.pem.ocsp')));
    assert.equal(
      await served(httpsPort, 'good.petri.localhost', readFileSync(path.join(dir, 'ca.pem'), 'utf8')),
      200,
    );
  });

  it('staples the renewed certificate its own answer', async () => {
    const { pem, serial } = ca.issue('late.petri.localhost');
    await router.setCertificate('late.petri.localhost', pem);
    await until(
      async () => (await stapled(httpsPort, 'late.petri.localhost'))?.includes(Buffer.from(serial, 'hex')),
      {
        timeout: 10_000,
        message: "the renewed certificate's response",
      },
    );
  });

  it('staples the same after HAProxy restarts (from the file beside the certificate), and a new stapler takes over what runs', async () => {
    stapler.stop();
    await world.router.stop();
    await world.router.start();
    assert.equal((await status('late.petri.localhost'))?.status, 'good');
    const next = new OcspStapler({ router: world.router, logger, retryMs: 200, retryMaxMs: 400 });
    try {
      await next.start();
      assert.equal(next.state('plain.petri.localhost')?.state, 'none');
      await until(() => next.state('late.petri.localhost')?.state === 'stapled', {
        timeout: 10_000,
        message: 'the new stapler',
      });
    } finally {
      next.stop();
    }
  });

  it('keeps the default certificate stapled when a new control plane adopts the running HAProxy', async () => {
    const next = new OcspStapler({ router: world.router, logger, retryMs: 200, retryMaxMs: 400 });
    const { pem } = ca.issue('www.petri.localhost');
    try {
      await withOcspStapling(world.router, next).setCertificate('_default', pem);
      await until(
        async () => (await status('www.petri.localhost', 'nobody.example.org'))?.status === 'good',
        {
          timeout: 10_000,
          message: 'the default certificate stapled',
        },
      );
    } finally {
      next.stop();
    }
    // No stapler runs now: what is stapled after the adoption came from the file.
    const adopting = new HaproxyRouter({ ...world.opts, defaultCertificate: pem });
    await adopting.start();
    assert.equal((await status('www.petri.localhost', 'nobody.example.org'))?.status, 'good');
  });
});

describe('checking OCSP responses', () => {
  let dir: string;
  let ca: TestCa;
  let other: TestCa;

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-ocsp-check-'));
    ca = new TestCa(dir, 'http://127.0.0.1:9/');
    const otherDir = path.join(dir, 'other');
    mkdirSync(otherDir);
    other = new TestCa(otherDir, 'http://127.0.0.1:9/');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('takes a good answer signed by the delegated responder, or by the CA itself', () => {
    const t = target(ca.issue('a.test').pem);
    const now = Date.now();
    assert.equal(checkOcspResponse(ca.respond(Buffer.from(t.request)), t, now).status, 'good');
    assert.equal(checkOcspResponse(ca.respond(Buffer.from(t.request), 'ca'), t, now).status, 'good');
  });

  it("reads 'unknown' for a certificate the responder has no record of", () => {
    const { pem, serial } = ca.issue('u.test');
    ca.forget(serial);
    const t = target(pem);
    assert.equal(checkOcspResponse(ca.respond(Buffer.from(t.request)), t).status, 'unknown');
  });

  it('refuses a stale answer, one not valid yet, and one without nextUpdate', () => {
    const t = target(ca.issue('b.test').pem);
    const der = ca.respond(Buffer.from(t.request));
    assert.throws(() => checkOcspResponse(der, t, Date.now() + 2 * 86_400_000), /stale/);
    assert.throws(() => checkOcspResponse(der, t, Date.now() - 86_400_000), /not valid before/);
    // Within 5 minutes of its nextUpdate: HAProxy would not staple it either.
    const short = ca.respond(Buffer.from(t.request), 'ocsp-signer', ['-nmin', '4']);
    assert.throws(() => checkOcspResponse(short, t), /stale/);
    const open = ca.respond(Buffer.from(t.request), 'ocsp-signer', []);
    assert.throws(() => checkOcspResponse(open, t), /no nextUpdate/);
  });

  it("refuses an answer signed by another CA's responder, and garbage", () => {
    const t = target(ca.issue('c.test').pem);
    other.issue('ocsp-signer-2', 'extendedKeyUsage=OCSPSigning');
    for (const f of ['ocsp-signer-2.pem', 'ocsp-signer-2.key'])
      copyFileSync(path.join(dir, 'other', f), path.join(dir, f));
    assert.throws(
      () => checkOcspResponse(ca.respond(Buffer.from(t.request), 'ocsp-signer-2'), t),
      /not signed by the issuer/,
    );
    assert.throws(() => checkOcspResponse(new Uint8Array(100), t), /unreadable/);
  });

  it('finds no responder in a certificate without AIA, nor without its issuer in the chain', async () => {
    const local = (await LocalCa.open(path.join(dir, 'local'))).ca;
    const cert = await local.issueHostCertificate(['d.test']);
    assert.deepEqual(ocspTarget(cert.certPem + cert.keyPem), { none: 'none offered by issuer' });
    const { pem } = ca.issue('e.test');
    const leafOnly = (pem.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/) ?? [''])[0];
    assert.deepEqual(ocspTarget(leafOnly), { none: "the issuer's certificate is not in the chain" });
  });

  it('refuses a responder that redirects', async () => {
    const server = http.createServer((_req, res) =>
      res.writeHead(302, { location: 'http://127.0.0.1:9/' }).end(),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      await assert.rejects(
        fetchOcspResponse({ url: `http://127.0.0.1:${port}/`, request: new Uint8Array(2) }),
        /failed/,
      );
    } finally {
      server.close();
    }
  });
});
