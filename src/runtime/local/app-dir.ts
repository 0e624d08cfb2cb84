// An instance's writable /app, made from the read-only slug. A hard-link farm costs one
// inode per directory and nothing per file, so starting the tenth instance of a 300 MB slug
// is as cheap as the first. The app owns the directories (it can add, rename and delete
// files) but not the files: it cannot write a slug file in place, only replace it, so the
// slug shared by every instance and kept for rollback stays intact. When /app is a
// filesystem of its own (app-disk.ts, the disk limit), links cannot cross into it and the
// slug is copied instead, with the same ownership: root's files, the app's directories.
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec, execOk } from '../../lib/exec.js';

export type AppDirMethod = 'hardlink' | 'copy';

/** Makes `appDir` (emptying a leftover from an interrupted start; kept itself, as it may be
 * a mount point) from `slugDir`. */
export async function makeAppDir(
  slugDir: string,
  appDir: string,
  uid: number,
  gid: number,
): Promise<AppDirMethod> {
  if (!path.isAbsolute(slugDir) || !path.isAbsolute(appDir)) {
    throw new Error(`slug and app dir must be absolute paths, got '${slugDir}' and '${appDir}'`);
  }
  await emptyDir(appDir);
  // Only the directories become the app's, writable by it (a frozen slug's are read-only):
  // it can add, rename and delete files, and write in place only the files the slug itself
  // let it write (a frozen slug: none).
  const ownDirs = [
    'find',
    appDir,
    '-type',
    'd',
    '-exec',
    'chown',
    '--no-dereference',
    `${uid}:${gid}`,
    '{}',
    '+',
    ',',
    '-type',
    'd',
    '-exec',
    'chmod',
    'u+rwx',
    '{}',
    '+',
  ];
  if ((await sameFilesystem(slugDir, appDir)) && (await linkingIsSafe(slugDir, uid, gid))) {
    const linked = await exec('cp', ['-a', '-l', '--', `${slugDir}/.`, appDir]);
    if (linked.code === 0) {
      await execOk(ownDirs[0]!, ownDirs.slice(1));
      return 'hardlink';
    }
    // A full inode table, say: a copy may still work.
    await emptyDir(appDir);
  }
  const copied = await exec('cp', ['-a', '--', `${slugDir}/.`, appDir]);
  if (copied.code !== 0) {
    if (/No space left/i.test(copied.stderr)) {
      throw new Error(
        `the release does not fit the app's disk limit (copying it to ${appDir} ran out of space); raise limits.diskMiB`,
      );
    }
    throw new Error(`copying the release to ${appDir} failed: ${copied.stderr.trim().slice(-2000)}`);
  }
  await execOk(ownDirs[0]!, ownDirs.slice(1));
  return 'copy';
}

async function emptyDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const entry of await readdir(dir)) await rm(path.join(dir, entry), { recursive: true, force: true });
}

/** Hard links cannot cross filesystems: trying would fail file by file (EXDEV), slowly. */
async function sameFilesystem(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a), stat(b)]);
  return sa.dev === sb.dev;
}

/** A hard link shares the file: if the app could write any slug file (it owns it, or its
 * group or everyone may write it), linking would let it change the slug itself, so copy. */
async function linkingIsSafe(slugDir: string, uid: number, gid: number): Promise<boolean> {
  const found = await execOk('find', [
    slugDir,
    '-type',
    'f',
    '(',
    '-uid',
    String(uid),
    '-o',
    '(',
    '-gid',
    String(gid),
    '-perm',
    '-g+w',
    ')',
    '-o',
    '-perm',
    '-o+w',
    ')',
    '-print',
    '-quit',
  ]);
  return found.stdout.trim() === '';
}
