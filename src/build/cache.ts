// The dependency cache of an app's builds: what the install step produced (node_modules,
// a Python virtualenv), kept per app under a key made from the files that decide it (the
// lockfile), so a redeploy with unchanged dependencies restores it instead of installing.
//
// Restore and save run inside the build's sandbox as the app's own user (restoreThen and
// saveTask), never as root on the host: the cache is the app's to write, so a link or a
// swapped directory in it can only ever reach the app's own files, with the app's own rights.
import { createHash } from 'node:crypto';
import { lstat } from 'node:fs/promises';
import path from 'node:path';
import { streamSourceFile } from './source-file.js';

export interface DependencyCache {
  /** Files (relative to the source) whose content decides what the install produces. */
  keyFiles: string[];
  /** What the install produces, relative to the source: restored and saved. */
  paths: string[];
}

/** The cache key: the stack, and the content of each key file (absent ones count too). Read
 * by root from the unpacked upload, before any build step ran in it: streamed, as a lockfile
 * may be as large as the upload, and never through a link. */
export async function cacheKey(sourceDir: string, stack: string, cache: DependencyCache): Promise<string> {
  const hash = createHash('sha256').update(stack);
  for (const file of cache.keyFiles) {
    hash.update(`\0${file}\0`);
    const read = await streamSourceFile(path.join(sourceDir, file), file, (chunk) => hash.update(chunk));
    if (read === 'absent') hash.update('absent');
  }
  return hash.digest('hex').slice(0, 32);
}

/** Whether the cache (its host path, between builds) seems to hold a complete entry under
 * the key, to spare a sandbox when it does not. Only lstat, which follows no final link, and
 * only a hint: whatever it answers, the restore itself runs as the app, in the sandbox. */
export async function looksCached(cacheDir: string, key: string): Promise<boolean> {
  const kinds = await Promise.all(
    [['deps'], ['deps', key], ['deps', key, '.complete']].map((parts) =>
      lstat(path.join(cacheDir, ...parts)).catch(() => undefined),
    ),
  );
  return Boolean(kinds[0]?.isDirectory() && kinds[1]?.isDirectory() && kinds[2]?.isFile());
}

// One entry per app: everything else under deps goes first, which also makes room. Marked
// complete only once whole: a save cut off leaves no entry that restore would take.
const SAVE = [
  'key=$1; shift; deps=/cache/deps; partial=$deps/$key.partial',
  'rm -rf "$deps" && mkdir -p "$partial" || exit 1',
  'for p; do',
  '  [ -e "/app/$p" ] || continue',
  '  cp -a "/app/$p" "$partial/$p" || { rm -rf "$partial"; exit 1; }',
  'done',
  'touch "$partial/.complete" && mv "$partial" "$deps/$key" || { rm -rf "$partial"; exit 1; }',
].join('\n');

/** restoreThen's exit code when the restore did not happen (the command did not run). */
export const RESTORE_FAILED = 97;

/** `command` preceded by the restore, in one sandbox (one launch less per cached build). */
export function restoreThen(key: string, cache: DependencyCache, command: string[]): string[] {
  const paths = checkedPaths(cache);
  const script = [
    'key=$1; n=$2; shift 2',
    '(',
    '  entry=/cache/deps/$key',
    '  [ -f "$entry/.complete" ] || exit 1',
    '  i=0',
    '  while [ $i -lt "$n" ]; do',
    '    p=$1; shift; i=$((i + 1))',
    '    [ -e "$entry/$p" ] || continue',
    '    rm -rf "/app/$p" && cp -a "$entry/$p" "/app/$p" || exit 1',
    '  done',
    `) || { echo "petri: the build cache could not be restored" >&2; exit ${RESTORE_FAILED}; }`,
    'shift "$n"',
    'exec "$@"',
  ].join('\n');
  return ['/bin/sh', '-c', script, 'petri-cache-restore', key, String(paths.length), ...paths, ...command];
}

/** argv of the task that keeps what the install produced under the key. */
export function saveTask(key: string, cache: DependencyCache): string[] {
  return ['/bin/sh', '-c', SAVE, 'petri-cache-save', key, ...checkedPaths(cache)];
}

/** The detectors' own names (node_modules, .venv): relative, without '..', never an option. */
function checkedPaths(cache: DependencyCache): string[] {
  for (const p of cache.paths) {
    if (!/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(\/[A-Za-z0-9_.-]+)*$/.test(p) || p.split('/').includes('..')) {
      throw new Error(`dependency cache paths must be plain relative paths, got '${p}'`);
    }
  }
  return cache.paths;
}
