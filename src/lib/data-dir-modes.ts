// Who may read what under the data dir: root alone, except where another user must pass.
// An app's uid must reach its own apps/N (bubblewrap, running as that uid, makes the bind
// mounts of /app and /cache), and the managed add-on servers' user its addons/TYPE. So the
// data dir and apps/ can be passed through (0711) but not listed, each apps/N only by its
// app's group (0710 root:gid), addons/ only by the servers' group, and every other entry is
// root's alone (0700 / 0600): nothing below a closed directory is reachable, whatever its
// own mode says. The runtime cache (runtimes/: the Node.js versions apps run on, nothing
// secret) is open to all, as every app's sandbox mounts from it. Applied at every start (an
// older data dir is closed on upgrade) and to a new app's directory when the app is created.
import { chmod, chown, lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import type { DataPaths } from './paths.js';

/** Top-level directories made here, closed, before anything else creates them open. */
const CLOSED_DIRS = ['logs', 'router', 'runtime', 'backups', 'git'] as const;
/** The default runtime cache (lib/runtime-cache.ts): read by every app's user. */
const RUNTIMES = 'runtimes';

export interface DataDirOwners {
  /** App N's uid and gid are uidBase + N. */
  uidBase: number;
  /** Group of the managed add-on servers' user; undefined: no managed server here. */
  addonsGid?: number;
}

export async function secureDataDir(paths: DataPaths, owners: DataDirOwners): Promise<void> {
  await mkdir(paths.root, { recursive: true, mode: 0o711 });
  await chmod(paths.root, 0o711);
  for (const name of CLOSED_DIRS) await mkdir(path.join(paths.root, name), { recursive: true, mode: 0o700 });
  await mkdir(path.join(paths.root, 'apps'), { recursive: true, mode: 0o711 });
  await mkdir(paths.addonServers, { recursive: true, mode: 0o700 });
  for (const name of await readdir(paths.root)) {
    const entry = path.join(paths.root, name);
    const stat = await lstat(entry);
    if (stat.isSymbolicLink()) continue; // chmod would follow it; Petri makes none here
    if (name === 'apps') await secureApps(paths, owners.uidBase);
    else if (entry === paths.addonServers) await secureAddons(entry, owners.addonsGid);
    else if (name === RUNTIMES && stat.isDirectory()) await chmod(entry, 0o755);
    else await chmod(entry, stat.isDirectory() ? 0o700 : 0o600);
  }
}

/** apps/N: passable by app N's group only, so no other user reaches its sources, slugs,
 * build cache or a running instance's /app. */
export async function secureAppDir(paths: DataPaths, appId: number, uidBase: number): Promise<void> {
  const dir = paths.app(appId);
  await mkdir(dir, { recursive: true, mode: 0o710 });
  await chown(dir, 0, uidBase + appId);
  await chmod(dir, 0o710);
}

async function secureApps(paths: DataPaths, uidBase: number): Promise<void> {
  const apps = path.join(paths.root, 'apps');
  await chmod(apps, 0o711);
  for (const name of await readdir(apps)) {
    const entry = path.join(apps, name);
    if ((await lstat(entry)).isSymbolicLink()) continue;
    if (/^[0-9]+$/.test(name)) await secureAppDir(paths, Number(name), uidBase);
    else await chmod(entry, 0o700);
  }
}

/** addons/: the servers' group passes through to its own addons/TYPE (whose data and run
 * directories are the servers' user's own, 0700); without managed servers, root's alone. */
async function secureAddons(dir: string, gid: number | undefined): Promise<void> {
  await chown(dir, 0, gid ?? 0);
  await chmod(dir, gid === undefined ? 0o700 : 0o710);
}
