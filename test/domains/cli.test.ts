// `petri domains` against the real API (Fastify on loopback over a temp store), as a user
// types it: add prints the DNS records to set up and where Petri checks; the list shows each
// domain's state (a failing one with its reason) in a table, golden; remove; a refused name
// is one line on stderr.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { recordDomainCheck } from '../../src/domain/domains.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from '../api/test-api.js';
import { assertGolden, run } from '../cli/harness.js';

describe('petri domains', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let url: string;
  let token: string;
  const petri = (...argv: string[]) =>
    run(argv, {
      env: { PETRI_URL: url, PETRI_TOKEN: token, PETRI_CONFIG_DIR: path.join(dir, 'cli') },
      cwd: dir,
    });
  const idOf = async (host: string) =>
    (await db.selectFrom('domains').select('id').where('host', '=', host).executeTakeFirstOrThrow()).id;
  /** Times and secrets vary from run to run. */
  const stable = (text: string) =>
    text
      .replace(/\d{4}-\d\d-\d\d/g, 'YYYY-MM-DD')
      .replace(/(must answer |TXT {2}")[A-Za-z0-9_-]{32}/g, '$1TOKEN');

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-cli-domains-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    token = await issueToken(db, ana.id, 'test');
    // No HTTPS: a verified domain is active at once.
    api = await buildTestApi(dir, db, {
      domain: 'petri.test',
      httpPort: 80,
      httpsPort: 0,
      domains: { addresses: ['203.0.113.7', '2001:db8::7'] },
    });
    url = await api.listen({ host: '127.0.0.1', port: 0 });
    const res = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      payload: { name: 'shop' },
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('no domain yet says how to add one', async () => {
    const r = await petri('domains', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      "shop has no custom domain; add one with 'petri domains add www.example.org --app shop'\n",
    );
  });

  test('add prints the records to set up (where it points, the TXT record with the token) and the check', async () => {
    const r = await petri('domains', 'add', 'www.example.org', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    const id = await idOf('www.example.org');
    await assertGolden('domains-add.txt', stable(r.stdout).replace(`petri-domain/${id}`, 'petri-domain/ID'));
  });

  test('the list: active, pending, failing with the reason, a Unicode name as written', async () => {
    for (const host of ['bücher.example', 'shop.example.com']) {
      assert.equal((await petri('domains', 'add', host, '--app', 'shop')).code, 0);
    }
    await recordDomainCheck(db, await idOf('www.example.org'), { ok: true });
    await recordDomainCheck(db, await idOf('shop.example.com'), {
      ok: false,
      reason:
        'shop.example.com points to 198.51.100.9, not to this platform (203.0.113.7): fix its DNS record',
    });
    const r = await petri('domains', '--app', 'shop');
    assert.equal(r.code, 0, r.stderr);
    await assertGolden('domains.txt', stable(r.stdout));
    const json = JSON.parse((await petri('domains', '--app', 'shop', '--json')).stdout);
    assert.deepEqual(
      json.domains.map((d: { host: string; status: string }) => [d.host, d.status]),
      [
        ['shop.example.com', 'failing'],
        ['www.example.org', 'active'],
        ['xn--bcher-kva.example', 'pending verification'],
      ],
    );
  });

  test('remove, and a refused name on one line of stderr', async () => {
    const removed = await petri('domains', 'remove', 'shop.example.com', '--app', 'shop');
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(removed.stdout, 'shop.example.com removed from shop: it no longer routes there\n');
    const refused = await petri('domains', 'add', '192.0.2.1', '--app', 'shop');
    assert.notEqual(refused.code, 0);
    assert.equal(
      refused.stderr,
      "error: domain '192.0.2.1' is an IP address: give the host name that points to it, e.g. 'www.example.org'\n",
    );
  });
});
