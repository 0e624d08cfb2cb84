// Runs the egress proxy on the sandboxes' gateway and keeps the store's egress counts:
// attempts are counted in memory and written a few seconds after the first one since the
// last write (and before a read); with no attempt, nothing runs.
import type { Logger } from 'pino';
import { recordEgressAttempts } from '../domain/egress.js';
import { EgressCounters } from '../egress/counters.js';
import { parseEgressPattern } from '../egress/matching.js';
import { EgressProxy } from '../egress/proxy.js';
import type { PetriConfig } from '../lib/config.js';
import { execOk } from '../lib/exec.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';
import { EgressClients } from './egress-clients.js';

const FLUSH_INTERVAL_MS = 5000;

export interface RunningEgress {
  url: string;
  clients: EgressClients;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export async function startEgressProxy(deps: {
  config: PetriConfig;
  db: Store;
  driver: RuntimeDriver;
  logger: Logger;
}): Promise<RunningEgress | undefined> {
  const { config, db, driver, logger } = deps;
  const gateway = driver.networkGateway();
  if (!gateway) return undefined;
  await driver.prepare();
  const buildEgress = config.buildEgress ?? (await npmRegistryEgress());
  const clients = new EgressClients(db, driver, buildEgress);
  const counters = new EgressCounters();
  let timer: NodeJS.Timeout | undefined;
  const flushSoon = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void flush();
    }, FLUSH_INTERVAL_MS);
    timer.unref();
  };
  const flush = async () => {
    const counts = counters.drain();
    if (counts.length === 0) return;
    try {
      await recordEgressAttempts(
        db,
        counts.map((c) => ({ ...c, lastSeen: c.lastSeen.toISOString(), lastReason: c.lastReason ?? null })),
      );
    } catch (err) {
      counters.restore(counts);
      flushSoon();
      logger.warn({ err }, 'recording egress attempts failed; kept for the next try');
    }
  };
  const proxy = new EgressProxy({
    identify: (address) => clients.identify(address),
    // The build registries are the operator's choice by name too (a mirror may well sit at
    // a private or documentation address, as this project's registry does).
    allowPrivateHosts: [...config.egressAllowPrivateHosts, ...namedHosts(buildEgress)],
    onAttempt: (attempt) => {
      counters.record(attempt);
      flushSoon();
    },
    logger,
  });
  await proxy.listen(gateway, config.egressPort);
  return {
    url: `http://${gateway}:${config.egressPort}`,
    clients,
    flush,
    async close() {
      clearTimeout(timer);
      await flush();
      await proxy.close();
    },
  };
}

/** The exact host names of egress patterns (wildcards and addresses name no one host). */
function namedHosts(patterns: readonly string[]): string[] {
  return patterns.flatMap((text) => {
    try {
      const pattern = parseEgressPattern(text);
      return pattern.kind === 'name' ? [pattern.host] : [];
    } catch {
      return [];
    }
  });
}

/** Builds may reach the registry npm on this host is configured with (host:443), which
 * names no registry in Petri itself. */
async function npmRegistryEgress(): Promise<string[]> {
  try {
    const { stdout } = await execOk('npm', ['config', 'get', 'registry'], { timeoutMs: 10_000 });
    const url = new URL(stdout.trim());
    return [`${url.hostname}:${url.port || (url.protocol === 'https:' ? 443 : 80)}`];
  } catch {
    return [];
  }
}
