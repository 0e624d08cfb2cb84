// Requests to a verified custom domain count as its app's in the metrics (issue 20): the
// router logs the Host it routed, which is the domain's, not NAME.DOMAIN.
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
import { testCollector } from '../metrics/test-collector.js';

describe('metrics of a custom domain', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-domain-metrics-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    const token = await issueToken(db, ana.id, 'test');
    api = await buildTestApi(dir, db, { domain: 'petri.localhost' });
    const call = (url: string, payload: object) =>
      api.inject({ method: 'POST', url, payload, headers: { authorization: `Bearer ${token}` } });
    assert.equal((await call('/v1/apps', { name: 'shop' })).statusCode, 201);
    for (const host of ['www.shop.example', 'soon.shop.example']) {
      assert.equal((await call('/v1/apps/shop/domains', { host })).statusCode, 201);
    }
    const www = await db
      .selectFrom('domains')
      .select('id')
      .where('host', '=', 'www.shop.example')
      .executeTakeFirstOrThrow();
    await recordDomainCheck(db, www.id, { ok: true });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("a verified domain's requests are the app's; a pending one's are no one's", async (t) => {
    const collector = testCollector(db);
    const { tag } = await collector.listen();
    t.after(() => collector.stop());
    await collector.runNow();
    const line = (host: string) => `<134>Jul  1 12:00:10 haproxy[42]: petri1 ${tag} ${host} 200 12 345`;
    collector.ingest(line('www.shop.example'));
    collector.ingest(line('shop.petri.localhost'));
    collector.ingest(line('soon.shop.example'));
    assert.equal(collector.live('shop')[0]?.counters.requests, 2);
    assert.match(await collector.text(), /petri_app_requests_total\{app="shop",class="2xx"\} 2/);
  });
});
