// Part of the composition root: this host's runtime driver (bubblewrap, cgroups, a network of
// its own) and router (HAProxy), built from the configuration. A second driver or router is
// chosen here and nowhere else.
import type { Logger } from 'pino';
import type { AddonEngines } from '../addons/engines.js';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { LogStore } from '../logs/log-store.js';
import type { RequestLog } from '../router/config.js';
import { HaproxyRouter } from '../router/haproxy-router.js';
import { LocalDriver } from '../runtime/local/local-driver.js';
import type { RunningTls } from '../tls/index.js';

/** The add-on engines are prepared first: sandboxes reach their servers through the
 * network's forwards. Output goes to the app logs. */
export function localDriver(
  config: PetriConfig,
  paths: DataPaths,
  engines: AddonEngines,
  output: LogStore,
  logger: Logger,
): LocalDriver {
  return new LocalDriver({
    stateDir: paths.runtime,
    cgroupParent: config.cgroupParent,
    network: config.network.enabled
      ? {
          bridge: config.network.bridge,
          subnet: config.network.subnet,
          hostPorts: [
            config.egressPort,
            ...(config.mail.enabled ? [config.mail.smtpPort, config.mail.httpPort] : []),
          ],
          forwards: engines.forwards(),
        }
      : undefined,
    output,
    logger,
    // Made ahead so a wake only takes them: four namespaces (any instance's next start), and
    // the disks of the eight releases whose instances stopped last (apps put to sleep).
    ahead: { namespaces: 4, disks: 8 },
  });
}

/** Started, or adopted when this data dir's HAProxy still runs. HTTPS when `tls` is given
 * (httpsPort not 0), with its default certificate. */
export async function haproxyRouter(
  config: PetriConfig,
  paths: DataPaths,
  logger: Logger,
  requestLog?: RequestLog,
  tls?: RunningTls,
): Promise<HaproxyRouter> {
  const router = new HaproxyRouter({
    dir: paths.router,
    httpPort: config.httpPort,
    ...(tls && {
      https: {
        port: config.httpsPort,
        hsts: config.tls.mode !== 'self-signed',
        redirectHttp: config.tls.redirectHttp,
      },
      defaultCertificate: tls.defaultCertificate,
    }),
    bindAddress: config.httpBind,
    apiHost: config.apiHost,
    apiServer: { address: config.apiBind === '0.0.0.0' ? '127.0.0.1' : config.apiBind, port: config.apiPort },
    domain: config.domain,
    waker: { address: '127.0.0.1', port: config.wakerPort },
    requestLog,
    statsPort: config.routerMetricsPort || undefined,
    logger,
  });
  await router.start();
  return router;
}
