// The dependency cache of an app's builds: what the install step produced (node_modules,
// a Python virtualenv), kept per app under a key made from the files that decide it (the
// lockfile), so a redeploy with unchanged dependencies restores it instead of installing.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { execOk } from '../lib/exec.js';

export interface DependencyCache {
  /** Files (relative to the source) whose content decides what the install produces. */
  keyFiles: string[];
  /** What the install produces, relative to the source: restored and saved. */
  paths: string[];
}

/** The cache key: the stack, and the content of each key file (absent ones count too). */
export function cacheKey(sourceDir: string, stack: string, cache: DependencyCache): string {
  const hash = createHash('sha256').update(stack);
  for (const file of cache.keyFiles) {
    const full = path.join(sourceDir, file);
    hash.update(`\0${file}\0`);
    hash.update(existsSync(full) ? readFileSync(full) : 'absent');
  }
  return hash.digest('hex').slice(0, 32);
}

/** Copies the cached paths into the source; false when there is nothing under this key. */
export async function restoreDependencies(
  cacheDir: string,
  key: string,
  sourceDir: string,
  cache: DependencyCache,
): Promise<boolean> {
  const entry = path.join(cacheDir, 'deps', key);
  if (!existsSync(path.join(entry, '.complete'))) return false;
  for (const p of cache.paths) {
    const from = path.join(entry, p);
    if (!existsSync(from)) continue;
    await rm(path.join(sourceDir, p), { recursive: true, force: true });
    await execOk('cp', ['-a', '--', from, path.join(sourceDir, p)]);
  }
  return true;
}

/** Keeps what the install produced under the key, replacing older entries (one per app). */
export async function saveDependencies(
  cacheDir: string,
  key: string,
  sourceDir: string,
  cache: DependencyCache,
): Promise<void> {
  const deps = path.join(cacheDir, 'deps');
  const entry = path.join(deps, key);
  const partial = `${entry}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial, { recursive: true });
  for (const p of cache.paths) {
    const from = path.join(sourceDir, p);
    if (existsSync(from)) await execOk('cp', ['-a', '--', from, path.join(partial, p)]);
  }
  // Marked complete only once whole: a build cut off while saving leaves no half entry.
  await execOk('touch', [path.join(partial, '.complete')]);
  await rm(entry, { recursive: true, force: true });
  await rename(partial, entry);
  for (const old of await readdir(deps)) {
    if (old !== key) await rm(path.join(deps, old), { recursive: true, force: true });
  }
}
