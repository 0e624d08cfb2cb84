// What HTTPS custom domains get, said honestly (issue 20). In tls.mode wildcard without
// tls.acme they get no certificate (the operator's is for *.<domain>, and there is no local
// CA): `petri domains add` and `petri domains` say HTTPS for them needs the operator to set
// tls.acme, a verified one is 'no certificate' (not 'issuing' for ever), and the server warns
// at start while such domains are claimed. In the self-signed mode the local CA's certificates
// are said to be trusted only where its ca.pem is installed; with tls.acme nothing is said.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { CertificateController } from '../../src/controllers/certificates.js';
import { customDomainHttps, recordDomainCheck } from '../../src/domain/domains.js';
import { loadConfig, type PetriConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from '../api/test-api.js';
import { run } from '../cli/harness.js';

const WILDCARD = {
  httpsPort: 8443,
  tls: { mode: 'wildcard', certFile: '/etc/petri/wildcard.pem', keyFile: '/etc/petri/wildcard.key' },
};
const ACME = { directoryUrl: 'https://acme.invalid/directory', email: 'ops@example.org' };

describe('what HTTPS custom domains get', () => {
  test('said for the wildcard mode without tls.acme and for the self-signed one; nothing with tls.acme or no HTTPS', () => {
    const config = (flags: Record<string, unknown>) => loadConfig({ dataDir: '/tmp/x', ...flags });
    const wildcard = customDomainHttps(config(WILDCARD));
    assert.equal(wildcard?.certified, false);
    assert.match(
      wildcard?.note ?? '',
      /^HTTPS for custom domains needs the operator to set tls\.acme in Petri's config: with tls\.mode "wildcard" alone they get no certificate, so browsers refuse https:\/\/DOMAIN\/, where plain HTTP redirects$/,
    );
    const noRedirect = customDomainHttps(
      config({ ...WILDCARD, tls: { ...WILDCARD.tls, redirectHttp: false } }),
    );
    assert.doesNotMatch(noRedirect?.note ?? '', /redirects/);
    const selfSigned = customDomainHttps(config({ httpsPort: 8443 }));
    assert.equal(selfSigned?.certified, true);
    assert.match(
      selfSigned?.note ?? '',
      /local CA, which browsers trust only where its ca\.pem is installed \(fine on a laptop\)/,
    );
    assert.equal(customDomainHttps(config({ ...WILDCARD, tls: { ...WILDCARD.tls, acme: ACME } })), null);
    assert.equal(customDomainHttps(config({ httpsPort: 8443, tls: { mode: 'acme', acme: ACME } })), null);
    assert.equal(customDomainHttps(config({ httpsPort: 0 })), null);
  });
});

describe('custom domains in the wildcard mode without tls.acme', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let url: string;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const petri = (...argv: string[]) =>
    run(argv, {
      env: { PETRI_URL: url, PETRI_TOKEN: tokens.ana!, PETRI_CONFIG_DIR: path.join(dir, 'cli') },
      cwd: dir,
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-domains-https-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(db, [['ana', 'member']], tokens, ids);
    api = await buildTestApi(dir, db, {
      domain: 'petri.test',
      ...WILDCARD,
      domains: { addresses: ['203.0.113.7'] },
    });
    url = await api.listen({ host: '127.0.0.1', port: 0 });
    const res = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      payload: { name: 'shop' },
      headers: { authorization: `Bearer ${tokens.ana}` },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('add says HTTPS for the domain needs tls.acme', async () => {
    const r = await petri('domains', 'add', 'www.example.org', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /\nNote: HTTPS for custom domains needs the operator to set tls\.acme in Petri's config: .* browsers refuse https:\/\/DOMAIN\/, where plain HTTP redirects\.\n\nSee its state with 'petri domains --app shop'\.\n$/,
    );
    const json = JSON.parse(
      (await petri('domains', 'add', 'shop.example.org', '--app', 'shop', '--json')).stdout,
    );
    assert.match(json.https, /needs the operator to set tls\.acme/);
  });

  test("the list: a verified domain is 'no certificate', not issuing for ever, and the note follows the table", async () => {
    const { id } = await db
      .selectFrom('domains')
      .select('id')
      .where('host', '=', 'www.example.org')
      .executeTakeFirstOrThrow();
    await recordDomainCheck(db, id, { ok: true });
    const r = await petri('domains', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split('\n');
    assert.match(
      lines.find((l) => l.startsWith('www.example.org')) ?? '',
      /^www\.example\.org\s+no certificate\s+-\s/,
    );
    assert.match(lines.find((l) => l.startsWith('shop.example.org')) ?? '', /pending verification/);
    assert.match(r.stdout, /\n\nNote: HTTPS for custom domains needs the operator to set tls\.acme/);
  });

  test('the server warns at start while custom domains are claimed', async () => {
    const seen: string[] = [];
    const logger = createLogger(
      'warn',
      new Writable({
        write(chunk, _e, done) {
          seen.push(String(chunk));
          done();
        },
      }),
    );
    const controllerWith = (config: PetriConfig) =>
      new CertificateController({
        db,
        config,
        router: { setCertificate: async () => {}, removeCertificate: async () => {} },
        sources: {},
        customHosts: async () => [],
        logger,
      });
    const warned = () => seen.find((l) => l.includes('custom domains are claimed'));
    const wildcard = controllerWith(loadConfig({ dataDir: dir, domain: 'petri.test', ...WILDCARD }));
    wildcard.start();
    const line = JSON.parse(await until(warned, { timeout: 5000, message: 'the warning' }));
    await wildcard.stop();
    assert.equal(line.level, 40);
    assert.equal(line.domains, 2);
    assert.deepEqual(line.examples, ['www.example.org', 'shop.example.org']);
    assert.match(
      line.msg,
      /^2 custom domains are claimed: HTTPS for custom domains needs the operator to set tls\.acme/,
    );

    // With tls.acme, nothing to say (a pass runs, so the check at start is done).
    seen.length = 0;
    const acme = controllerWith(
      loadConfig({ dataDir: dir, domain: 'petri.test', ...WILDCARD, tls: { ...WILDCARD.tls, acme: ACME } }),
    );
    acme.start();
    await acme.tick();
    await acme.stop();
    assert.equal(warned(), undefined);
  });
});
