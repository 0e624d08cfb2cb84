// GET /v1/stacks (`petri stacks`): the installed Node.js versions and, for each, the apps of
// the caller's teams that run on it; another team's app is never named, not even here.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { listApps } from '../../src/domain/app-access.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { insertRelease } from '../../src/domain/releases.js';
import { nodeVersionsInUse } from '../../src/domain/stacks.js';
import { DataPaths } from '../../src/lib/paths.js';
import { nodeRuntimeDir } from '../../src/lib/runtime-cache.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { User } from '../../src/store/schema.js';
import { buildTestApi } from './test-api.js';

describe('GET /v1/stacks', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const users: Record<string, User> = {};

  const get = (who?: string) =>
    api.inject({
      method: 'GET',
      url: '/v1/stacks',
      headers: who ? { authorization: `Bearer ${tokens[who]}` } : {},
    });

  async function release(user: User, appName: string, node: string | null) {
    const app = await createApp(db, user, appName, { memoryMiB: 64, cpus: 1, pids: 32 });
    await insertRelease(db, app.id, user.id, {
      slug_dir: path.join(dir, 'slug'),
      process_types: '{"web":"node server.js"}',
      runtime_env: '{}',
      config_sealed: '',
      release_command: null,
      health_path: null,
      egress: '[]',
      kind: 'deploy',
      description: 'test',
      deploy_id: null,
      node_version: node,
    });
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-stacks-'));
    db = await openStore(new DataPaths(dir).store);
    for (const [name, role] of [
      ['root', 'admin'],
      ['ana', 'member'],
      ['bob', 'member'],
    ] as const) {
      users[name] = await createUser(db, name, role, { email: `${name}@example.org` });
      tokens[name] = await issueToken(db, users[name].id, 'test');
    }
    // The default runtime cache under the data dir: two versions installed.
    for (const v of ['22.23.5', '26.12.1'])
      mkdirSync(nodeRuntimeDir(path.join(dir, 'runtimes'), v), { recursive: true });
    await release(users.ana!, 'shop', '22.23.5');
    await release(users.ana!, 'static-site', null);
    await release(users.bob!, 'secret-lab', '22.23.5');
    // Runs on a version gone from the cache (removed by hand): its instances could not start.
    await release(users.bob!, 'old-lab', '24.1.0');
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('a member sees the installed versions and only their own apps on them', async () => {
    const res = await get('ana');
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(res.json().runtimes, [
      { stack: 'node', version: '22.23.5', apps: ['shop'], installed: true },
      { stack: 'node', version: '26.12.1', apps: [], installed: true },
    ]);
  });

  test('a version a release runs on but the cache lost is listed as not installed, to its team', async () => {
    const res = await get('bob');
    assert.deepEqual(res.json().runtimes, [
      { stack: 'node', version: '22.23.5', apps: ['secret-lab'], installed: true },
      { stack: 'node', version: '24.1.0', apps: ['old-lab'], installed: false },
      { stack: 'node', version: '26.12.1', apps: [], installed: true },
    ]);
  });

  test('an admin sees every app; nobody signed in sees nothing', async () => {
    assert.deepEqual(
      (await get('root'))
        .json()
        .runtimes.map((r: { version: string; apps: string[] }) => [r.version, r.apps]),
      [
        ['22.23.5', ['secret-lab', 'shop']],
        ['24.1.0', ['old-lab']],
        ['26.12.1', []],
      ],
    );
    const anonymous = await get();
    assert.equal(anonymous.statusCode, 401);
  });

  test("the versions the runtime cache must keep: every release's, not only the serving ones", async () => {
    // old-lab moves to 26.12.1; its old release on 24.1.0 (no other app's) stays a rollback target.
    const oldLab = (await listApps(db, users.bob!)).find((a) => a.name === 'old-lab')!;
    await insertRelease(db, oldLab.id, users.bob!.id, {
      slug_dir: path.join(dir, 'slug'),
      process_types: '{}',
      runtime_env: '{}',
      config_sealed: '',
      release_command: null,
      health_path: null,
      egress: '[]',
      kind: 'deploy',
      description: 'test',
      deploy_id: null,
      node_version: '26.12.1',
    });
    assert.deepEqual(
      (await get('bob')).json().runtimes.map((r: { version: string }) => r.version),
      ['22.23.5', '26.12.1'],
    );
    assert.deepEqual([...(await nodeVersionsInUse(db))].sort(), ['22.23.5', '24.1.0', '26.12.1']);
  });
});
