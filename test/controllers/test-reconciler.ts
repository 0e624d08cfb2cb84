// The instance reconciler as the controller tests run it: the fake driver and router over a
// store in `dir`, a short drain and boot timeout, its log silenced.
import { Writable } from 'node:stream';
import { InstanceReconciler } from '../../src/controllers/instances.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import type { Store } from '../../src/store/db.js';
import { FakeDriver } from '../fakes/fake-driver.js';
import { FakeRouter } from '../fakes/fake-router.js';

/** Starts the router; the caller starts the reconciler and ends all with `stop`. */
export async function testReconciler(dir: string, db: Store, domain = 'petri.localhost') {
  const paths = new DataPaths(dir);
  const logs = new LogStore({ dir: paths.logs });
  const driver = new FakeDriver({ output: logs });
  const router = new FakeRouter();
  await router.start();
  const reconciler = new InstanceReconciler({
    db,
    driver,
    router,
    paths,
    // A short drain: a retired instance waits for the router or this deadline.
    config: loadConfig({ dataDir: dir, domain, drainGraceMs: 200, bootTimeoutMs: 2000 }),
    secrets: SecretBox.withKey(Buffer.alloc(32, 1)),
    logs,
    deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
    logger: createLogger('fatal', new Writable({ write: (_c, _e, done) => done() })),
  });
  /** Stops the reconciler, every instance left and the router. */
  const stop = async () => {
    await reconciler.stop();
    for (const s of await driver.list()) await driver.stop(s.id, 0);
    await router.stop();
  };
  return { paths, logs, driver, router, reconciler, stop };
}
