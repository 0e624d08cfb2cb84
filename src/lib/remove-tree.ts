// Removes a directory tree that an app may have written into (a deploy's directory, an old
// build cache, a destroyed app's files). GNU rm, not Node's fs.rm: rm walks by file
// descriptor and checks each directory it enters is the one it listed, so a directory
// swapped for a link while it walks is never followed (fs.rm walks by path: a swap between
// its lstat and its readdir would delete inside the link's target, as root). With
// --one-file-system it never enters a mounted disk (an app's /app or build cache): those
// are unmounted by their owner first, and a tree that still has one is refused, not emptied.
import { exec } from './exec.js';

const RM = '/usr/bin/rm';
const ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

/** rm -rf of `dir` (absent is fine); throws, naming the cause, when part of it stays. */
export async function removeTree(dir: string): Promise<void> {
  if (!dir.startsWith('/') || dir === '/') throw new Error(`refusing to remove '${dir}'`);
  const result = await exec(RM, ['-rf', '--one-file-system', '--', dir], {
    env: ENV,
    timeoutMs: 10 * 60_000,
  });
  if (result.code !== 0) throw new Error(`could not remove ${dir}: ${result.stderr.trim().slice(-500)}`);
}
