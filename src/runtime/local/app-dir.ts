// An instance's writable /app, made from the read-only slug. A hard-link farm costs one
// inode per directory and nothing per file, so starting the tenth instance of a 300 MB slug
// is as cheap as the first. The app owns the directories (it can add, rename and delete
// files) but not the files: it cannot write a slug file in place, only replace it, so the
// slug shared by every instance and kept for rollback stays intact.
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { exec, execOk } from '../../lib/exec.js';

export type AppDirMethod = 'hardlink' | 'copy';

/** Makes `appDir` (replacing a leftover from an interrupted start) from `slugDir`. */
export async function makeAppDir(
  slugDir: string,
  appDir: string,
  uid: number,
  gid: number,
): Promise<AppDirMethod> {
  if (!path.isAbsolute(slugDir) || !path.isAbsolute(appDir)) {
    throw new Error(`slug and app dir must be absolute paths, got '${slugDir}' and '${appDir}'`);
  }
  await rm(appDir, { recursive: true, force: true });
  await mkdir(appDir, { recursive: true });
  const owner = `${uid}:${gid}`;
  if (await linkingIsSafe(slugDir, uid, gid)) {
    const linked = await exec('cp', ['-a', '-l', '--', `${slugDir}/.`, appDir]);
    if (linked.code === 0) {
      await execOk('find', [appDir, '-type', 'd', '-exec', 'chown', '--no-dereference', owner, '{}', '+']);
      return 'hardlink';
    }
    // Different filesystems (EXDEV) or a full inode table: a copy still works.
    await rm(appDir, { recursive: true, force: true });
    await mkdir(appDir, { recursive: true });
  }
  await execOk('cp', ['-a', '--', `${slugDir}/.`, appDir]);
  await execOk('chown', ['-R', '--no-dereference', owner, appDir]);
  return 'copy';
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
