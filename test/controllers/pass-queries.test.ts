// What a reconcile pass costs the store: a constant number of queries however many apps
// there are, so a host with a thousand idle experiments does not pay a thousand queries a
// second. Counted on a second connection to the same store file that logs every query; the
// fake driver and router (no root, a few seconds).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import type { InstanceReconciler } from '../../src/controllers/instances.js';
import { createApp, findApp, sleepApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { insertRelease } from '../../src/domain/releases.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { Database, User } from '../../src/store/schema.js';
import { testReconciler } from './test-reconciler.js';

describe('a reconcile pass with nothing to do', () => {
  let dir: string;
  let db: Store;
  let counted: Store;
  let queries = 0;
  let user: User;
  let reconciler: InstanceReconciler;
  let stop: () => Promise<void>;
  let made = 0;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-pass-queries-'));
    const file = new DataPaths(dir).store;
    db = await openStore(file);
    counted = new Kysely<Database>({
      dialect: new SqliteDialect({ database: new SQLite(file) }),
      log: (event) => {
        if (event.level === 'query') queries++;
      },
    });
    user = await createUser(db, 'ada', 'admin');
    await db.updateTable('teams').set({ quota_apps: 1000, quota_memory_mib: 1_000_000 }).execute();
    ({ reconciler, stop } = await testReconciler(dir, counted));
  });
  after(async () => {
    await stop?.();
    await counted?.destroy();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Makes apps up to `total`: each deployed and served, every fifth asleep. */
  async function appsUpTo(total: number): Promise<void> {
    const appIds: number[] = [];
    for (; made < total; made++) {
      const app = await createApp(db, user, `app-${made}`, { memoryMiB: 64, cpus: 1, pids: 32 });
      await insertRelease(db, app.id, user.id, {
        slug_dir: path.join(dir, 'slug'),
        process_types: JSON.stringify({ web: 'serve', worker: 'sleep' }),
        runtime_env: '{}',
        config_sealed: '',
        release_command: null,
        health_path: null,
        egress: '[]',
        kind: 'deploy',
        description: 'test',
        deploy_id: null,
      });
      appIds.push(app.id);
      if (made % 5 === 4) await sleepApp(db, { name: 'petri' }, app, 'test');
    }
    await until(
      async () => {
        await reconciler.reconcileNow();
        for (const id of appIds) if ((await findApp(db, id))?.serving_release_id === null) return false;
        return true;
      },
      { timeout: 20_000, message: 'every app to serve' },
    );
  }

  /** Queries of one pass, once passes have settled (the last of a few equal ones). */
  async function idlePass(): Promise<number> {
    let last = -1;
    for (let i = 0; i < 10; i++) {
      queries = 0;
      await reconciler.reconcileNow();
      if (queries === last) return queries;
      last = queries;
    }
    return last;
  }

  test('costs as many queries with 50 apps as with 5', async () => {
    await appsUpTo(5);
    const few = await idlePass();
    await appsUpTo(50);
    const many = await idlePass();
    console.log(`queries of a pass with nothing to do: ${few} (5 apps), ${many} (50 apps)`);
    assert.equal(many, few, `a pass over 50 apps made ${many} queries, over 5 apps ${few}`);
    assert.ok(few <= 12, `a pass with nothing to do made ${few} queries`);
  });
});
