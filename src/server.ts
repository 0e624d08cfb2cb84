// `petri server`: the one place that builds the drivers and providers and hands them in.
// The control plane can stop or die at any moment: the router and the app instances it
// started keep serving, and the next start adopts them.
import { writeFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AddonEngines } from './addons/engines.js';
import { systemUserIds } from './addons/managed-host.js';
import type { ApiContext } from './api/context.js';
import { buildApi } from './api/server.js';
import { AddonUpkeep } from './controllers/addon-upkeep.js';
import { BuildLoop, reclaimBuilds } from './controllers/builds.js';
import { IdleSleeper } from './controllers/idle.js';
import { InstanceReconciler } from './controllers/instances.js';
import { bootstrapAdmin } from './domain/auth.js';
import { failInterruptedBuilds } from './domain/deploys.js';
import { startEgressProxy } from './edge/egress-proxy.js';
import { Waker } from './edge/waker.js';
import type { PetriConfig } from './lib/config.js';
import { secureDataDir } from './lib/data-dir-modes.js';
import { createLogger } from './lib/log.js';
import { DataPaths } from './lib/paths.js';
import { assertPortFree } from './lib/ports.js';
import { closeInheritedFds } from './lib/process.js';
import { SecretBox } from './lib/secrets.js';
import { DeployLogs } from './logs/deploy-log.js';
import { LogStore } from './logs/log-store.js';
import { HaproxyRouter } from './router/haproxy-router.js';
import { routerPaths } from './router/paths.js';
import { findRunningHaproxy } from './router/process.js';
import { LocalDriver } from './runtime/local/local-driver.js';
import { AddonService } from './services/addons.js';
import { createOneOffRunner } from './services/one-off.js';
import { recordWorld } from './stop-all.js';
import { openStore, type Store } from './store/db.js';

export interface RunningServer {
  config: PetriConfig;
  api: FastifyInstance;
  db: Store;
  /** The admin token, when this start created it. */
  adminToken?: string;
  /** Stops the control plane only: apps and the router keep serving. (Stopping everything
   * is `petri server --stop-all`: stop-all.ts.) */
  close(): Promise<void>;
}

export async function startServer(config: PetriConfig, logger?: Logger): Promise<RunningServer> {
  const log = logger ?? createLogger(config.logLevel);
  const stray = closeInheritedFds();
  if (stray.length > 0) log.warn({ fds: stray }, 'closed descriptors inherited without close-on-exec');
  const paths = new DataPaths(config.dataDir);
  // Owner-only but for what an app's uid and the add-on servers' user must pass through.
  const addonsGid = await systemUserIds(config.addons.serverUser, 'add-on servers').then(
    (ids) => ids.gid,
    () => undefined,
  );
  await secureDataDir(paths, { uidBase: config.uidBase, addonsGid });
  // A taken port fails the start here, before anything outside the data dir is touched.
  await assertPortsFree(config, findRunningHaproxy(routerPaths(paths.router)) !== undefined);
  await recordWorld(paths, config);
  const db = await openStore(paths.store);

  const adminToken = await bootstrapAdmin(db);
  if (adminToken) writeFileSync(paths.adminToken, `${adminToken}\n`, { mode: 0o600 });
  const interrupted = await failInterruptedBuilds(db);
  if (interrupted.length > 0)
    log.warn({ deploys: interrupted.map((d) => d.id) }, 'failed builds cut off by a restart');

  const secrets = SecretBox.open(paths.secretKey);
  const logs = new LogStore({ dir: paths.logs, maxBytesPerApp: config.logMaxBytesPerApp });
  const deployLogs = new DeployLogs((appId, deployId) => paths.deployLog(appId, deployId));
  // Add-on servers' addresses first: sandboxes reach them through the network's forwards.
  const engines = await AddonEngines.prepare(config.addons, paths.addonServers, log);
  const driver = new LocalDriver({
    stateDir: paths.runtime,
    cgroupParent: config.cgroupParent,
    network: config.network.enabled
      ? {
          bridge: config.network.bridge,
          subnet: config.network.subnet,
          hostPorts: [config.egressPort],
          forwards: engines.forwards(),
        }
      : undefined,
    output: logs,
    logger: log,
  });
  engines.useGateway(driver.networkGateway());
  engines.start();
  const egress = await startEgressProxy({ config, db, driver, logger: log });
  const router = new HaproxyRouter({
    dir: paths.router,
    httpPort: config.httpPort,
    bindAddress: config.httpBind,
    apiHost: config.apiHost,
    apiServer: { address: config.apiBind === '0.0.0.0' ? '127.0.0.1' : config.apiBind, port: config.apiPort },
    domain: config.domain,
    waker: { address: '127.0.0.1', port: config.wakerPort },
    logger: log,
  });
  await router.start();

  const reconciler = new InstanceReconciler({
    db,
    driver,
    router,
    paths,
    config,
    secrets,
    logs,
    deployLogs,
    logger: log,
    egressProxyUrl: egress?.url,
    egressClients: egress?.clients,
  });
  const builds = new BuildLoop({
    db,
    driver,
    paths,
    config,
    logs,
    deployLogs,
    logger: log,
    egressProxyUrl: egress?.url,
    onReleased: () => reconciler.nudge(),
  });
  const addons = new AddonService({
    db,
    engines,
    paths,
    config,
    secrets,
    logger: log,
    nudge: () => reconciler.nudge(),
  });
  const upkeep = new AddonUpkeep({ db, service: addons, paths, config, logger: log });
  const waker = new Waker({ db, config, logs, logger: log, nudge: () => reconciler.nudge() });
  const sleeper = new IdleSleeper({ db, router, config, logs, logger: log, nudge: () => reconciler.nudge() });
  await upkeep.recover();
  const ctx: ApiContext = {
    db,
    config,
    secrets,
    paths,
    logs,
    deployLogs,
    nudge: () => {
      reconciler.nudge();
      void builds.tick();
    },
    flushEgress: async () => egress?.flush(),
    usage: async (ids) => {
      const usage = new Map<string, { memoryBytes?: number; cpuSeconds?: number }>();
      for (const id of ids) {
        const s = await driver.status(id).catch(() => undefined);
        if (s) usage.set(id, { memoryBytes: s.memoryBytes, cpuSeconds: s.cpuSeconds });
      }
      return usage;
    },
    runOneOff: createOneOffRunner({ db, driver, paths, config, secrets, egressProxyUrl: egress?.url }),
    addons,
  };
  // Before the API takes uploads: every deploy dir not queued is then a leftover.
  const reclaimed = [
    ...(await driver.reclaimTasks()),
    ...(await reclaimBuilds({ db, driver, paths, logger: log })),
  ];
  if (reclaimed.length > 0) log.warn({ reclaimed }, 'reclaimed what builds cut off by a restart left');
  const api = await buildApi(ctx, log);
  await api.listen({ port: config.apiPort, host: config.apiBind });
  reconciler.start();
  builds.start();
  upkeep.start();
  await waker.listen();
  sleeper.start();

  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await reconciler.stop();
    await builds.stop();
    await upkeep.stop();
    await sleeper.stop();
    await waker.close();
    await engines.close();
    await driver.close();
    await egress?.close();
    // api.close() first stops uploads and pushes in flight (they answer 503); a connection
    // still open after that (a log tail, a one-off's terminal) is cut rather than waited
    // for: a stopping control plane must not wait on its clients.
    const cut = setTimeout(() => api.server.closeAllConnections(), 2000);
    await api.close();
    clearTimeout(cut);
    await db.destroy();
  };
  return {
    config,
    api,
    db,
    adminToken,
    close,
  };
}

/** The router's port (unless our own router holds it: it is adopted), the API's and the
 * waker's. HAProxy's noreuseport catches a port taken between this check and its bind. */
async function assertPortsFree(config: PetriConfig, routerRunning: boolean): Promise<void> {
  if (!routerRunning) {
    await assertPortFree(
      config.httpPort,
      config.httpBind,
      "the router's",
      '--http-port or "httpPort" in the config file',
    );
  }
  await assertPortFree(
    config.apiPort,
    config.apiBind,
    "the API's",
    '--api-port or "apiPort" in the config file',
  );
  await assertPortFree(config.wakerPort, '127.0.0.1', "the waker's", '"wakerPort" in the config file');
}
