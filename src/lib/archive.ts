// Unpacks an untrusted upload (a gzip-compressed tar) into an empty directory.
// Every entry is checked before anything is written: a refused entry is an error that
// names it, never a silent skip, and on any error nothing of the upload survives.
// node-tar's Parser only decodes headers here; all path and type decisions are ours,
// because its Unpack quietly rewrites `/abs` and `../x`, which would hide an attack.

import { once } from 'node:events';
import { closeSync, constants, createWriteStream, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { chmod, mkdir, readdir, realpath, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { UserError } from './errors.js';

export interface UnpackOptions {
  /** Total uncompressed bytes of file contents allowed. */
  maxBytes: number;
  /** Files and directories allowed; 100k by default. */
  maxEntries?: number;
}

export interface UnpackResult {
  files: number;
  bytes: number;
}

const DEFAULT_MAX_ENTRIES = 100_000;
// Pax and GNU long-name headers are the only meta entries; real paths fit in far less.
const MAX_META_ENTRY_SIZE = 64 * 1024;
// The decompressed stream holds headers and padding besides file contents. This allowance
// bounds it, so a gzip bomb of zero blocks after the end marker cannot run forever.
const TAR_OVERHEAD_BASE = 1024 * 1024;
const TAR_OVERHEAD_PER_ENTRY = 4 * 1024;

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const TYPE_WORDS: Record<string, string> = {
  SymbolicLink: 'a symbolic link',
  Link: 'a hard link',
  CharacterDevice: 'a character device',
  BlockDevice: 'a block device',
  FIFO: 'a FIFO (named pipe)',
};

export async function unpackUntrusted(
  source: NodeJS.ReadableStream | Buffer,
  targetDir: string,
  opts: UnpackOptions,
): Promise<UnpackResult> {
  await mkdir(targetDir, { recursive: true });
  // Resolve once so every later path is built from a real directory, never through a link.
  const root = await realpath(targetDir);
  if ((await readdir(root)).length > 0) {
    throw new Error(`unpack target ${root} is not empty`);
  }
  const unpacker = new Unpacker(root, opts.maxBytes, opts.maxEntries ?? DEFAULT_MAX_ENTRIES);
  try {
    return await unpacker.run(Buffer.isBuffer(source) ? Readable.from([source]) : source);
  } catch (err) {
    await unpacker.abandon();
    throw err;
  }
}

type Kind = 'file' | 'dir';

class Unpacker {
  private files = 0;
  private entries = 0;
  private bytes = 0;
  private failure: Error | undefined;
  private readonly abort = new AbortController();
  /** Rejects with the first failure; raced against every wait so a refusal never hangs on a drain. */
  private readonly failed = new Promise<never>((_, reject) => {
    this.abort.signal.addEventListener('abort', () => reject(this.failure), { once: true });
  });
  /** What this upload created, by relative path: the only things later entries may go into. */
  private readonly made = new Map<string, Kind>();
  /** Directory modes from the archive, applied at the end so a read-only dir can still be filled. */
  private readonly dirModes = new Map<string, number>();
  private readonly writes = new Set<Writable>();
  private readonly pending: Promise<void>[] = [];

  constructor(
    private readonly root: string,
    private readonly maxBytes: number,
    private readonly maxEntries: number,
  ) {
    this.failed.catch(() => {}); // observed through until(); never an unhandled rejection
  }

  async run(input: NodeJS.ReadableStream): Promise<UnpackResult> {
    const parser = new Parser({ strict: true, maxMetaEntrySize: MAX_META_ENTRY_SIZE });
    parser.on('entry', (entry: ReadEntry) => this.guard(entry.path, () => this.onEntry(entry)));
    // Unknown types and oversized meta headers are skipped by the parser: refuse them instead.
    parser.on('ignoredEntry', (entry: ReadEntry) =>
      this.fail(refuse(entry.path, `has unsupported type ${entry.type}; ${ONLY_FILES}`)),
    );
    parser.on('error', (err: Error) => this.fail(notAnArchive(err)));
    const parsed = new Promise<void>((resolve) => parser.on('end', resolve));

    // Parser would also accept an uncompressed tar; uploads are gzip, so gunzip ourselves.
    let decompressed = 0;
    const sink = async (tar: AsyncIterable<Buffer>) => {
      for await (const chunk of tar) {
        decompressed += chunk.length;
        const allowance = this.maxBytes + TAR_OVERHEAD_BASE + TAR_OVERHEAD_PER_ENTRY * this.entries;
        if (decompressed > allowance) {
          this.fail(
            new UserError(
              'payload_too_large',
              `upload expands to more than ${allowance} bytes of tar data; the limit for file contents is ${this.maxBytes} bytes`,
            ),
          );
        }
        this.check();
        if (!parser.write(chunk)) await this.until(once(parser, 'drain'));
      }
      parser.end();
      await this.until(parsed);
    };
    try {
      await pipeline(input, createGunzip(), sink, { signal: this.abort.signal });
      this.check();
      await this.until(Promise.all(this.pending));
      this.check();
    } catch (err) {
      // An abort is how a refusal stops the stream early; report the refusal, not the abort.
      throw this.failure ?? (isZlibError(err) ? notAnArchive(err) : err);
    }
    // Only now, so a directory the archive marks read-only could still be filled above.
    for (const [rel, mode] of this.dirModes) await chmod(join(this.root, rel), mode);
    return { files: this.files, bytes: this.bytes };
  }

  /** Removes everything this upload wrote; the target is left empty. */
  async abandon(): Promise<void> {
    for (const out of this.writes) out.destroy();
    await Promise.allSettled(this.pending);
    for (const name of await readdir(this.root)) {
      await rm(join(this.root, name), { recursive: true, force: true });
    }
  }

  private onEntry(entry: ReadEntry): void {
    const rel = safeRelativePath(entry.path);
    const isFile = FILE_TYPES.has(entry.type);
    if (!isFile && entry.type !== 'Directory') {
      const what = TYPE_WORDS[entry.type];
      if (entry.type === 'SymbolicLink' || entry.type === 'Link') {
        throw refuse(
          entry.path,
          `is ${what} to '${show(entry.linkpath ?? '')}'; archives may not contain links: include the file itself`,
        );
      }
      throw refuse(entry.path, `is ${what ?? `of type ${entry.type}`}; ${ONLY_FILES}`);
    }
    if (++this.entries > this.maxEntries) {
      throw new UserError('payload_too_large', `archive has more than ${this.maxEntries} entries`);
    }
    if (isFile && this.bytes + entry.size > this.maxBytes) {
      throw new UserError(
        'payload_too_large',
        `archive entry '${show(entry.path)}' (${entry.size} bytes) takes the app past the ${this.maxBytes}-byte limit; ` +
          'leave build output and dependencies out of the upload (.petriignore)',
      );
    }

    if (rel === '') {
      // `./` names the target itself, which already exists.
      if (isFile) throw refuse(entry.path, 'has no file name');
      entry.resume();
      return;
    }
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) this.makeDir(parts.slice(0, i).join('/'), entry.path);

    if (!isFile) {
      if (this.made.get(rel) === 'file') throw refuse(entry.path, 'is a directory and also a file');
      this.makeDir(rel, entry.path);
      this.dirModes.set(rel, dirMode(entry.mode));
      entry.resume();
      return;
    }
    if (this.made.has(rel)) throw refuse(entry.path, 'appears more than once');
    this.bytes += entry.size;
    this.files++;
    this.writeFile(rel, entry);
  }

  /** Creates one directory level, refusing to go through anything but a directory we made. */
  private makeDir(rel: string, entryPath: string): void {
    const kind = this.made.get(rel);
    if (kind === 'dir') return;
    if (kind === 'file') throw refuse(entryPath, `goes through '${show(rel)}', which is a file`);
    mkdirSync(join(this.root, rel), { mode: 0o700 });
    this.made.set(rel, 'dir');
    this.dirModes.set(rel, 0o755);
  }

  private writeFile(rel: string, entry: ReadEntry): void {
    // O_EXCL and O_NOFOLLOW: never reuse or follow whatever might already sit at this path.
    const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
    const fd = openSync(join(this.root, rel), flags, 0o600);
    try {
      fchmodSync(fd, fileMode(entry.mode));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.made.set(rel, 'file');
    const out = createWriteStream('', { fd });
    this.writes.add(out);
    entry.pipe(out);
    const done = finished(out).finally(() => this.writes.delete(out));
    this.pending.push(done);
    done.catch((err: unknown) => this.fail(err));
  }

  /** Runs an entry handler; it is called from inside the parser's events, so throwing there would escape. */
  private guard(entryPath: string, fn: () => void): void {
    if (this.failure) return;
    try {
      fn();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // These come from the entry's name or shape (too long, a file used as a directory), not the host.
      if (code === 'ENAMETOOLONG' || code === 'ENOTDIR' || code === 'EEXIST' || code === 'ELOOP') {
        this.fail(refuse(entryPath, `cannot be written (${code})`));
      } else {
        this.fail(err);
      }
    }
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    this.abort.abort(this.failure);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  /** Waits for p, or stops as soon as something failed. */
  private until<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }
}

const ONLY_FILES = 'archives may contain only regular files and directories';

/** The entry's path relative to the target, or a refusal. Empty means the target itself. */
function safeRelativePath(path: string): string {
  if (path.includes('\0')) throw refuse(path, 'contains a NUL byte');
  if (path.startsWith('/')) {
    throw refuse(path, 'is an absolute path; archives must contain only relative paths inside the app');
  }
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) {
    throw refuse(path, 'leaves the app directory; archives must contain only relative paths inside the app');
  }
  return parts.join('/');
}

// Keep the executable bits; drop setuid/setgid/sticky and group/other write. The owner
// always keeps read and write (directories: search), so the build can use what it unpacked.
function fileMode(mode: number | undefined): number {
  return ((mode ?? 0o644) & 0o755) | 0o600;
}

function dirMode(mode: number | undefined): number {
  return ((mode ?? 0o755) & 0o755) | 0o700;
}

function refuse(path: string, what: string): UserError {
  return new UserError('invalid_archive', `archive entry '${show(path)}' ${what}`);
}

/** Entry names come from the attacker: escape control characters before they reach a terminal or log. */
function show(path: string): string {
  return path.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function notAnArchive(err: unknown): UserError {
  const why = err instanceof Error ? err.message : String(err);
  return new UserError('invalid_archive', `upload is not a gzip-compressed tar archive: ${why}`);
}

function isZlibError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
