// Writes a gzip-compressed tar as a stream, entry by entry, from files on disk and bytes in
// memory, under names the caller chooses. Never follows a link: a symbolic link is stored as
// one, and a file is opened with O_NOFOLLOW and must still be the regular file of the size it
// had when listed, so a path swapped for a link or a growing file fails the stream instead of
// putting something else in it. Headers are node-tar's (ustar, with pax records for long
// names); every entry is root's, so no user or group of this host leaks into the archive.
import { constants, createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline, Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { Header, type HeaderData, Pax } from 'tar';

export type TarEntry =
  | { type: 'file'; path: string; mode: number; mtime: Date; size: number; data: Buffer }
  | { type: 'file'; path: string; mode: number; mtime: Date; size: number; file: string }
  | { type: 'directory'; path: string; mode: number; mtime: Date }
  | { type: 'symlink'; path: string; mtime: Date; linkpath: string };

const BLOCK = 512;

/** The tar.gz of the entries, in their order; the stream fails if an entry cannot be read. */
export function tarGzStream(entries: AsyncIterable<TarEntry> | Iterable<TarEntry>): Readable {
  const gzip = createGzip();
  // pipeline destroys the gzip stream with the error, so its reader sees the failure.
  pipeline(Readable.from(tarBlocks(entries)), gzip, () => {});
  return gzip;
}

async function* tarBlocks(entries: AsyncIterable<TarEntry> | Iterable<TarEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    const size = entry.type === 'file' ? entry.size : 0;
    const fields: HeaderData = {
      path: entry.type === 'directory' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path,
      // Permission bits only: every entry is root's, so a setuid or setgid bit an app's build
      // set on its own file would be a setuid-root program wherever root unpacks the archive.
      mode: entry.type === 'symlink' ? 0o777 : entry.mode & 0o777,
      uid: 0,
      gid: 0,
      uname: 'root',
      gname: 'root',
      size,
      mtime: entry.mtime,
      type: entry.type === 'file' ? 'File' : entry.type === 'directory' ? 'Directory' : 'SymbolicLink',
      ...(entry.type === 'symlink' && { linkpath: entry.linkpath }),
    };
    const header = new Header(fields);
    if (header.encode()) yield new Pax(fields).encode();
    yield header.block as Buffer;
    if (entry.type !== 'file' || size === 0) continue;
    if ('data' in entry) {
      if (entry.data.length !== size)
        throw new Error(`${entry.path}: ${entry.data.length} bytes, not ${size}`);
      yield entry.data;
    } else {
      yield* fileBytes(entry.file, size, entry.path);
    }
    const pad = (BLOCK - (size % BLOCK)) % BLOCK;
    if (pad > 0) yield Buffer.alloc(pad);
  }
  // The end of the archive: two empty blocks.
  yield Buffer.alloc(BLOCK * 2);
}

async function* fileBytes(file: string, size: number, name: string): AsyncGenerator<Buffer> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new Error(`${name} is no longer a regular file`);
    if (info.size !== size) throw new Error(`${name} changed size while it was packed`);
    let read = 0;
    for await (const chunk of createReadStream('', {
      fd: handle.fd,
      autoClose: false,
      start: 0,
      end: size - 1,
    })) {
      read += (chunk as Buffer).length;
      yield chunk as Buffer;
    }
    if (read !== size) throw new Error(`${name} shrank while it was packed`);
  } finally {
    await handle.close();
  }
}
