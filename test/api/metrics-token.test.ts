// A dedicated metrics token (issue 18: "an admin or a dedicated metrics token"): `petri
// tokens create NAME --metrics` makes a token that a Prometheus scraper keeps in its config.
// It reads GET /metrics as its owner may, and nothing else: not the API, not a deploy.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin, createUser, issueToken } from '../../src/domain/auth.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { testCollector } from '../metrics/test-collector.js';
import { buildTestApi } from './test-api.js';

describe('metrics tokens', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let admin: string;
  let member: string;
  const call = (token: string, method: 'GET' | 'POST', url: string, payload?: object) =>
    api.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload ? { payload } : {}),
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-metrics-token-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    const ana = await createUser(db, 'ana@example.org', 'member', { email: 'ana@example.org' });
    member = await issueToken(db, ana.id, 'laptop');
    const metrics = testCollector(db, {
      driver: { status: async (id) => ({ id, running: false }) },
      logger: createLogger('silent'),
    });
    api = await buildTestApi(dir, db, {}, { metrics });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('reads GET /metrics and is refused everything else, saying what it is', async () => {
    const made = await call(admin, 'POST', '/v1/tokens', {
      name: 'prometheus',
      metrics: true,
      expires: 'never',
    });
    assert.equal(made.statusCode, 201, made.body);
    assert.equal(made.json().token.kind, 'metrics');
    const scraper: string = made.json().secret;
    const scrape = await call(scraper, 'GET', '/metrics');
    assert.equal(scrape.statusCode, 200, scrape.body);
    assert.match(scrape.body, /^# HELP /m);
    for (const [method, url] of [
      ['GET', '/v1/whoami'],
      ['GET', '/v1/apps'],
      ['POST', '/v1/apps'],
      ['GET', '/v1/inventory'],
      ['POST', '/v1/tokens'],
    ] as const) {
      const res = await call(scraper, method, url, method === 'POST' ? { name: 'x' } : undefined);
      assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
      assert.match(res.json().error.message, /metrics token: it reads GET \/metrics and nothing else/);
    }
    assert.equal(
      (await db.selectFrom('apps').select('id').execute()).length,
      0,
      'the refused POST /v1/apps made nothing',
    );
  });

  test('only admins and auditors may make one; a member is told why', async () => {
    const res = await call(member, 'POST', '/v1/tokens', { name: 'prometheus', metrics: true });
    assert.equal(res.statusCode, 403);
    assert.match(res.json().error.message, /only platform admins and auditors may read/);
    assert.equal((await call(member, 'GET', '/metrics')).statusCode, 403);
  });
});
