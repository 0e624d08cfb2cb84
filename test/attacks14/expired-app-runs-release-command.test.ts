// An expired experiment is "stopped": its processes end and wake/restart/run are refused
// until a renewal. But deploys are taken while it is expired (README: "their release runs
// once it is [renewed]"), and the reconciler advances the new release's release phase before
// it looks at the lifecycle (InstanceReconciler.converge calls phase.advance first; only
// planApp's `sleeping` knows of expiry). So each deploy of an expired app runs its Procfile
// `release:` command at once, with its config vars and add-on credentials and egress, for
// up to buildTimeoutMs: an expired app keeps running code against its data, one deploy at a
// time, without ever renewing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { InstanceReconciler } from '../../src/controllers/instances.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { insertRelease } from '../../src/domain/releases.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import { openStore, type Store } from '../../src/store/db.js';
import { FakeDriver } from '../fakes/fake-driver.js';
import { FakeRouter } from '../fakes/fake-router.js';

let dir: string;
let db: Store;
let driver: FakeDriver;
let router: FakeRouter;
let reconciler: InstanceReconciler;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-expired-release-'));
  const paths = new DataPaths(dir);
  db = await openStore(paths.store);
  const logs = new LogStore({ dir: paths.logs });
  driver = new FakeDriver({ output: logs });
  router = new FakeRouter();
  await router.start();
  reconciler = new InstanceReconciler({
    db,
    driver,
    router,
    paths,
    config: loadConfig({ dataDir: dir, domain: 'petri.localhost', drainGraceMs: 200, bootTimeoutMs: 2000 }),
    secrets: SecretBox.withKey(Buffer.alloc(32, 1)),
    logs,
    deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
    logger: createLogger('fatal', new Writable({ write: (_c, _e, done) => done() })),
  });
  reconciler.start(100);
});
after(async () => {
  await reconciler?.stop();
  for (const s of (await driver?.list()) ?? []) await driver.stop(s.id, 0);
  await router?.stop();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('a deploy of an expired app does not run its release command until it is renewed', async () => {
  const mallory = await createUser(db, 'mallory', 'member');
  const app = await createApp(db, mallory, 'lapsed', { memoryMiB: 64, cpus: 1, pids: 32 });
  const expired = new Date(Date.now() - 60_000).toISOString();
  await db
    .updateTable('apps')
    .set({ expires_at: expired, expired_at: expired })
    .where('id', '=', app.id)
    .execute();
  // A deploy taken while expired (deploys are not refused): the release has a release command.
  const release = await insertRelease(db, app.id, mallory.id, {
    slug_dir: path.join(dir, 'slug'),
    process_types: JSON.stringify({ web: 'serve' }),
    runtime_env: '{}',
    config_sealed: '',
    release_command: 'echo dumping the database to an outside host; sleep',
    health_path: null,
    egress: '[]',
    kind: 'deploy',
    description: 'test',
    deploy_id: null,
  });
  // A few whole passes of the reconciler (each awaited, so none is still in flight).
  for (let i = 0; i < 3; i++) await reconciler.reconcileNow();
  // What the driver was asked to start for this app while it was expired.
  const started = driver.calls.start.filter((id) => id.includes('lapsed'));
  const phase = await db
    .selectFrom('releases')
    .select('phase_status')
    .where('id', '=', release.id)
    .executeTakeFirstOrThrow();
  assert.deepEqual(
    started,
    [],
    `the expired app's release command was started (release phase: ${phase.phase_status})`,
  );
  assert.equal(phase.phase_status, 'pending', 'the release phase waits for a renewal');
});
