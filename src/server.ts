// `petri server`: the composition root. It builds this host's driver, router and add-on
// engines, hands them in, and lists every component once, in the order they start; they stop
// in the reverse order (lib/lifecycle). The control plane can stop or die at any moment: the
// router and the app instances it started keep serving, and the next start adopts them.
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AddonEngines } from './addons/engines.js';
import { closeApi, listenApi } from './components/api.js';
import { buildControllers } from './components/controllers.js';
import type { Core } from './components/core.js';
import { haproxyRouter, localDriver } from './components/host.js';
import { preflight } from './components/preflight.js';
import { reclaimLeftovers, recoverStore } from './components/recovery.js';
import { listLiveAddons } from './domain/addons.js';
import { startEgressProxy } from './edge/egress-proxy.js';
import type { PetriConfig } from './lib/config.js';
import { Lifecycle } from './lib/lifecycle.js';
import { createLogger } from './lib/log.js';
import { DataPaths } from './lib/paths.js';
import { SecretBox } from './lib/secrets.js';
import { DeployLogs } from './logs/deploy-log.js';
import { LogStore } from './logs/log-store.js';
import { startMail } from './mail/index.js';
import { MetricsCollector } from './metrics/collector.js';
import { openStore, type Store } from './store/db.js';
import { prepareTls } from './tls/index.js';
import { OcspStapler, withOcspStapling } from './tls/ocsp.js';

export interface RunningServer {
  config: PetriConfig;
  api: FastifyInstance;
  db: Store;
  /** The admin token, when this start created it. */
  adminToken?: string;
  /** The local CA's certificate (DATA_DIR/tls/ca.pem), when the router's certificates come from it. */
  caPath?: string;
  /** Stops the control plane only: apps and the router keep serving. (Stopping everything
   * is `petri server --stop-all`: stop-all.ts.) */
  close(): Promise<void>;
}

export async function startServer(config: PetriConfig, logger?: Logger): Promise<RunningServer> {
  const log = logger ?? createLogger(config.logLevel);
  const paths = new DataPaths(config.dataDir);
  await preflight(config, paths, log);
  const life = new Lifecycle(log);
  // First in, last out: everything below may write to the store until it has stopped.
  const db = await life.add('store', () => openStore(paths.store), closeStore);
  const adminToken = await recoverStore(db, paths, log, config.identity.adminEmail);

  const secrets = SecretBox.open(paths.secretKey);
  const logs = new LogStore({ dir: paths.logs, maxBytesPerApp: config.logMaxBytesPerApp });
  const deployLogs = new DeployLogs((appId, deployId) => paths.deployLog(appId, deployId));
  // Add-on servers' addresses first: sandboxes reach them through the network's forwards.
  const engines = await AddonEngines.prepare(config.addons, paths.addonServers, log);
  const driver = await life.add(
    'runtime driver',
    () => localDriver(config, paths, engines, logs, log),
    (d) => d.close(),
  );
  await life.add(
    'add-on engines',
    async () => {
      engines.useGateway(driver.networkGateway());
      // Only the servers some add-on uses start now; the others with their first add-on.
      engines.start(new Set((await listLiveAddons(db)).map((a) => a.type)));
    },
    () => engines.close(),
  );
  const egress = await life.add(
    'egress proxy',
    () => startEgressProxy({ config, db, driver, logger: log }),
    (e) => e?.close(),
  );
  // Before the router: HAProxy sends its request log to the collector's UDP port.
  const metrics = new MetricsCollector({
    db,
    driver,
    routerAddress: config.httpBind === '0.0.0.0' ? '127.0.0.1' : config.httpBind,
    routerPort: config.httpPort,
    domain: config.domain,
    apiHost: config.apiHost,
    passMs: config.metricsPassMs,
    wakeTimeoutMs: config.wakeTimeoutMs,
    addonServers: () => [...engines.engines.values()].map((e) => ({ name: e.type, ...e.endpoint })),
    logger: log,
    heartbeatFile: paths.heartbeat,
  });
  const requestLog = await life.add(
    'metrics',
    () => metrics.listen(),
    () => metrics.stop(),
  );
  // The mail relay listens on the gateway too (mail.smtpPort, mail.httpPort: host ports).
  const mail = await life.add(
    'mail relay',
    async () => {
      if (driver.networkGateway()) await driver.prepare();
      return startMail({ config, db, secrets, logger: log, listen: { host: driver.networkGateway() } });
    },
    (m) => m?.close(),
  );
  if (mail) metrics.onAlert = (appId, message) => mail.notices.alert(appId, message);
  // Before the router: its HTTPS bind starts with the default certificate (tls/index.ts).
  const tls = await life.add(
    'tls',
    () => prepareTls(config, log),
    (t) => t?.stop(),
  );
  // No stop: the router keeps serving the apps while the control plane is down or restarts.
  const haproxy = await life.add('router', () => haproxyRouter(config, paths, log, requestLog, tls));
  // HAProxy 2.6 fetches no OCSP responses itself: every certificate set goes by the stapler.
  const stapler = await life.add(
    'OCSP stapler',
    async () => {
      if (!tls) return undefined;
      const made = new OcspStapler({ router: haproxy, logger: log });
      await made.start();
      return made;
    },
    (s) => s?.stop(),
  );
  const router = stapler ? withOcspStapling(haproxy, stapler) : haproxy;
  tls?.start(router);

  const core: Core = {
    config,
    paths,
    db,
    secrets,
    logs,
    deployLogs,
    engines,
    driver,
    router,
    tls,
    stapler,
    egress,
    metrics,
    mail,
    logger: log,
  };
  const controllers = buildControllers(core);
  const { reconciler, builds, upkeep, waker, sleeper, lifecycle } = controllers;
  await upkeep.recover();
  // Before the API takes uploads: every deploy dir not queued is then a leftover.
  await reclaimLeftovers({ db, driver, paths, logger: log });
  const api = await life.add('API', () => listenApi(core, controllers), closeApi);
  await life.add('instance reconciler', reconciler);
  await life.add('build loop', builds);
  await life.add('add-on upkeep', upkeep);
  await life.add('waker', { start: () => waker.listen(), stop: () => waker.close() });
  await life.add('idle sleeper', sleeper);
  await life.add('lifecycle loop', lifecycle);
  await life.add('certificate controller', controllers.certificates);
  await life.add('domain verifier', controllers.domains);
  await life.add('metrics collector', { start: () => metrics.start(), stop: () => undefined });

  return { config, api, db, adminToken, caPath: tls?.caPath, close: () => life.stop() };
}

const closeStore = (db: Store) => db.destroy();
