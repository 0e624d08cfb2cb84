// AcmeIssuer (src/tls/acme.ts) against a real ACME server, Debian's pebble on loopback, its
// HTTP-01 challenges answered by a small server standing in for the router's well-known map;
// then against directories that are down, silent, or answering garbage: each is a failed
// attempt within its time limit that says what happened, never a hang.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/lib/ports.js';
import { AcmeError, AcmeIssuer, type ChallengeResponder } from '../../src/tls/acme.js';
import { Pebble } from './pebble.js';

/** What the router would answer at /.well-known/..., as a map and a server on httpPort. */
class WellKnown implements ChallengeResponder {
  readonly answers = new Map<string, string>();
  readonly asked: string[] = [];
  server: http.Server | undefined;

  async listen(port: number): Promise<void> {
    this.server = http.createServer((req, res) => {
      this.asked.push(`${req.headers.host} ${req.url}`);
      const body = this.answers.get(req.url ?? '');
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(body ?? '');
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
  }

  async setWellKnown(p: string, body: string): Promise<void> {
    this.answers.set(p, body);
  }

  async deleteWellKnown(p: string): Promise<void> {
    this.answers.delete(p);
  }
}

/** A stand-in directory that answers what `handler` says (plain HTTP: acme-client takes it). */
async function fakeDirectory(handler: http.RequestListener): Promise<{ url: string; close(): void }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/dir`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

describe('AcmeIssuer', () => {
  let pebble: Pebble;
  const wellKnown = new WellKnown();
  const dirs: string[] = [];
  const tempDir = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-acme-'));
    dirs.push(dir);
    return path.join(dir, 'tls', 'acme');
  };

  before(async () => {
    const httpPort = await freePort();
    await wellKnown.listen(httpPort);
    pebble = await Pebble.start({ httpPort });
  });

  after(async () => {
    await pebble?.stop();
    wellKnown.server?.close();
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  const issuerFor = (dir: string, timeouts?: { requestMs: number; obtainMs: number }) =>
    new AcmeIssuer(
      { directoryUrl: pebble.directoryUrl, email: 'ops@example.org', caFile: pebble.caFile },
      dir,
      wellKnown,
      timeouts,
    );

  test('a certificate for a host: HTTP-01 answered, the chain leads to pebble’s root, the account key is 0600', async () => {
    const dir = tempDir();
    const issuer = issuerFor(dir);
    const cert = await issuer.obtain(['shop.petri.localhost']);
    assert.match(cert.issuer, /^Pebble Intermediate CA/);
    assert.match(cert.serial, /^[0-9a-f]+$/);
    assert.ok(cert.notAfter > new Date() && cert.notBefore <= new Date());
    // pebble fetched the challenge through "the router", and its answer is gone again.
    assert.ok(
      wellKnown.asked.some(
        (a) => a.startsWith('shop.petri.localhost:') && a.includes('/.well-known/acme-challenge/'),
      ),
    );
    assert.equal(wellKnown.answers.size, 0);
    const blocks = cert.pem.match(/-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----/g) ?? [];
    assert.deepEqual(
      blocks.map((b) => /BEGIN ([A-Z ]+)-----/.exec(b)?.[1]),
      ['CERTIFICATE', 'CERTIFICATE', 'PRIVATE KEY'],
    );
    const leaf = new X509Certificate(blocks[0]!);
    const intermediate = new X509Certificate(blocks[1]!);
    const root = new X509Certificate(pebble.root);
    assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey));
    assert.ok(intermediate.checkIssued(root) && intermediate.verify(root.publicKey));
    assert.equal(leaf.checkHost('shop.petri.localhost'), 'shop.petri.localhost');
    assert.equal(statSync(issuer.accountKeyFile).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o777, 0o700);

    // The same account next time, even from a new issuer (a restart); a key left open is closed.
    const key = readFileSync(issuer.accountKeyFile, 'utf8');
    chmodSync(issuer.accountKeyFile, 0o644);
    const again = await issuerFor(dir).obtain(['shop.petri.localhost']);
    assert.notEqual(again.serial, cert.serial);
    assert.equal(readFileSync(issuer.accountKeyFile, 'utf8'), key);
    assert.equal(statSync(issuer.accountKeyFile).mode & 0o777, 0o600);
  });

  test('a challenge the CA cannot fetch is a failure of the host, not of the directory', async () => {
    const refusing: ChallengeResponder = { setWellKnown: async () => {}, deleteWellKnown: async () => {} };
    const issuer = new AcmeIssuer(
      { directoryUrl: pebble.directoryUrl, email: 'ops@example.org', caFile: pebble.caFile },
      tempDir(),
      refusing,
    );
    const err = await issuer.obtain(['nothing-here.petri.localhost']).catch((e: unknown) => e);
    assert.ok(err instanceof AcmeError, String(err));
    assert.equal(err.directoryTrouble, false);
    assert.match(err.message, /404|unauthorized|not found/i);
  });

  test('external account binding: the right key gets an account, a wrong one a failure that never quotes it', async () => {
    const hmac = Buffer.from('a shared secret of the CA and its customer').toString('base64url');
    const strict = await Pebble.start({
      httpPort: (wellKnown.server!.address() as AddressInfo).port,
      eab: { kid1: hmac },
    });
    try {
      const withKey = (eabHmac: string) =>
        new AcmeIssuer(
          {
            directoryUrl: strict.directoryUrl,
            email: 'ops@example.org',
            caFile: strict.caFile,
            eabKid: 'kid1',
            eabHmac,
          },
          tempDir(),
          wellKnown,
        );
      const cert = await withKey(hmac).obtain(['bound.petri.localhost']);
      assert.match(cert.issuer, /^Pebble Intermediate CA/);
      const wrong = Buffer.from('not the shared secret at all, no').toString('base64url');
      const err = await withKey(wrong)
        .obtain(['bound.petri.localhost'])
        .catch((e: unknown) => e);
      assert.ok(err instanceof AcmeError, String(err));
      assert.ok(!err.message.includes(wrong) && !err.message.includes(hmac), err.message);
      const none = new AcmeIssuer(
        { directoryUrl: strict.directoryUrl, email: 'ops@example.org', caFile: strict.caFile },
        tempDir(),
        wellKnown,
      );
      await assert.rejects(none.obtain(['bound.petri.localhost']), AcmeError);
    } finally {
      await strict.stop();
    }
  });

  test('names HTTP-01 cannot prove are refused before any request', async () => {
    const issuer = issuerFor(tempDir());
    for (const host of ['*.petri.localhost', '127.0.0.1', 'UPPER.example.org', 'a b', '']) {
      await assert.rejects(issuer.obtain([host]), (err: Error) => !(err instanceof AcmeError), host);
    }
    await assert.rejects(
      issuer.obtain(Array.from({ length: 101 }, (_, i) => `h${i}.example.org`)),
      /1 to 100/,
    );
  });

  test('a directory that is down: directory trouble, at once', async () => {
    const port = await freePort();
    const issuer = new AcmeIssuer(
      { directoryUrl: `https://127.0.0.1:${port}/dir`, email: 'ops@example.org' },
      tempDir(),
      wellKnown,
    );
    const began = Date.now();
    const err = await issuer.obtain(['down.example.org']).catch((e: unknown) => e);
    assert.ok(err instanceof AcmeError, String(err));
    assert.equal(err.directoryTrouble, true);
    assert.match(err.message, /not reachable.*ECONNREFUSED/);
    assert.ok(Date.now() - began < 5000, `took ${Date.now() - began} ms`);
  });

  test('a directory that never answers: each request ends at its timeout', async () => {
    const silent = await fakeDirectory(() => {});
    const issuer = new AcmeIssuer(
      { directoryUrl: silent.url, email: 'ops@example.org' },
      tempDir(),
      wellKnown,
      {
        requestMs: 1000,
        obtainMs: 10_000,
      },
    );
    const began = Date.now();
    const err = await issuer.obtain(['slow.example.org']).catch((e: unknown) => e);
    silent.close();
    assert.ok(err instanceof AcmeError, String(err));
    assert.equal(err.directoryTrouble, true);
    assert.match(err.message, /did not answer within 1 s/);
    assert.ok(Date.now() - began < 5000, `took ${Date.now() - began} ms`);
  });

  test('a stopping server ends the order in flight at once', async () => {
    const silent = await fakeDirectory(() => {});
    const issuer = new AcmeIssuer(
      { directoryUrl: silent.url, email: 'ops@example.org' },
      tempDir(),
      wellKnown,
    );
    const stopping = new AbortController();
    const began = Date.now();
    setTimeout(() => stopping.abort(), 300);
    const err = await issuer.obtain(['stopped.example.org'], stopping.signal).catch((e: unknown) => e);
    silent.close();
    assert.ok(err instanceof AcmeError, String(err));
    assert.match(err.message, /stopped/);
    assert.ok(Date.now() - began < 2000, `took ${Date.now() - began} ms`);
  });

  test('a directory that trickles its answer: the request ends at its timeout all the same', async () => {
    const trickle = await fakeDirectory((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 100);
      res.on('close', () => clearInterval(timer));
    });
    const issuer = new AcmeIssuer(
      { directoryUrl: trickle.url, email: 'ops@example.org' },
      tempDir(),
      wellKnown,
      {
        requestMs: 1000,
        obtainMs: 10_000,
      },
    );
    const began = Date.now();
    const err = await issuer.obtain(['trickle.example.org']).catch((e: unknown) => e);
    trickle.close();
    assert.ok(err instanceof AcmeError, String(err));
    assert.ok(Date.now() - began < 5000, `took ${Date.now() - began} ms`);
  });

  test('a directory answering garbage, huge garbage or 503: a failed attempt that says so', async () => {
    const answers: Record<string, http.RequestListener> = {
      html: (_req, res) => res.end('<html>hello</html>'),
      huge: (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 'a');
        let sent = 0;
        const more = () => {
          while (sent < 64 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
          if (sent < 64 * 1024 * 1024) res.once('drain', more);
          else res.end();
        };
        more();
      },
      unavailable: (_req, res) => {
        res.writeHead(503, { 'retry-after': '86400' });
        res.end('{"type":"urn:ietf:params:acme:error:serverInternal"}');
      },
    };
    for (const [what, handler] of Object.entries(answers)) {
      const directory = await fakeDirectory(handler);
      const issuer = new AcmeIssuer(
        { directoryUrl: directory.url, email: 'ops@example.org' },
        tempDir(),
        wellKnown,
        {
          requestMs: 5000,
          obtainMs: 10_000,
        },
      );
      const began = Date.now();
      const err = await issuer.obtain(['garbage.example.org']).catch((e: unknown) => e);
      directory.close();
      assert.ok(err instanceof AcmeError, `${what}: ${String(err)}`);
      assert.ok(err.message.startsWith(directory.url), `${what}: ${err.message}`);
      if (what === 'unavailable') {
        assert.equal(err.directoryTrouble, true);
        assert.match(err.message, /answered 503/);
      }
      if (what === 'huge') assert.match(err.message, /maxContentLength|exceeded/);
      assert.ok(Date.now() - began < 6000, `${what} took ${Date.now() - began} ms`);
    }
  });
});
