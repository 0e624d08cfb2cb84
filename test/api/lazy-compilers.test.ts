// Routes' schemas compile on first use (src/api/lazy-compilers.ts): none at start, each the
// same answer as Fastify's eager compilers gave, and every one of them compiles (what a start
// used to check).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { compileSchemasNow } from '../../src/api/lazy-compilers.js';
import { App, type AppList } from '../../src/contract/apps.js';
import { bootstrapAdmin } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

describe('lazily compiled schemas', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-lazy-'));
    db = await openStore(new DataPaths(dir).store);
    token = (await bootstrapAdmin(db))!;
    api = await buildTestApi(dir, db);
    await api.ready();
  });

  after(async () => {
    await api.close();
    await db.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('answers keep only the fields of their schema, and bad input is refused in the same words', async () => {
    const made = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'lazy' },
    });
    assert.equal(made.statusCode, 201, made.body);
    const listed = await api.inject({ method: 'GET', url: '/v1/apps', headers: auth() });
    assert.equal(listed.statusCode, 200, listed.body);
    const app = (listed.json() as AppList).apps.find((a) => a.name === 'lazy');
    assert.ok(app, listed.body);
    const outside = Object.keys(app).filter((key) => !(key in App.properties));
    assert.deepEqual(outside, [], 'fields the App schema does not name');
    const wrongType = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 7 },
    });
    assert.equal(wrongType.statusCode, 400, wrongType.body);
    assert.match(wrongType.json().error.message, /^invalid body field 'name': must be string$/);
    const unknown = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'other', colour: 'red' },
    });
    assert.equal(unknown.statusCode, 400, unknown.body);
    assert.match(unknown.json().error.message, /unknown body field 'colour'/);
    const badQuery = await api.inject({
      method: 'GET',
      url: '/v1/apps/lazy/logs?lines=many',
      headers: auth(),
    });
    assert.equal(badQuery.statusCode, 400, badQuery.body);
    assert.match(badQuery.json().error.message, /^invalid querystring field 'lines'/);
  });

  test('every schema of every route compiles, and the OpenAPI document still shows them', async () => {
    const compiled = compileSchemasNow(api);
    assert.ok(compiled > 100, `compiled ${compiled} schemas`);
    assert.equal(compileSchemasNow(api), 0);
    const doc = (await api.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
      paths: Record<string, Record<string, { responses?: Record<string, unknown> }>>;
    };
    const listApps = doc.paths['/v1/apps']?.get;
    assert.ok(listApps?.responses?.['200'], JSON.stringify(listApps));
  });
});
