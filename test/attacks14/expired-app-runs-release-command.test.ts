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
import { after, before, test } from 'node:test';
import type { InstanceReconciler } from '../../src/controllers/instances.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { insertRelease } from '../../src/domain/releases.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { testReconciler } from '../controllers/test-reconciler.js';
import type { FakeDriver } from '../fakes/fake-driver.js';

let dir: string;
let db: Store;
let driver: FakeDriver;
let reconciler: InstanceReconciler;
let stop: () => Promise<void>;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack14-expired-release-'));
  db = await openStore(new DataPaths(dir).store);
  ({ driver, reconciler, stop } = await testReconciler(dir, db));
  reconciler.start(100);
});
after(async () => {
  await stop?.();
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

test('a release command running when the experiment expires is stopped, and runs again after a renewal', async () => {
  const mallory = await createUser(db, 'mallory2', 'member');
  const app = await createApp(db, mallory, 'midway', { memoryMiB: 64, cpus: 1, pids: 32 });
  const release = await insertRelease(db, app.id, mallory.id, {
    slug_dir: path.join(dir, 'slug'),
    process_types: JSON.stringify({ web: 'serve' }),
    runtime_env: '{}',
    config_sealed: '',
    release_command: 'echo a long migration; sleep',
    health_path: null,
    egress: '[]',
    kind: 'deploy',
    description: 'test',
    deploy_id: null,
  });
  const phaseOf = () =>
    db
      .selectFrom('releases')
      .select(['phase_status', 'phase_instance'])
      .where('id', '=', release.id)
      .executeTakeFirstOrThrow();
  await reconciler.reconcileNow();
  const running = await phaseOf();
  assert.equal(running.phase_status, 'running');
  const id = running.phase_instance!;
  assert.equal((await driver.status(id)).running, true, 'the release command runs');

  const expired = new Date().toISOString();
  await db
    .updateTable('apps')
    .set({ expires_at: expired, expired_at: expired })
    .where('id', '=', app.id)
    .execute();
  await reconciler.reconcileNow();
  assert.equal((await driver.status(id)).running, false, 'the expired app still runs its release command');
  assert.equal((await phaseOf()).phase_status, 'pending', 'it waits for a renewal');

  await db
    .updateTable('apps')
    .set({ expires_at: new Date(Date.now() + 86_400_000).toISOString(), expired_at: null })
    .where('id', '=', app.id)
    .execute();
  await reconciler.reconcileNow();
  const again = await phaseOf();
  assert.equal(again.phase_status, 'running', 'renewed: the release command runs again');
  assert.notEqual(again.phase_instance, id);
});
