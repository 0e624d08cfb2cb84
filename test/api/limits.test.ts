// Limits have ceilings (issue 11, High 5): every app's are bounded by the per-app maximum
// of the configuration (by default what the host has), a member's by the lower member
// maximum; over it the answer is 400 naming the maximum, and nothing changes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin, createUser, issueToken } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

describe('limit ceilings', () => {
  let dir: string;
  let db: Store;
  let configured: FastifyInstance;
  let byDefault: FastifyInstance;
  let admin: string;
  let member: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-limits-'));
    db = await openStore(new DataPaths(dir).store);
    admin = (await bootstrapAdmin(db))!;
    member = await issueToken(db, (await createUser(db, 'mallory', 'member')).id, 'test');
    configured = await buildTestApi(dir, db, {
      maxLimits: { memoryMiB: 8192, cpus: 4, pids: 4096, diskMiB: 20480 },
      memberMaxLimits: { memoryMiB: 2048, cpus: 2, pids: 1024, diskMiB: 10240 },
    });
    byDefault = await buildTestApi(dir, db);
    const created = await configured.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: { authorization: `Bearer ${member}` },
      payload: { name: 'mine' },
    });
    assert.equal(created.statusCode, 201, created.body);
  });
  after(async () => {
    await configured?.close();
    await byDefault?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const patch = (server: FastifyInstance, token: string, limits: Record<string, number>) =>
    server.inject({
      method: 'PATCH',
      url: '/v1/apps/mine',
      headers: { authorization: `Bearer ${token}` },
      payload: { limits },
    });

  test('a member asking for 1 TiB, 1024 CPUs, a million pids or 1 TiB of disk gets 400 naming the maximum', async () => {
    for (const [key, value, maximum] of [
      ['memoryMiB', 1_048_576, /2048 MiB/],
      ['cpus', 1024, /maximum .*2 CPUs/],
      ['pids', 1_000_000, /1024/],
      ['diskMiB', 1_048_576, /10240 MiB/],
    ] as const) {
      const res = await patch(configured, member, { [key]: value });
      assert.equal(res.statusCode, 400, `${key}: ${res.body}`);
      assert.equal(res.json().error.code, 'bad_request');
      assert.match(res.json().error.message, new RegExp(`limits\\.${key}`));
      assert.match(res.json().error.message, maximum);
      assert.match(res.json().error.message, /members/);
    }
    const app = await configured.inject({
      method: 'GET',
      url: '/v1/apps/mine',
      headers: { authorization: `Bearer ${member}` },
    });
    assert.deepEqual(app.json().limits, { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 });
  });

  test('a member may go up to the member maximum', async () => {
    const res = await patch(configured, member, { memoryMiB: 2048, cpus: 2, pids: 1024, diskMiB: 10240 });
    assert.equal(res.statusCode, 200, res.body);
  });

  test('an admin may go past the member maximum up to the per-app maximum, not beyond', async () => {
    const ok = await patch(configured, admin, { memoryMiB: 8192, cpus: 4 });
    assert.equal(ok.statusCode, 200, ok.body);
    const over = await patch(configured, admin, { memoryMiB: 8193 });
    assert.equal(over.statusCode, 400, over.body);
    assert.match(over.json().error.message, /8192 MiB/);
  });

  test('by default the per-app maximum is what the host has', async () => {
    const hostMiB = Math.floor(os.totalmem() / 1024 / 1024);
    const over = await patch(byDefault, admin, { memoryMiB: hostMiB + 1 });
    assert.equal(over.statusCode, 400, over.body);
    assert.match(over.json().error.message, new RegExp(`${hostMiB} MiB`));
    const cpus = await patch(byDefault, admin, { cpus: os.availableParallelism() + 1 });
    assert.equal(cpus.statusCode, 400, cpus.body);
  });
});
