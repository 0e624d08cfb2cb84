// The filesystem under an instance's (or one-off's) writable /app: a sparse ext4 image in its
// workDir, loop-mounted at workDir/app, so an app that fills its /app gets ENOSPC at its disk
// limit instead of filling the host. Works on any host filesystem (quotas would need them
// enabled on the host). The image and the mount outlive the control plane like the instance;
// a host reboot drops the mount and keeps the image, and the next start makes both anew.
// Builds get the same: their /app (createAppDisk) and the app's build cache (openCacheDisk),
// an image kept between builds.
import { chmod, chown, mkdir, open, readFile, realpath, rm, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { exec, execOk } from '../../lib/exec.js';
import { sleep } from '../../lib/until.js';

export const MKFS_EXT4 = '/usr/sbin/mkfs.ext4';
export const MOUNT = '/usr/bin/mount';
export const UMOUNT = '/usr/bin/umount';
export const CP = '/usr/bin/cp';
export const FSTRIM = '/usr/sbin/fstrim';
/** Inside the instance's workDir, beside the mount point `app`. */
export const APP_IMAGE = 'app.img';
/** Inside an app's build cache dir, beside the mount point `cache`. */
export const CACHE_IMAGE = 'cache.img';

const TOOL_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };
/** A busy mount frees up once the last process in it is reaped; then we detach it lazily. */
const UMOUNT_RETRY_MS = 2000;

export function appImagePath(workDir: string): string {
  return path.join(workDir, APP_IMAGE);
}

/** mkfs.ext4 for a fresh image: no journal (nothing to replay, the image is rebuilt at every
 * start), no blocks reserved for root (the app gets all of its limit), one inode per 8 KiB
 * (twice ext4's default: node_modules is many small files), inode tables left unzeroed (a
 * sparse file reads as zeros anyway; see noinit_itable in mountArgs). 1 GiB takes ~20 ms. */
export function mkfsArgs(image: string): string[] {
  return ['-q', '-F', '-m', '0', '-O', '^has_journal', '-i', '8192', '-E', 'lazy_itable_init=1', image];
}

/** nosuid, nodev: nothing in /app may gain privileges or reach a device. noinit_itable: no
 * kernel thread zeroing the inode tables afterwards (it would write out the sparse image). */
export function mountArgs(image: string, dir: string): string[] {
  return ['-o', 'loop,nosuid,nodev,noinit_itable', '--', image, dir];
}

/** Mount points listed in a /proc/PID/mountinfo text (field 5, with its octal escapes). */
export function mountPoints(mountinfo: string): string[] {
  const out: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    out.push(
      field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(Number.parseInt(octal, 8))),
    );
  }
  return out;
}

/** How many mounts are stacked at `dir` in our mount namespace (0: not a mount point). */
export async function mountCount(dir: string): Promise<number> {
  // The kernel lists the path with symlinks resolved.
  const target = await realpath(dir).catch(() => path.resolve(dir));
  return mountPoints(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => m === target).length;
}

/** Makes `workDir/app` an empty, freshly made filesystem of `sizeMiB` and returns its path.
 * Whatever an earlier run left (a mount, an image, a plain directory) is replaced. */
export async function createAppDisk(workDir: string, sizeMiB: number): Promise<string> {
  const appDir = path.join(workDir, 'app');
  const image = appImagePath(workDir);
  await removeAppDisk(workDir);
  await rm(appDir, { recursive: true, force: true });
  await mkdir(appDir, { recursive: true });
  // Sparse: the image takes host disk only as the app writes.
  await makeImage(image, sizeMiB);
  await execOk(MOUNT, mountArgs(image, appDir), { env: TOOL_ENV, timeoutMs: 30_000 });
  return appDir;
}

/** A fresh /app from a ready-made image of it (see LocalDriver's templates): a sparse copy
 * and a mount, instead of mkfs, a copy of every file of the slug and a chown of its dirs. */
export async function cloneAppDisk(template: string, workDir: string): Promise<string> {
  const appDir = path.join(workDir, 'app');
  const image = appImagePath(workDir);
  await removeAppDisk(workDir);
  await rm(appDir, { recursive: true, force: true });
  await mkdir(appDir, { recursive: true });
  await execOk(CP, ['--sparse=always', '--', template, image], { env: TOOL_ENV, timeoutMs: 60_000 });
  await execOk(MOUNT, mountArgs(image, appDir), { env: TOOL_ENV, timeoutMs: 30_000 });
  return appDir;
}

/** Unmounts `workDir/app` (every stacked mount) and deletes the image. Idempotent. A mount
 * still busy after a short while is detached lazily: it goes once its last user does, and the
 * loop device (autoclear) with it. */
export async function removeAppDisk(workDir: string): Promise<void> {
  await unmountAppDisk(workDir);
  await rm(appImagePath(workDir), { force: true });
}

/** Unmounts `workDir/app` (every stacked mount), keeping the image. */
export async function unmountAppDisk(workDir: string): Promise<void> {
  await unmountAll(path.join(workDir, 'app'));
}

/** Mounts the app's build cache, `cacheDir/cache.img`, at `cacheDir/cache` and returns that
 * path; makes the image first when there is none, when it has another size than `sizeMiB`
 * (the operator changed buildCacheMiB), when it does not mount, or when `fresh`. A cache is
 * only ever a speed-up: starting it empty is always allowed. Its root is the app's user's. */
export async function openCacheDisk(
  cacheDir: string,
  sizeMiB: number,
  owner: { uid: number; gid: number },
  fresh: boolean,
): Promise<string> {
  const mountDir = path.join(cacheDir, 'cache');
  const image = path.join(cacheDir, CACHE_IMAGE);
  // A control plane that died mid-build left it mounted: never mount one image twice.
  await unmountAll(mountDir);
  await mkdir(mountDir, { recursive: true, mode: 0o711 });
  const size = await stat(image).then(
    (s) => s.size,
    () => undefined,
  );
  let made = false;
  if (fresh || size !== sizeMiB * 1024 * 1024) {
    await makeImage(image, sizeMiB);
    made = true;
  }
  const mounted = await exec(MOUNT, mountArgs(image, mountDir), { env: TOOL_ENV, timeoutMs: 30_000 });
  if (mounted.code !== 0) {
    if (made) throw new Error(`mounting the build cache ${image} failed: ${mounted.stderr.trim()}`);
    await makeImage(image, sizeMiB);
    made = true;
    await execOk(MOUNT, mountArgs(image, mountDir), { env: TOOL_ENV, timeoutMs: 30_000 });
  }
  const root = await stat(mountDir);
  if (root.uid !== owner.uid || root.gid !== owner.gid) {
    if (!made && root.uid !== 0) {
      // Another uid's files (uidBase changed): the app could not use them; start afresh.
      await unmountAll(mountDir);
      return openCacheDisk(cacheDir, sizeMiB, owner, true);
    }
    // The root directory of a filesystem nobody but mkfs wrote: no link to follow.
    await rmdir(path.join(mountDir, 'lost+found')).catch(() => {});
    await chown(mountDir, owner.uid, owner.gid);
  }
  // The mount's root itself (a path only root made leads to it): the app's alone.
  await chmod(mountDir, 0o700);
  return mountDir;
}

/** Unmounts the app's build cache (its image stays for the next build). Idempotent. Blocks
 * freed inside it are given back to the host first (fstrim punches holes in the sparse
 * image): the image takes what the cache holds now, not the most it ever held. */
export async function closeCacheDisk(cacheDir: string): Promise<void> {
  const mountDir = path.join(cacheDir, 'cache');
  if ((await mountCount(mountDir)) > 0) {
    await exec(FSTRIM, ['--', mountDir], { env: TOOL_ENV, timeoutMs: 30_000 });
  }
  await unmountAll(mountDir);
}

/** A fresh, empty, sparse ext4 image of `sizeMiB` at `image` (root's only). */
async function makeImage(image: string, sizeMiB: number): Promise<void> {
  await rm(image, { force: true });
  const file = await open(image, 'w', 0o600);
  try {
    await file.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await file.close();
  }
  await execOk(MKFS_EXT4, mkfsArgs(image), { env: TOOL_ENV, timeoutMs: 60_000 });
}

/** Unmounts every mount stacked at `dir`. */
async function unmountAll(dir: string): Promise<void> {
  const deadline = Date.now() + UMOUNT_RETRY_MS;
  for (let round = 0; (await mountCount(dir)) > 0; round++) {
    // Each round removes a mount or waits 50 ms; far more rounds means we misread mountinfo.
    if (round > 1000) throw new Error(`could not unmount ${dir}: it stays in /proc/self/mountinfo`);
    const result = await exec(UMOUNT, ['--', dir], { env: TOOL_ENV, timeoutMs: 30_000 });
    if (result.code === 0) continue;
    if (Date.now() < deadline) {
      await sleep(50);
      continue;
    }
    await execOk(UMOUNT, ['-l', '--', dir], { env: TOOL_ENV, timeoutMs: 30_000 });
  }
}
