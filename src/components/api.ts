// Part of the composition root: the API as the control plane runs it: the context its routes
// get (the store, the services, a nudge to the loops), its listening socket, and a close that
// never waits on its clients.
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../api/context.js';
import { buildApi } from '../api/server.js';
import type { OcspInfo } from '../contract/index.js';
import { Identity } from '../identity/index.js';
import type { DataPaths } from '../lib/paths.js';
import { certFile, DEFAULT_CERT } from '../router/certificates.js';
import { routerPaths } from '../router/paths.js';
import { createOneOffRunner } from '../services/one-off.js';
import type { OcspState } from '../tls/ocsp.js';
import type { Controllers } from './controllers.js';
import type { Core } from './core.js';

/** How long connections still open after the API stopped taking requests are waited for. */
const CLOSE_CUT_MS = 2000;

export function apiContext(core: Core, controllers: Controllers): ApiContext {
  const { reconciler, builds, addons } = controllers;
  const { db, config, secrets, paths, logs, deployLogs, driver, egress, logger, metrics } = core;
  return {
    db,
    config,
    secrets,
    paths,
    logs,
    deployLogs,
    // Any write through the API: every loop that watches what it may have changed looks now
    // (an idle period, a domain claim, an add-on rotation), at the interval again.
    nudge: () => {
      reconciler.nudge();
      void builds.tick();
      controllers.sleeper.nudge();
      controllers.domains.nudge();
      controllers.certificates.nudge();
      controllers.upkeep.nudge();
    },
    routesNow: () => reconciler.reconcileNow(),
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
    identity: new Identity({ db, config, secrets, log: logger }),
    metrics,
    defaultCertificate: core.tls ? () => defaultCertificateChain(paths) : undefined,
    ocsp: core.stapler ? (host) => ocspInfo(core.stapler?.state(host ?? DEFAULT_CERT)) : undefined,
    mailNotices: core.mail?.notices,
  };
}

function ocspInfo(state: OcspState | undefined): OcspInfo | undefined {
  if (state === undefined) return undefined;
  return {
    state: state.state,
    detail: state.detail ?? null,
    nextUpdate: state.nextUpdate?.toISOString() ?? null,
  };
}

/** The certificates of the router's default certificate file, as served now (the wildcard's
 * watcher and the local CA's renewal rewrite it); the key in the same file is left out. */
async function defaultCertificateChain(paths: DataPaths): Promise<string | undefined> {
  const file = certFile(routerPaths(paths.router).certsDir, DEFAULT_CERT);
  const text = await readFile(file, 'utf8').catch(() => undefined);
  return text?.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g)?.join('\n');
}

export async function listenApi(core: Core, controllers: Controllers): Promise<FastifyInstance> {
  const api = await buildApi(apiContext(core, controllers), core.logger);
  await api.listen({ port: core.config.apiPort, host: core.config.apiBind });
  return api;
}

/** api.close() first stops uploads and pushes in flight (they answer 503); a connection
 * still open after that (a log tail, a one-off's terminal) is cut rather than waited for:
 * a stopping control plane must not wait on its clients. */
export async function closeApi(api: FastifyInstance): Promise<void> {
  const cut = setTimeout(() => api.server.closeAllConnections(), CLOSE_CUT_MS);
  try {
    await api.close();
  } finally {
    clearTimeout(cut);
  }
}
