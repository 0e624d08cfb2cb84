// Part of the composition root: what a start checks and sets up on the host before it touches
// anything outside the data dir (descriptors, the data dir's modes, the ports, the world a
// later --stop-all must find).
import type { Logger } from 'pino';
import { systemUserIds } from '../addons/managed-host.js';
import type { PetriConfig } from '../lib/config.js';
import { secureDataDir } from '../lib/data-dir-modes.js';
import type { DataPaths } from '../lib/paths.js';
import { assertPortFree } from '../lib/ports.js';
import { closeInheritedFds } from '../lib/process.js';
import { routerPaths } from '../router/paths.js';
import { findRunningHaproxy } from '../router/process.js';
import { recordWorld } from '../stop-all.js';

export async function preflight(config: PetriConfig, paths: DataPaths, log: Logger): Promise<void> {
  const stray = closeInheritedFds();
  if (stray.length > 0) log.warn({ fds: stray }, 'closed descriptors inherited without close-on-exec');
  // Owner-only but for what an app's uid and the add-on servers' user must pass through.
  const addonsGid = await systemUserIds(config.addons.serverUser, 'add-on servers').then(
    (ids) => ids.gid,
    () => undefined,
  );
  await secureDataDir(paths, { uidBase: config.uidBase, addonsGid });
  // A taken port fails the start here, before anything outside the data dir is touched.
  await assertPortsFree(config, findRunningHaproxy(routerPaths(paths.router)) !== undefined);
  await recordWorld(paths, config);
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
  if (!routerRunning && config.httpsPort !== 0) {
    await assertPortFree(
      config.httpsPort,
      config.httpBind,
      "the router's HTTPS",
      '--https-port or "httpsPort" in the config file (0: no HTTPS)',
    );
  }
}
