// The wildcard mode's files: read and checked (refusals say why), then watched: a good new pair
// is installed, a bad one is refused with a warning and the pair that serves stays.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { until } from '../../src/lib/until.js';
import { LocalCa } from '../../src/tls/local-ca.js';
import { readWildcardPair, WildcardWatcher } from '../../src/tls/wildcard.js';

describe('wildcard files', () => {
  let dir: string;
  let ca: LocalCa;
  let certFile: string;
  let keyFile: string;
  const write = async (hosts: string[], otherKey = false) => {
    const pair = await ca.issueHostCertificate(hosts);
    writeFileSync(certFile, `# the operator's comment\n${pair.certPem}`);
    writeFileSync(keyFile, otherKey ? (await ca.issueHostCertificate(hosts)).keyPem : pair.keyPem);
    return pair;
  };

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-wildcard-'));
    ca = (await LocalCa.open(path.join(dir, 'ca'))).ca;
    certFile = path.join(dir, 'w.pem');
    keyFile = path.join(dir, 'w.key');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a good pair: the chain then the key, blocks only', async () => {
    await write(['*.example.org', 'example.org']);
    const pair = await readWildcardPair(certFile, keyFile, 'example.org');
    assert.doesNotMatch(pair.pem, /operator/);
    assert.match(pair.pem, /^-----BEGIN CERTIFICATE-----[\s\S]+-----END PRIVATE KEY-----\n$/);
  });

  it('refuses a pair for names that are not *.DOMAIN, another key, devices and directories', async () => {
    await write(['a.example.org', 'b.example.org']);
    await assert.rejects(readWildcardPair(certFile, keyFile, 'example.org'), /not for \*\.example\.org/);
    await write(['*.example.org'], true);
    await assert.rejects(readWildcardPair(certFile, keyFile, 'example.org'), /not the certificate's/);
    await assert.rejects(readWildcardPair('/dev/zero', keyFile, 'example.org'), /not a regular file/);
    await assert.rejects(readWildcardPair(certFile, dir, 'example.org'), /not a regular file/);
  });

  it('swaps in a good new pair, refuses a bad one with a warning and keeps serving the old', async () => {
    await write(['*.example.org']);
    const current = await readWildcardPair(certFile, keyFile, 'example.org');
    const installed: string[] = [];
    const warnings: string[] = [];
    const watcher = new WildcardWatcher({
      certFile,
      keyFile,
      domain: 'example.org',
      current,
      intervalMs: 50,
      install: async (pem) => {
        installed.push(pem);
      },
      logger: { info: () => undefined, warn: (o) => warnings.push(JSON.stringify(o)) },
    });
    watcher.start();
    try {
      await write(['*.other.org']);
      await until(() => warnings.some((w) => /not for \*\.example\.org/.test(w)), { timeout: 10_000 });
      assert.equal(installed.length, 0, 'a pair for another domain is not installed');
      const next = await write(['*.example.org']);
      await until(() => installed.length === 1, { timeout: 10_000 });
      assert.ok(installed[0]?.startsWith(next.certPem.split('\n\n')[0]?.slice(0, 200) ?? '?'));
      assert.ok(
        warnings.every((w) => !w.includes('PRIVATE KEY')),
        'no key in a warning',
      );
    } finally {
      watcher.stop();
    }
  });
});
