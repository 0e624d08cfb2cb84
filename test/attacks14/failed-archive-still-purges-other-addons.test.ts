// "If one [final backup] cannot be taken, nothing is removed" (README), and the loop's
// app.archive.failed event says "kept: everything". But AddonService.destroyAllOf takes the
// final backups one add-on at a time and marks each add-on `destroying` as soon as its own
// backup is done (finalBackup -> markDestroying). When a later add-on's backup fails, the
// archive is abandoned and the app is an expired experiment again, yet the earlier add-ons
// stay `destroying`; add-on upkeep then "finishes the interrupted destroy" (resume -> purge)
// and deletes their data. A renewal afterwards does not bring the app back "with its data".
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { AddonEngines } from '../../src/addons/engines.js';
import type { AddonProvider } from '../../src/addons/provider.js';
import { AddonUpkeep } from '../../src/controllers/addon-upkeep.js';
import { LifecycleLoop } from '../../src/controllers/lifecycle.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { DAY_MS } from '../../src/domain/lifecycle.js';
import { insertRelease, markReleaseServing } from '../../src/domain/releases.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { AddonService } from '../../src/services/addons.js';
import { openStore, type Store } from '../../src/store/db.js';
import { testSecrets } from '../api/test-api.js';

/** A Redis-like engine whose backups of one resource fail. */
class FakeProvider {
  readonly type = 'redis' as const;
  failFor = new Set<string>();
  deprovisioned: string[] = [];
  async ping() {}
  async provision(resource: string) {
    return { user: resource, password: 'pw', database: `${resource}:` };
  }
  async createLogin(resource: string) {
    return this.provision(resource);
  }
  async revokeLogin() {}
  async deprovision(resource: string) {
    this.deprovisioned.push(resource);
  }
  async backup(resource: string, file: string) {
    if (this.failFor.has(resource)) throw new Error('the server is not answering');
    writeFileSync(file, 'dump');
  }
  async restore() {}
  async usage() {
    return { bytes: 0, connections: 0 };
  }
  url() {
    return 'redis://u:pw@127.0.0.1:6379';
  }
  shellCommand() {
    return [];
  }
  async secureServer() {
    return undefined;
  }
  async close() {}
}

let dir: string;
let db: Store;
const stops: (() => Promise<void>)[] = [];
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-archive-'));
  db = await openStore(new DataPaths(dir).store);
});
after(async () => {
  for (const s of stops) await s();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('an archive stopped by a failed final backup removes no add-on, now or later', async () => {
  const paths = new DataPaths(dir);
  const config = loadConfig({ dataDir: dir, lifecycle: { archiveAfterDays: 1, warnDays: [] } });
  const provider = new FakeProvider();
  const engines = {
    types: ['redis'],
    get: () => ({ type: 'redis', mode: 'external', endpoint: { host: '127.0.0.1', port: 6379 } }),
    provider: async () => provider as unknown as AddonProvider,
    appEndpoint: () => ({ host: '127.0.0.1', port: 6379 }),
  } as unknown as AddonEngines;
  const addons = new AddonService({
    db,
    engines,
    paths,
    config,
    logger: createLogger('silent'),
    secrets: testSecrets(),
    nudge: () => {},
  });
  const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
  const app = await createApp(db, ana, 'survey', { memoryMiB: 64, cpus: 1, pids: 32 });
  const release = await insertRelease(db, app.id, ana.id, {
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
  });
  await markReleaseServing(db, app.id, release.id);
  mkdirSync(paths.app(app.id), { recursive: true });
  // Two add-ons, backed up in name order (cache, redis); the engine cannot back up redis now.
  const made1 = await addons.create(ana, app, { type: 'redis' });
  if (made1.release) await markReleaseServing(db, app.id, made1.release.id);
  const made2 = await addons.create(ana, app, { type: 'redis', as: 'cache' });
  if (made2.release) await markReleaseServing(db, app.id, made2.release.id);
  const first = made1.addon;
  const second = made2.addon;
  provider.failFor.add(first.resource);

  const expiredAt = new Date(Date.now() - 2 * DAY_MS).toISOString();
  await db
    .updateTable('apps')
    .set({ expires_at: expiredAt, expired_at: expiredAt })
    .where('id', '=', app.id)
    .execute();
  const loop = new LifecycleLoop({
    db,
    config,
    paths,
    addons,
    logger: createLogger('silent'),
    nudge: () => {},
  });
  stops.push(() => loop.stop());
  await loop.tick();

  const failed = await db
    .selectFrom('audit_events')
    .select('detail')
    .where('action', '=', 'app.archive.failed')
    .execute();
  assert.equal(failed.length, 1, 'the archive failed and said so');
  const row = await db.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
  assert.equal(row.stage, 'experiment', 'an expired experiment again');

  // Add-on upkeep runs every 2 s in the server.
  const upkeep = new AddonUpkeep({ db, service: addons, paths, config, logger: createLogger('silent') });
  stops.push(() => upkeep.stop());
  await upkeep.tick();

  const states = await db
    .selectFrom('addons')
    .select(['name', 'status'])
    .where('app_id', '=', app.id)
    .orderBy('name')
    .execute();
  assert.deepEqual(
    { states, deprovisioned: provider.deprovisioned },
    {
      states: [
        { name: second.name, status: 'ready' },
        { name: first.name, status: 'ready' },
      ].sort((a, b) => a.name.localeCompare(b.name)),
      deprovisioned: [],
    },
    "the audit trail says 'kept: everything', so every add-on is still there",
  );
});
