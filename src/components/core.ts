// Part of the composition root: what every part of the control plane is built from, made once
// by server.ts (the store, the driver and router of this host, the logs, the secrets).
import type { Logger } from 'pino';
import type { AddonEngines } from '../addons/engines.js';
import type { MetricsView } from '../api/context.js';
import type { RunningEgress } from '../edge/egress-proxy.js';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { RunningMail } from '../mail/index.js';
import type { Router } from '../router/router.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import type { RunningTls } from '../tls/index.js';
import type { OcspStapler } from '../tls/ocsp.js';

export interface Core {
  config: PetriConfig;
  paths: DataPaths;
  db: Store;
  secrets: SecretBox;
  logs: LogStore;
  deployLogs: DeployLogs;
  engines: AddonEngines;
  driver: RuntimeDriver;
  router: Router;
  /** HTTPS at the router (the local CA, the default certificate); undefined when httpsPort is 0. */
  tls?: RunningTls;
  /** Staples OCSP answers to the router's certificates; undefined without HTTPS. */
  stapler?: OcspStapler;
  /** Undefined when sandboxes share the host's network (no egress proxy then). */
  egress: RunningEgress | undefined;
  /** The metrics collector (src/metrics/); absent where none runs (some tests). */
  metrics?: MetricsView;
  /** The mail relay; undefined when mail.enabled is false. */
  mail?: RunningMail;
  logger: Logger;
}
