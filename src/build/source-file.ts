// Reading the files of an upload in the control plane (manifests the detectors parse, the
// files the cache key is made of): never following a link, never anything but a regular
// file, and never more than a cap, so that a 240 MB package.json is refused by its size
// before a byte of it is parsed on the control plane's thread.
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { UserError } from '../lib/errors.js';

/** What a detector reads of one manifest file (package.json, Procfile, petri.toml ...):
 * hundreds of times a real one, while parsing that much takes milliseconds. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

// O_NOFOLLOW: the unpacker refuses links, but the control plane runs as root and must not
// depend on it. O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever.
const FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The text of `file` (named `name` in messages), or undefined when there is none; a link,
 * a non-file or one over `maxBytes` fails the build saying so. */
export function readSourceFile(
  file: string,
  name: string,
  maxBytes = MAX_MANIFEST_BYTES,
): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, FLAGS);
  } catch (err) {
    return absentOrRefused(err, name);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw notAFile(name);
    if (stat.size > maxBytes) throw tooLarge(name, stat.size, maxBytes);
    // One byte more than the cap, so a file that grew after fstat is still caught.
    const buf = Buffer.alloc(Math.min(stat.size, maxBytes) + 1);
    let length = 0;
    for (let n = 1; n > 0 && length < buf.length; length += n)
      n = readSync(fd, buf, length, buf.length - length, null);
    if (length > maxBytes) throw tooLarge(name, length, maxBytes);
    return buf.subarray(0, length).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

/** Feeds `file` to `update` in chunks, on the event loop's terms (the cache key of a lockfile
 * of any size the upload allowed); 'absent' when there is none. Same refusals as above. */
export async function streamSourceFile(
  file: string,
  name: string,
  update: (chunk: Buffer) => void,
): Promise<'read' | 'absent'> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, FLAGS);
  } catch (err) {
    absentOrRefused(err, name);
    return 'absent';
  }
  try {
    if (!(await handle.stat()).isFile()) throw notAFile(name);
    for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 1024 * 1024 }))
      update(chunk as Buffer);
    return 'read';
  } finally {
    await handle.close();
  }
}

function absentOrRefused(err: unknown, name: string): undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
  if (code === 'ELOOP')
    throw new UserError('build_failed', `${name} is a symbolic link; Petri reads only plain files`);
  throw err;
}

function notAFile(name: string): UserError {
  return new UserError('build_failed', `${name} is not a plain file; make it one and deploy again`);
}

function tooLarge(name: string, size: number, max: number): UserError {
  return new UserError(
    'build_failed',
    `${name} is ${formatSize(size)}; Petri reads at most ${formatSize(max)} of it: make it smaller and deploy again`,
  );
}

/** 240 MB, 1 MiB, 900 KB: the unit people read sizes in, exact for the caps. */
function formatSize(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1_000_000) return `${Math.round(bytes / 1_000_000)} MB`;
  return `${Math.round(bytes / 1000)} KB`;
}
