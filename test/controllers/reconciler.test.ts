// The instance reconciler on the fake driver and the fake router (each passing the contract
// of the real one) with a real store in a temp dir: a deploy becomes a running, routed app
// whose output reaches its logs; a crash restarts with a growing delay; a new release takes
// over without a failed request and the old one drains; sleep stops every instance; an
// instance the driver moves is routed at its new address and port (the driver's choice). No
// root, a few seconds.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { InstanceReconciler } from '../../src/controllers/instances.js';
import { createApp, findApp, findAppByName, sleepApp, wakeApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { listInstances } from '../../src/domain/instances.js';
import { insertRelease } from '../../src/domain/releases.js';
import { DataPaths } from '../../src/lib/paths.js';
import { until } from '../../src/lib/until.js';
import type { LogStore } from '../../src/logs/log-store.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, Instance, User } from '../../src/store/schema.js';
import type { FakeDriver } from '../fakes/fake-driver.js';
import type { FakeRouter } from '../fakes/fake-router.js';
import { get } from '../router/helpers.js';
import { testReconciler } from './test-reconciler.js';

const DOMAIN = 'petri.localhost';
const WAIT = { timeout: 5000 };

describe('instance reconciler on the fake driver and router', () => {
  let dir: string;
  let db: Store;
  let logs: LogStore;
  let driver: FakeDriver;
  let router: FakeRouter;
  let reconciler: InstanceReconciler;
  let user: User;

  let stop: () => Promise<void>;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-reconciler-'));
    db = await openStore(new DataPaths(dir).store);
    // With the personal team every user has, where createApp puts apps.
    user = await createUser(db, 'ada', 'admin');
    ({ logs, driver, router, reconciler, stop } = await testReconciler(dir, db, DOMAIN));
    reconciler.start(100);
  });
  after(async () => {
    await stop?.();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  async function deploy(app: App, processTypes: Record<string, string>) {
    const release = await insertRelease(db, app.id, user.id, {
      slug_dir: path.join(dir, 'slug'),
      process_types: JSON.stringify(processTypes),
      runtime_env: '{}',
      config_sealed: '',
      release_command: null,
      health_path: null,
      egress: '[]',
      kind: 'deploy',
      description: 'test',
      deploy_id: null,
    });
    reconciler.nudge();
    return release;
  }
  const rowsOf = async (app: App) => (await listInstances(db)).filter((r) => r.app_id === app.id);
  const request = (app: App) => get(router.port, `${app.name}.${DOMAIN}`);
  const fresh = async (app: App) => (await findApp(db, app.id))!;

  test('a deploy becomes a running, routed app whose output reaches its logs', async () => {
    const app = await createApp(db, user, 'first', { memoryMiB: 64, cpus: 1, pids: 32 });
    const v1 = await deploy(app, { web: 'echo hello from web; serve' });
    await until(async () => (await fresh(app)).serving_release_id === v1.id, {
      ...WAIT,
      message: 'v1 to serve',
    });
    const [row] = await rowsOf(app);
    assert.equal(row?.state, 'up');
    const status = await driver.status(row!.id);
    assert.deepEqual(status.labels, { app: 'first', kind: 'instance', release: v1.id, process: 'web.1' });
    assert.equal(row?.address, status.address, "the row holds the driver's address");
    await until(async () => (await request(app)).status === 200, { ...WAIT, message: 'routed' });
    await until(() => logs.read('first', { sources: ['web.1'] }).some((l) => l.text === 'hello from web'), {
      ...WAIT,
      message: 'its output in its logs',
    });
  });

  test('a crash restarts the instance after a delay that grows with each crash', async () => {
    const app = await createApp(db, user, 'crashy', { memoryMiB: 64, cpus: 1, pids: 32 });
    await deploy(app, { web: 'serve' });
    await until(async () => (await rowsOf(app))[0]?.state === 'up', { ...WAIT, message: 'up' });
    const first = (await rowsOf(app))[0]!;

    const crash = async (): Promise<Instance> => {
      const crashedAt = Date.now();
      driver.crash(first.id, 1);
      // Passes on demand (as a driver's exit event would bring them), not at the interval.
      const row = await until(
        async () => {
          reconciler.nudge();
          const r = (await rowsOf(app))[0];
          return r?.state === 'crashed' && r;
        },
        { ...WAIT, message: 'the crash to be seen' },
      );
      return { ...row, started_at: new Date(crashedAt).toISOString() };
    };
    const once = await crash();
    assert.equal(once.restarts, 1);
    assert.equal(once.exit_code, 1);
    assert.match(once.exit_reason ?? '', /web\.1 exited \(exit code 1\)/);
    const before = driver.calls.start.length;
    await until(
      async () => {
        reconciler.nudge();
        return (await rowsOf(app))[0]?.state === 'up';
      },
      { ...WAIT, message: 'up again' },
    );
    assert.equal(driver.calls.start.length, before + 1, 'started once more');
    assert.ok(Date.now() - Date.parse(once.started_at) >= 900, 'not before its delay of 1 s');

    // Crashing again soon after: twice the delay (then 4 s, 8 s ... up to a minute).
    const twice = await crash();
    assert.equal(twice.restarts, 2);
    const delay = Date.parse(twice.next_start_at!) - Date.parse(twice.started_at);
    assert.ok(delay >= 2000 && delay <= 2500, `a delay of 2 s, got ${delay} ms`);
    assert.ok(logs.read('crashy', { sources: ['petri'] }).some((l) => /restarting in 2 s/.test(l.text)));
  });

  test('a new release takes over without a failed request and the old one drains', async () => {
    const app = await createApp(db, user, 'switch', { memoryMiB: 64, cpus: 1, pids: 32 });
    const v1 = await deploy(app, { web: 'serve' });
    await until(async () => (await fresh(app)).serving_release_id === v1.id, { ...WAIT, message: 'v1' });
    const old = (await rowsOf(app))[0]!;
    await until(async () => (await request(app)).status === 200, WAIT);

    let failed = 0;
    let sent = 0;
    let load = true;
    const loader = (async () => {
      while (load) {
        sent++;
        if ((await request(app)).status !== 200) failed++;
      }
    })();
    const v2 = await deploy(app, { web: 'echo v2; serve' });
    await until(async () => (await fresh(app)).serving_release_id === v2.id, { ...WAIT, message: 'v2' });
    await until(async () => (await rowsOf(app)).every((r) => r.release_id === v2.id), {
      ...WAIT,
      message: 'v1 to drain and go',
    });
    load = false;
    await loader;
    assert.equal(failed, 0, `no failed request of ${sent}`);
    assert.ok(driver.calls.stop.includes(old.id), 'the old instance was stopped');
    assert.equal((await driver.status(old.id)).running, false);
    const routed = router.applied.at(-1)?.find((r) => r.app === 'switch');
    assert.deepEqual(
      routed?.servers.map((s) => s.id),
      (await rowsOf(app)).map((r) => r.id),
    );
  });

  test('sleep stops every instance and keeps the route; waking starts them again', async () => {
    const app = await createApp(db, user, 'sleepy', { memoryMiB: 64, cpus: 1, pids: 32 });
    await deploy(app, { web: 'serve', worker: 'sleep' });
    await db.insertInto('formations').values({ app_id: app.id, type: 'worker', quantity: 1 }).execute();
    reconciler.nudge();
    await until(async () => (await rowsOf(app)).filter((r) => r.state === 'up').length === 2, {
      ...WAIT,
      message: 'web and worker up',
    });
    const ids = (await rowsOf(app)).map((r) => r.id);
    await sleepApp(db, { name: 'petri' }, await fresh(app), 'test');
    reconciler.nudge();
    await until(async () => (await rowsOf(app)).length === 0, { ...WAIT, message: 'nothing of it left' });
    for (const id of ids) assert.equal((await driver.status(id)).running, false);
    const routed = router.applied.at(-1)?.find((r) => r.app === 'sleepy');
    assert.deepEqual(routed?.servers, [], 'routed, to no server');

    await wakeApp(db, { name: 'petri' }, await fresh(app), 'test');
    reconciler.nudge();
    await until(async () => (await request(app)).status === 200, { ...WAIT, message: 'awake' });
  });

  test('an instance the driver moves is routed at its new address and port by the next pass', async () => {
    const app = (await findAppByName(db, 'first'))!;
    const [row] = await rowsOf(app);
    assert.equal(row!.port, (await driver.status(row!.id)).port, 'the row has the port the driver chose');
    const moved = await driver.move(row!.id);
    assert.notEqual(moved.address, row!.address);
    await until(
      async () => {
        const now = (await rowsOf(app))[0];
        return now?.address === moved.address && now.port === moved.port;
      },
      { ...WAIT, message: 'the row' },
    );
    await until(
      () => {
        const server = router.applied.at(-1)?.find((r) => r.app === 'first')?.servers[0];
        return server?.address === moved.address && server.port === moved.port;
      },
      { ...WAIT, message: 'the route' },
    );
    assert.equal((await request(app)).status, 200);
  });

  test("an instance whose port the driver does not know (an earlier Petri's) keeps the row's", async () => {
    const app = (await findAppByName(db, 'first'))!;
    const [row] = await rowsOf(app);
    assert.ok(row?.port);
    driver.forgetPort(row.id);
    assert.equal((await driver.status(row.id)).port, undefined);
    // A few passes later (run here, not waited for): still the same port, routed and served.
    for (let i = 0; i < 3; i++) await reconciler.reconcileNow();
    assert.equal((await rowsOf(app))[0]?.port, row.port);
    assert.equal(router.applied.at(-1)?.find((r) => r.app === 'first')?.servers[0]?.port, row.port);
    assert.equal((await request(app)).status, 200);
  });
});
