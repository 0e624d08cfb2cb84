// `petri certs` as people and scripts see it, against a stand-in API answering GET /v1/certs:
// the table (golden file), the highlighting on a terminal (expiring within 14 days or missing
// in yellow, failures in red), --json as the API sent it, and an empty list per mode.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { CertificateList } from '../../src/contract/index.js';
import { envFor, run, tempDir } from '../cli/harness.js';

const LIST: CertificateList = {
  mode: 'acme',
  renewBeforeDays: 30,
  default: {
    names: ['*.example.org', 'example.org', 'petri.example.org'],
    issuer: 'Petri local CA (web1)',
    notAfter: '2027-12-01T09:00:00.000Z',
    daysLeft: 362,
    expiringSoon: false,
    ocsp: { state: 'none', detail: 'the certificate names no OCSP responder', nextUpdate: null },
  },
  certificates: [
    {
      host: 'petri.example.org',
      source: 'acme',
      issuer: 'R11',
      serial: '4a1b',
      notBefore: '2026-12-01T09:12:03.000Z',
      notAfter: '2027-02-28T09:12:03.000Z',
      daysLeft: 87,
      expiringSoon: false,
      lastAttemptAt: '2026-12-01T09:12:05.120Z',
      lastOutcome: 'ok',
      failures: 0,
      nextAttemptAt: null,
      ocsp: { state: 'stapled', detail: null, nextUpdate: '2026-12-08T09:00:00.000Z' },
      unwantedSince: null,
    },
    {
      host: 'soon.example.org',
      source: 'acme',
      issuer: 'R11',
      serial: '77',
      notBefore: '2026-09-10T00:00:00.000Z',
      notAfter: '2026-12-09T00:00:00.000Z',
      daysLeft: 5,
      expiringSoon: true,
      lastAttemptAt: '2026-12-03T08:00:00.000Z',
      lastOutcome: 'https://acme/dir: the ACME directory answered 503',
      failures: 3,
      nextAttemptAt: '2026-12-03T08:20:00.000Z',
      ocsp: { state: 'failing', detail: 'asking the OCSP responder failed: timed out', nextUpdate: null },
      unwantedSince: null,
    },
    {
      host: 'typo.example.org',
      source: 'acme',
      issuer: null,
      serial: null,
      notBefore: null,
      notAfter: null,
      daysLeft: null,
      expiringSoon: true,
      lastAttemptAt: '2026-12-03T08:40:00.000Z',
      lastOutcome: 'Get "http://typo.example.org/.well-known/acme-challenge/x": connection refused',
      failures: 1,
      nextAttemptAt: '2026-12-03T08:45:00.000Z',
      ocsp: null,
      unwantedSince: null,
    },
  ],
};

const GOLDEN = path.join(import.meta.dirname, 'golden', 'certs.txt');

describe('petri certs', () => {
  let server: http.Server;
  let answer: CertificateList = LIST;
  let env: Record<string, string>;
  let remove: () => Promise<void>;

  before(async () => {
    server = http.createServer((req, res) => {
      const ok = req.url === '/v1/certs' && req.headers.authorization === 'Bearer t0ken';
      res.writeHead(ok ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify(ok ? answer : { error: { code: 'not_found', message: 'no' } }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const temp = await tempDir();
    remove = temp.remove;
    env = envFor(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, 't0ken', temp.dir);
  });

  after(async () => {
    server.close();
    await remove();
  });

  test('the table, and its golden file', async () => {
    answer = LIST;
    const r = await run(['certs'], { env });
    assert.equal(r.code, 0, r.stderr);
    if (process.env.UPDATE_GOLDEN) writeFileSync(GOLDEN, r.stdout);
    assert.equal(r.stdout, readFileSync(GOLDEN, 'utf8'));
  });

  test('on a terminal: expiring or missing in yellow, failures in red, the rest plain', async () => {
    const r = await run(['certs'], { env, tty: true });
    const lines = r.stdout.split('\n');
    const line = (host: string) => lines.find((l) => l.startsWith(host)) ?? '';
    const yellow = '\u001b[33m';
    const red = '\u001b[31m';
    assert.ok(!line('petri.example.org').includes(yellow) && !line('petri.example.org').includes(red));
    assert.ok(line('soon.example.org').includes(`${yellow}5`));
    assert.ok(line('soon.example.org').includes(`${red}failed (3 times): `));
    assert.ok(line('typo.example.org').includes(`${yellow}none yet`));
    // OCSP: a stapled answer in green, a responder that fails in red.
    assert.ok(line('petri.example.org').includes('\u001b[32mstapled'));
    assert.ok(line('soon.example.org').includes(`${red}failing`));
  });

  test('a default certificate near its end is highlighted too', async () => {
    answer = { ...LIST, default: { ...LIST.default!, daysLeft: 3, expiringSoon: true } };
    const r = await run(['certs'], { env, tty: true });
    assert.ok(
      r.stdout.startsWith('\u001b[33mdefault certificate (every other host): *.example.org'),
      r.stdout,
    );
    answer = LIST;
  });

  test('--json is what the API sent', async () => {
    const r = await run(['certs', '--json'], { env });
    assert.deepEqual(JSON.parse(r.stdout), LIST);
  });

  test('no certificates yet: says why, per mode', async () => {
    answer = { mode: 'self-signed', renewBeforeDays: 30, default: null, certificates: [] };
    assert.match(
      (await run(['certs'], { env })).stdout,
      /tls\.mode self-signed: the router's default certificate/,
    );
    answer = { mode: 'acme', renewBeforeDays: 30, default: null, certificates: [] };
    assert.match((await run(['certs'], { env })).stdout, /each app host gets one from the ACME directory/);
  });
});
