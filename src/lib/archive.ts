// Unpacks an untrusted upload (a gzip-compressed tar) into an empty directory.
// Every entry is checked before anything is written: a refused entry is an error that
// names it, never a silent skip, and on any error nothing of the upload survives.
// node-tar's Parser only decodes headers here; all path and type decisions are ours,
// because its Unpack quietly rewrites `/abs` and `../x`, which would hide an attack.
// Bombs are refused within seconds: caps on entries, file bytes, tar bytes and time, an
// abort signal (the client left, the server stops), and nothing read past the end marker.

import { once } from 'node:events';
import { closeSync, constants, createWriteStream, fchmodSync, mkdirSync, openSync } from 'node:fs';
import { chmod, mkdir, readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { UserError } from './errors.js';
import { execOk } from './exec.js';
import { MAX_META_ENTRY_SIZE, TarEnd } from './tar-end.js';

export interface UnpackOptions {
  /** Total uncompressed bytes of file contents allowed. */
  maxBytes: number;
  /** Files and directories allowed; 20,000 by default. */
  maxEntries?: number;
  /** Bytes of gzip read, whatever they inflate to (a stream of empty gzip members inflates to nothing). */
  maxInputBytes?: number;
  /** The whole unpack, reading included, must finish within this; unlimited by default. */
  timeoutMs?: number;
  /** Stops the unpack at once (the client went away, the server is stopping); its reason is the error. */
  signal?: AbortSignal;
}

export interface UnpackResult {
  files: number;
  bytes: number;
}

export const DEFAULT_MAX_ENTRIES = 20_000;
// The decompressed stream holds headers and padding besides file contents. This allowance
// bounds it, so a gzip bomb of zero blocks after the end marker cannot run forever.
const TAR_OVERHEAD_BASE = 1024 * 1024;
const TAR_OVERHEAD_PER_ENTRY = 4 * 1024;
// Writers pad the archive with zeros to a whole record after the end marker: 10 KiB for
// GNU tar, bsdtar and git archive, up to 1 MiB for `tar -b 2048`. More than that, or any
// non-zero byte, is data no tar reader looks at: refused, never parsed.
const MAX_END_PADDING = 1024 * 1024;

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
  const unpacker = new Unpacker(
    root,
    opts.maxBytes,
    opts.maxEntries ?? DEFAULT_MAX_ENTRIES,
    opts.maxInputBytes ?? Number.POSITIVE_INFINITY,
  );
  const stopOnAbort = () => unpacker.stop(opts.signal?.reason);
  if (opts.signal?.aborted) stopOnAbort();
  opts.signal?.addEventListener('abort', stopOnAbort, { once: true });
  const timer =
    opts.timeoutMs === undefined
      ? undefined
      : setTimeout(() => unpacker.stop(timedOut(opts.timeoutMs ?? 0)), opts.timeoutMs);
  try {
    return await unpacker.run(Buffer.isBuffer(source) ? Readable.from([source]) : source);
  } catch (err) {
    await unpacker.abandon();
    throw err;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', stopOnAbort);
  }
}

function timedOut(ms: number): UserError {
  return new UserError(
    'request_timeout',
    `upload took longer than ${ms / 1000} s to send and unpack; send a smaller archive (.petriignore) or over a faster link`,
  );
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
  private readonly emptyFiles: [string, number][] = [];
  private readonly pending: Promise<void>[] = [];

  constructor(
    private readonly root: string,
    private readonly maxBytes: number,
    private readonly maxEntries: number,
    private readonly maxInputBytes: number,
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
    let padding = 0;
    const end = new TarEnd();
    let parserEnded = false;
    const sink = async (tar: AsyncIterable<Buffer>) => {
      for await (const chunk of tar) {
        this.check();
        // The parser never sees what follows the end marker: fed to it, that data is
        // appended to a buffer it copies on every write, which made a bomb of zeros
        // after the marker take many minutes of CPU.
        const [inside, after] = end.split(chunk);
        if (inside.length > 0) {
          decompressed += inside.length;
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
          if (!parser.write(inside)) await this.until(once(parser, 'drain'));
        }
        if (end.found && !parserEnded) {
          parserEnded = true;
          parser.end();
        }
        padding += after.length;
        if (padding > MAX_END_PADDING || !isZeros(after)) this.fail(dataAfterEnd());
        this.check();
      }
      if (!parserEnded) parser.end();
      await this.until(parsed);
    };
    let read = 0;
    const count = async function* (this: Unpacker, source: AsyncIterable<Buffer | string>) {
      for await (const chunk of source) {
        read += chunk.length;
        if (read > this.maxInputBytes) {
          this.fail(
            new UserError(
              'payload_too_large',
              `upload is larger than ${this.maxInputBytes} bytes; leave build outputs and dependencies out with .petriignore`,
            ),
          );
        }
        this.check();
        yield chunk;
      }
    }.bind(this);
    try {
      await pipeline(input, count, createGunzip(), sink, { signal: this.abort.signal });
      this.check();
      await this.until(Promise.all(this.pending));
      this.check();
    } catch (err) {
      // An abort is how a refusal stops the stream early; report the refusal, not the abort.
      throw this.failure ?? (isZlibError(err) ? notAnArchive(err) : err);
    }
    for (let i = 0; i < this.emptyFiles.length; i++) {
      const [rel, mode] = this.emptyFiles[i]!;
      this.guard(rel, () => closeSync(createFile(join(this.root, rel), mode)));
      this.check();
      if (i % 128 === 127) await new Promise(setImmediate); // let other requests in
    }
    // Only now, so a directory the archive marks read-only could still be filled above.
    for (const [rel, mode] of this.dirModes) await chmod(join(this.root, rel), mode);
    return { files: this.files, bytes: this.bytes };
  }

  /** Stops the unpack from outside (time cap, abort signal): run() rejects with `reason`. */
  stop(reason: unknown): void {
    this.fail(reason ?? new Error('unpack stopped'));
  }

  /** Removes everything this upload wrote; the target is left empty. */
  async abandon(): Promise<void> {
    for (const out of this.writes) out.destroy();
    await Promise.allSettled(this.pending);
    // One `rm -rf` of the root in a child process: fs.rm queues one request per file in a
    // single tick, which held the event loop (and every API call) for 150 ms per 20,000
    // files; rm neither follows links nor crosses into another filesystem.
    await execOk('rm', ['-rf', '--one-file-system', '--', this.root], { timeoutMs: 120_000 });
    await mkdir(this.root, { recursive: true, mode: 0o700 });
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
    this.count();
    this.bytes += entry.size;
    this.files++;
    this.writeFile(rel, entry);
  }

  /** Creates one directory level, refusing to go through anything but a directory we made. */
  private makeDir(rel: string, entryPath: string): void {
    const kind = this.made.get(rel);
    if (kind === 'dir') return;
    if (kind === 'file') throw refuse(entryPath, `goes through '${show(rel)}', which is a file`);
    this.count();
    mkdirSync(join(this.root, rel), { mode: 0o700 });
    this.made.set(rel, 'dir');
    this.dirModes.set(rel, 0o755);
  }

  private writeFile(rel: string, entry: ReadEntry): void {
    this.made.set(rel, 'file');
    if (entry.size === 0) {
      // Empty files are made once the whole archive passed: a bomb of many of them is
      // refused at the cap without a single file created.
      this.emptyFiles.push([rel, fileMode(entry.mode)]);
      entry.resume();
      return;
    }
    const fd = createFile(join(this.root, rel), fileMode(entry.mode));
    const out = createWriteStream('', { fd });
    this.writes.add(out);
    entry.pipe(out);
    const done = finished(out).finally(() => this.writes.delete(out));
    this.pending.push(done);
    done.catch((err: unknown) => this.fail(err));
  }

  /**
   * Counts one file or directory about to be made. Directories a path only implies count
   * too: each costs a mkdir, and a few long paths can imply thousands of them. A header
   * that makes nothing (a directory again) costs only its bytes, which the tar allowance bounds.
   */
  private count(): void {
    if (++this.entries > this.maxEntries) {
      throw new UserError(
        'payload_too_large',
        `archive has more than ${this.maxEntries} entries (files and directories, also those its paths imply); leave build outputs and dependencies out with .petriignore`,
      );
    }
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

/** Creates a file the upload names; O_EXCL and O_NOFOLLOW: never reuse or follow whatever might sit there. */
function createFile(path: string, mode: number): number {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  const fd = openSync(path, flags, 0o600);
  try {
    fchmodSync(fd, mode);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

function isZeros(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, at + ZEROS.length);
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}
const ZEROS = Buffer.alloc(64 * 1024);

function dataAfterEnd(): UserError {
  return new UserError(
    'invalid_archive',
    `upload has data after the end of the tar archive (more than ${MAX_END_PADDING} bytes of zero padding, or non-zero bytes); send the archive alone, as tar and petri deploy write it`,
  );
}

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
