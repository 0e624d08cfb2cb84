// The instance reconciler against operations that keep failing (issue 11, High 4): a row
// the runtime cannot act on must cost a few attempts and log lines a minute, not a hot loop
// of hundreds of lines a second; a row with an id the driver refuses (a 120-character
// process type from before names were checked) must go away by itself. Real store and
// local driver (no network); the router is a stand-in that routes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { InstanceReconciler } from '../../src/controllers/instances.js';
import { insertInstance, updateInstance } from '../../src/domain/instances.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { until } from '../../src/lib/until.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import type { Router } from '../../src/router/router.js';
import type { InstanceStatus } from '../../src/runtime/driver.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import { openStore, type Store } from '../../src/store/db.js';

const noRouter: Router = {
  start: async () => {},
  apply: async () => {},
  drained: async () => true,
  lastRequests: async () => new Map(),
  stop: async () => {},
  setCertificate: async () => {},
  removeCertificate: async () => {},
  setWellKnown: async () => {},
  deleteWellKnown: async () => {},
};

describe('instance reconciler retries', () => {
  let dir: string;
  let db: Store;
  let reconciler: InstanceReconciler | undefined;
  let driver: LocalDriver;
  const lines: { msg: string; level: number }[] = [];
  const listed: number[] = [];
  const stops: number[] = [];
  /** Ids the driver is made to report as running and fail to stop. */
  const stuck = new Set<string>();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-retries-'));
    const paths = new DataPaths(dir);
    db = await openStore(paths.store);
    const logs = new LogStore({ dir: paths.logs });
    driver = new LocalDriver({
      stateDir: path.join(dir, 'runtime'),
      cgroupParent: `petri-test-retries-${process.pid}`,
      output: logs,
    });
    // Faults injected into the real driver: what a stop that cannot succeed looks like.
    const realList = driver.list.bind(driver);
    const realStop = driver.stop.bind(driver);
    driver.list = async () => {
      listed.push(Date.now());
      const real = await realList();
      return [...real, ...[...stuck].map((id): InstanceStatus => ({ id, running: true }))];
    };
    driver.stop = async (id, grace) => {
      stops.push(Date.now());
      if (stuck.has(id)) throw new Error(`cannot stop ${id}: injected`);
      return realStop(id, grace);
    };
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    reconciler = new InstanceReconciler({
      db,
      driver,
      router: noRouter,
      paths,
      config: loadConfig({ dataDir: dir }),
      secrets: SecretBox.withKey(Buffer.alloc(32, 1)),
      logs,
      deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
      logger: createLogger('info', sink),
    });
  });
  after(async () => {
    await reconciler?.stop();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const stoppingRow = async (id: string) => {
    // The app (id 999) is gone: the row is what destroying an app leaves for the reconciler.
    await insertInstance(db, {
      id,
      app_id: 999,
      release_id: 999,
      type: 'web',
      idx: 1,
      generation: 0,
    });
    await updateInstance(db, id, { state: 'stopping', stop_deadline: new Date(0).toISOString() });
  };
  const rowExists = async (id: string) =>
    (await db.selectFrom('instances').select('id').where('id', '=', id).executeTakeFirst()) !== undefined;

  test('an instance with an id the driver refuses is forgotten, not retried forever', async () => {
    const id = `app-${'w'.repeat(120)}-1-abc`;
    await stoppingRow(id);
    reconciler!.start(1000);
    await until(async () => !(await rowExists(id)), { timeout: 10_000, message: 'the bad row to go' });
  });

  test('a stop that keeps failing is retried after 1 s, 2 s ..., logged once, without a hot loop', async () => {
    const id = 'app-web-1-stuck';
    stuck.add(id);
    const from = lines.length;
    const firstList = listed.length;
    const start = Date.now();
    await stoppingRow(id);
    reconciler!.nudge();
    await until(() => stops.length >= 3, { timeout: 15_000, message: 'three stop attempts' });
    const elapsed = stops[2]! - stops[0]!;
    assert.ok(elapsed >= 2900, `third attempt ${elapsed} ms after the first; want >= 3 s (1 s + 2 s)`);
    const failures = lines.slice(from).filter((l) => /stop/.test(l.msg) && l.level >= 50);
    assert.equal(failures.length, 1, JSON.stringify(failures));
    // Passes: about one a second while nothing can be done, not one every 50 ms.
    const seconds = (Date.now() - start) / 1000;
    const passes = listed.length - firstList;
    assert.ok(passes <= seconds * 3 + 3, `${passes} passes in ${seconds.toFixed(1)} s`);
    stuck.delete(id);
    await until(async () => !(await rowExists(id)), { timeout: 70_000, message: 'the row to go' });
  });
});
