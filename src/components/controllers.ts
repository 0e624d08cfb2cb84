// Part of the composition root: the control plane's loops and the services they share, wired
// to one another: whatever changes what should run (a build, an add-on, a wake, a sleep)
// nudges the instance reconciler, and whatever changes what another loop watches nudges it
// (loops with nothing to do back off, so they must be told). Built here, started and
// stopped by server.ts.
import { AddonUpkeep } from '../controllers/addon-upkeep.js';
import { BuildLoop } from '../controllers/builds.js';
import { CertificateController } from '../controllers/certificates.js';
import { DomainVerifier } from '../controllers/domains.js';
import { IdleSleeper } from '../controllers/idle.js';
import { InstanceReconciler } from '../controllers/instances.js';
import { LifecycleLoop } from '../controllers/lifecycle.js';
import { domainHostsWantingCertificates } from '../domain/domains.js';
import type { ExpiryWarning } from '../domain/lifecycle.js';
import { Waker } from '../edge/waker.js';
import { AddonService } from '../services/addons.js';
import { certificateSources } from '../tls/acme.js';
import type { Core } from './core.js';

export interface Controllers {
  reconciler: InstanceReconciler;
  builds: BuildLoop;
  addons: AddonService;
  upkeep: AddonUpkeep;
  waker: Waker;
  sleeper: IdleSleeper;
  lifecycle: LifecycleLoop;
  certificates: CertificateController;
  domains: DomainVerifier;
}

export function buildControllers(core: Core): Controllers {
  const { db, driver, router, engines, egress, paths, config, secrets, logs, deployLogs, logger } = core;
  const reconciler = new InstanceReconciler({
    db,
    driver,
    router,
    paths,
    config,
    secrets,
    logs,
    deployLogs,
    logger,
    egressProxyUrl: egress?.url,
    egressClients: egress?.clients,
    // Built below; called only once the loops run.
    onWebUp: (appId) => waker.webUp(appId),
    // App hosts may want certificates of their own (tls.mode acme).
    onRoutesChanged: () => certificates.nudge(),
  });
  const nudge = () => reconciler.nudge();
  const builds = new BuildLoop({
    db,
    driver,
    paths,
    config,
    logs,
    deployLogs,
    logger,
    egressProxyUrl: egress?.url,
    onReleased: nudge,
  });
  const addons = new AddonService({ db, engines, paths, config, secrets, logger, nudge });
  const upkeep = new AddonUpkeep({ db, service: addons, paths, config, logger });
  // A woken app is the idle loop's to watch again.
  const waker = new Waker({
    db,
    config,
    logs,
    logger,
    nudge: () => {
      nudge();
      sleeper.nudge();
    },
  });
  const sleeper = new IdleSleeper({ db, router, config, logs, logger, nudge });
  // Expiry warnings also go to the owner by mail, through the relay.
  const notify = core.mail && ((w: ExpiryWarning) => core.mail!.notices.expiryWarning(w));
  const lifecycle = new LifecycleLoop({ db, config, paths, addons, logger, nudge, notify });
  // Custom domains: the router serves their tokens, a verified one routes (issue 20).
  const domains = new DomainVerifier({
    db,
    config,
    router,
    logger,
    nudge: () => {
      nudge();
      certificates.nudge();
    },
  });
  // Certificates of their own for app hosts (acme mode) and custom domains (issue 20).
  const certificates = new CertificateController({
    db,
    config,
    router,
    sources: certificateSources(config, router, core.tls?.ca),
    customHosts: () => domainHostsWantingCertificates(db),
    logger,
  });
  return { reconciler, builds, addons, upkeep, waker, sleeper, lifecycle, certificates, domains };
}
