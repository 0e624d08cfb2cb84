// The local CA: made once with its key 0600, the same CA on every later start, host
// certificates that OpenSSL verifies against ca.pem, odd host names refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { checkCertificatePair } from '../../src/tls/cert-files.js';
import { LocalCa } from '../../src/tls/local-ca.js';

describe('the local CA', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'petri-local-ca-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is made at first start, key 0600, and the same one afterwards', async () => {
    const first = await LocalCa.open(path.join(dir, 'tls'));
    assert.equal(first.created, true);
    assert.equal(statSync(path.join(dir, 'tls/ca.key')).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(dir, 'tls')).mode & 0o777, 0o700);
    const again = await LocalCa.open(path.join(dir, 'tls'));
    assert.equal(again.created, false);
    assert.equal(again.ca.certPem, first.ca.certPem);
    const ca = new X509Certificate(first.ca.certPem);
    assert.equal(ca.ca, true);
    assert.match(ca.subject, /Petri local CA/);
  });

  it('issues host certificates OpenSSL verifies against ca.pem, for exactly the names asked', async () => {
    const { ca } = await LocalCa.open(path.join(dir, 'tls'));
    const issued = await ca.issueHostCertificate(['*.petri.localhost', 'petri.localhost', 'petri.localhost']);
    const leafFile = path.join(dir, 'leaf.pem');
    writeFileSync(leafFile, issued.certPem);
    const out = execFileSync(
      'openssl',
      ['verify', '-CAfile', ca.certPath, '-purpose', 'sslserver', leafFile],
      {
        encoding: 'utf8',
      },
    );
    assert.match(out, /: OK/);
    const pair = checkCertificatePair(issued.certPem, issued.keyPem, '*.petri.localhost');
    assert.equal(pair.leaf.subjectAltName, 'DNS:*.petri.localhost, DNS:petri.localhost');
    assert.equal(pair.notAfter.getTime(), issued.notAfter.getTime());
    assert.ok(issued.notAfter.getTime() - Date.now() > 390 * 86_400_000);
    assert.equal(pair.leaf.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  });

  it('refuses odd host names and too many of them', async () => {
    const { ca } = await LocalCa.open(path.join(dir, 'tls'));
    for (const hosts of [
      [],
      ['a b'],
      ['A.example'],
      ['x.example\nDNS:evil'],
      ['*.*.example'],
      ['a'.repeat(254)],
    ]) {
      await assert.rejects(ca.issueHostCertificate(hosts), /certificate/, JSON.stringify(hosts));
    }
    const many = Array.from({ length: 101 }, (_, i) => `h${i}.example`);
    await assert.rejects(ca.issueHostCertificate(many), /1 to 100 hosts/);
  });

  it('will not make a second CA over a ca.pem whose key went missing', async () => {
    const other = path.join(dir, 'lost');
    await LocalCa.open(other);
    rmSync(path.join(other, 'ca.key'));
    await assert.rejects(LocalCa.open(other), /ca\.key is missing; restore the key/);
  });
});
