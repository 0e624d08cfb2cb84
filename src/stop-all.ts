// `petri server --stop-all`: the composition root's other entry. It stops what this data dir's
// own state says runs and nothing else: it renders, binds and reloads nothing (the configured
// ports are never looked at), so a second Petri on the host is never touched. The world a
// start set up (cgroup parent, bridge) is recorded by that start (recordWorld), so a stop
// given another Petri's config, or none, still stops this data dir's own.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readdir, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { AddonEngines } from './addons/engines.js';
import { ADDON_ENGINES, type AddonsConfig, type PetriConfig } from './lib/config.js';
import { errorMessage } from './lib/errors.js';
import { createLogger } from './lib/log.js';
import { DataPaths } from './lib/paths.js';
import { routerPaths } from './router/paths.js';
import { findRunningHaproxy, stopHaproxy } from './router/process.js';
import { LocalDriver } from './runtime/local/local-driver.js';

/** What a start set up outside the data dir, and where: kept in it for --stop-all. */
interface World {
  cgroupParent: string;
  network: PetriConfig['network'];
}

const worldFile = (paths: DataPaths) => path.join(paths.runtime, 'world.json');

/** Called by every start before it makes anything outside the data dir. */
export async function recordWorld(paths: DataPaths, config: PetriConfig): Promise<void> {
  const world: World = { cgroupParent: config.cgroupParent, network: config.network };
  const file = worldFile(paths);
  writeFileSync(`${file}.partial`, `${JSON.stringify(world)}\n`, { mode: 0o600 });
  await rename(`${file}.partial`, file);
}

function readWorld(paths: DataPaths): World | undefined {
  try {
    const w = JSON.parse(readFileSync(worldFile(paths), 'utf8')) as Partial<World>;
    if (typeof w.cgroupParent === 'string' && w.network && typeof w.network.bridge === 'string') {
      return { cgroupParent: w.cgroupParent, network: w.network };
    }
  } catch {
    // none yet (a data dir of an earlier Petri): the configuration says where
  }
  return undefined;
}

/** Stops every sandbox, the router and the managed add-on servers of `config.dataDir`, by
 * the pids its state files name, then removes its network and cgroup parent. The control
 * plane must be stopped first (it would start them again). */
export async function stopAll(config: PetriConfig, logger?: Logger): Promise<void> {
  const log = logger ?? createLogger(config.logLevel);
  const paths = new DataPaths(config.dataDir);
  if (!existsSync(paths.root)) return; // nothing was ever started from here
  const world = readWorld(paths) ?? { cgroupParent: config.cgroupParent, network: config.network };
  const driver = new LocalDriver({
    stateDir: paths.runtime,
    cgroupParent: world.cgroupParent,
    // Only the names matter to stop and remove: no port is opened or forwarded.
    network: world.network.enabled
      ? { bridge: world.network.bridge, subnet: world.network.subnet, hostPorts: [] }
      : undefined,
    logger: log,
  });
  const running = await driver.list();
  await Promise.all(running.map((s) => driver.stop(s.id, 2000)));
  // Every instance directory goes, mounts included, also one the store has forgotten.
  for (const appId of await paths.appIds()) {
    const dir = path.join(paths.app(appId), 'instances');
    for (const id of await readdir(dir).catch(() => [] as string[])) {
      await driver
        .removeFiles({ id, workDir: path.join(dir, id) })
        .catch((err: unknown) => log.warn({ id, err: errorMessage(err) }, 'could not remove an instance'));
    }
  }
  const router = findRunningHaproxy(routerPaths(paths.router));
  if (router) await stopHaproxy(router, 10_000);
  const engines = await AddonEngines.prepare(managedHere(paths, config.addons), paths.addonServers, log);
  await engines.stopServers();
  await driver.teardown();
}

/** The managed servers this data dir has (a state file in their directory), whatever the
 * configuration now says: one turned off since its last start still runs until stopped. */
function managedHere(paths: DataPaths, addons: AddonsConfig): AddonsConfig {
  const engines = Object.fromEntries(
    ADDON_ENGINES.map((type) => [
      type,
      existsSync(path.join(paths.addonServers, type, 'state.json'))
        ? { mode: 'managed' as const }
        : { mode: 'off' as const },
    ]),
  );
  return { ...addons, ...engines };
}
