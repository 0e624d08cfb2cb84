// Where the runtimes apps run on are kept: one directory per Node.js version, shared by every
// app that uses it, which sandboxes mount read-only at NODE_MOUNT. The builder installs them
// (build/node-runtimes.ts); sandbox specs mount the release's; `petri stacks` lists them.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { PetriConfig } from './config.js';

/** Where a sandbox sees the Node.js it runs on; its bin/ goes first on PATH. */
export const NODE_MOUNT = '/opt/node';

/** A Node.js version as Petri names directories after it: exact, no prerelease. */
export const NODE_VERSION = /^(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})$/;

/** The runtime cache: config runtimesDir, by default DATA_DIR/runtimes. */
export function runtimesDir(config: Pick<PetriConfig, 'runtimesDir'>, dataDir: string): string {
  return config.runtimesDir ?? path.join(dataDir, 'runtimes');
}

/** Node.js versions live in here, each in a directory of its own (and nothing else that
 * looks like a version: an install in progress is a dot-directory beside them). */
export function nodeRuntimesDir(root: string): string {
  return path.join(root, 'node');
}

export function nodeRuntimeDir(root: string, version: string): string {
  if (!NODE_VERSION.test(version)) throw new Error(`not a Node.js version: '${version}'`);
  return path.join(nodeRuntimesDir(root), version);
}

/** The read-only mount of a Node.js version into a sandbox (host path -> sandbox path). */
export function nodeMount(root: string, version: string): Record<string, string> {
  return { [nodeRuntimeDir(root, version)]: NODE_MOUNT };
}

/** The installed Node.js versions, oldest first. An install appears here only once whole
 * (it is renamed into place), so everything listed can be mounted. */
export async function installedNodeVersions(root: string): Promise<string[]> {
  const names = await readdir(nodeRuntimesDir(root)).catch(() => [] as string[]);
  return names.filter((n) => NODE_VERSION.test(n)).sort(compareVersions);
}

/** Numeric order of x.y.z versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
