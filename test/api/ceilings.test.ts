// Ceilings on what one app or one owner may take of what all share: a scale request beyond
// the instances per app, or per owner, is a 400 that names the ceiling, and nothing changes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { insertProvisioningAddon } from '../../src/domain/addons.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from './test-api.js';

describe('ceilings on instances', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};

  const call = (who: string, method: 'POST' | 'PATCH' | 'GET', url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-ceilings-'));
    db = await openStore(new DataPaths(dir).store);
    for (const name of ['mallory', 'alice']) {
      const user = await createUser(db, name, 'member');
      tokens[name] = await issueToken(db, user.id, 'test');
    }
    // The ceilings' defaults: what an operator who configured nothing gets. The teams'
    // quotas (8 GiB of memory by default: 16 instances of 512 MiB) are raised out of the way,
    // so that the ceilings are what is reached (test/api/quotas.test.ts tests those).
    api = await buildTestApi(dir, db, { quotas: { apps: 1000, memoryMiB: 1_000_000, addons: 1000 } });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('petri ps scale web=100 is refused with the per-app ceiling named', async () => {
    assert.equal((await call('mallory', 'POST', '/v1/apps', { name: 'hog-1' })).statusCode, 201);
    const res = await call('mallory', 'PATCH', '/v1/apps/hog-1/formation', { web: 100 });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().error.code, 'bad_request');
    assert.match(res.json().error.message, /ceiling of 20 per app/);
    const ps = await call('mallory', 'GET', '/v1/apps/hog-1/ps');
    assert.deepEqual(ps.json().formation, { web: 1 });
    // Up to the ceiling is fine, and scaling down always is.
    assert.equal((await call('mallory', 'PATCH', '/v1/apps/hog-1/formation', { web: 20 })).statusCode, 200);
    assert.equal((await call('mallory', 'PATCH', '/v1/apps/hog-1/formation', { web: 21 })).statusCode, 400);
    assert.equal((await call('mallory', 'PATCH', '/v1/apps/hog-1/formation', { web: 19 })).statusCode, 200);
  });

  test('one owner cannot take more than the per-owner ceiling across apps; others still can scale', async () => {
    await call('mallory', 'PATCH', '/v1/apps/hog-1/formation', { web: 20 });
    for (const name of ['hog-2', 'hog-3']) {
      assert.equal((await call('mallory', 'POST', '/v1/apps', { name })).statusCode, 201);
    }
    assert.equal((await call('mallory', 'PATCH', '/v1/apps/hog-2/formation', { web: 20 })).statusCode, 200);
    const res = await call('mallory', 'PATCH', '/v1/apps/hog-3/formation', { web: 11 });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error.message, /ceiling of 50 per owner/);
    assert.equal((await call('mallory', 'PATCH', '/v1/apps/hog-3/formation', { web: 10 })).statusCode, 200);
    // Nor can a new app (with its one web instance) get round the ceiling.
    const more = await call('mallory', 'POST', '/v1/apps', { name: 'hog-4' });
    assert.equal(more.statusCode, 400);
    assert.match(more.json().error.message, /ceiling of 50 per owner/);
    // Another member is not affected by mallory's total.
    assert.equal((await call('alice', 'POST', '/v1/apps', { name: 'fair' })).statusCode, 201);
    assert.equal((await call('alice', 'PATCH', '/v1/apps/fair/formation', { web: 20 })).statusCode, 200);
  });

  test('one owner has at most the per-owner ceiling of add-ons, across apps', async () => {
    const secrets = testSecrets();
    const owner = await db
      .selectFrom('users')
      .selectAll()
      .where('name', '=', 'mallory')
      .executeTakeFirstOrThrow();
    const apps = await db.selectFrom('apps').selectAll().where('owner_id', '=', owner.id).execute();
    const add = (i: number) =>
      insertProvisioningAddon(
        db,
        secrets,
        owner,
        apps[i % apps.length]!,
        {
          type: 'redis',
          name: `cache-${i}`,
          envVar: `CACHE_${i}_URL`,
          mode: 'managed',
          resourcePrefix: 'petri_t',
        },
        // The default ceiling (ceilings.addonsPerOwner).
        loadConfig({ dataDir: dir }).ceilings.addonsPerOwner,
      );
    for (let i = 0; i < 10; i++) await add(i);
    await assert.rejects(add(10), /already have 10 add-ons, the ceiling per owner/);
  });
});
