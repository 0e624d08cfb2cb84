// Moves what app instances write to their raw output files (the local driver's way of
// capturing output) into the driver's OutputSink (the LogStore). Instances outlive the
// control plane, so progress is kept on disk beside each file (<file>.offset): a restarted
// tailer resumes where the last one stopped, without losing or repeating lines. Each file is
// watched (inotify): a write brings a read at once, and the timer is only a safety net that a
// file without a watch (not there yet, or the watch failed) keeps short.

import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import type { OutputSink } from '../driver.js';

export interface OutputTailerOptions {
  pollMs?: number;
  /** A fully consumed raw file bigger than this is truncated to 0, so it cannot fill the disk. */
  truncateAboveBytes?: number;
  /** A partial last line left unchanged this long is stored as it is (a prompt, a progress bar). */
  staleLineMs?: number;
  /** Called when a background poll fails (default: print to stderr); flushNow and unwatch throw instead. */
  onError?: (err: unknown, file: string) => void;
}

interface Watch {
  file: string;
  app: string;
  source: string;
  /** Bytes of the raw file already in the LogStore. */
  offset: number;
  /** Inode of the file the offset belongs to; a different one means the file was replaced. */
  ino: string | undefined;
  /** Size at which a partial last line was first seen, and when, to detect it going stale. */
  partialAt: { size: number; since: number } | undefined;
  /** Tells of writes to the file; undefined until it exists, or after the watch failed. */
  watcher: fs.FSWatcher | undefined;
}

// Reads are bounded so a huge backlog does not take one big buffer.
const READ_CHUNK_BYTES = 1024 * 1024;
/** Polls that find nothing new come less often, up to this far apart (a quiet host's
 * sleeping and idle apps cost almost nothing); a poll that finds lines brings back pollMs. */
const MAX_IDLE_POLL_MS = 1600;
/** The same, while every file has a watch that tells of its writes: a safety net only. */
const MAX_WATCHED_POLL_MS = 30_000;

export class OutputTailer {
  private readonly watches = new Map<string, Watch>();
  private readonly pollMs: number;
  private readonly truncateAbove: number;
  private readonly staleLineMs: number;
  private readonly onError: (err: unknown, file: string) => void;
  private timer: NodeJS.Timeout | undefined;
  private delayMs = 0;

  constructor(
    private readonly store: OutputSink,
    { pollMs = 200, truncateAboveBytes = 1024 * 1024, staleLineMs = 2000, onError }: OutputTailerOptions = {},
  ) {
    this.pollMs = pollMs;
    this.truncateAbove = truncateAboveBytes;
    this.staleLineMs = staleLineMs;
    this.onError =
      onError ??
      ((err, file) => {
        process.stderr.write(`petri logs: cannot tail ${file}: ${errorMessage(err)}\n`);
      });
  }

  /** Starts copying new lines of `file` into the logs of `app` under `source`; the file may not exist yet. */
  watch(file: string, app: string, source: string): void {
    this.store.assertNames(app, source);
    const key = path.resolve(file);
    const existing = this.watches.get(key);
    if (existing) {
      if (existing.app === app && existing.source === source) return;
      throw new Error(`${key} is already tailed into ${existing.app}/${existing.source}`);
    }
    const saved = readOffset(key);
    this.watches.set(key, {
      file: key,
      app,
      source,
      offset: saved?.offset ?? 0,
      ino: saved?.ino,
      partialAt: undefined,
      watcher: undefined,
    });
    // A new file is read soon, whatever the pace of the others.
    this.delayMs = this.pollMs;
    this.stopTimer();
    this.schedule();
  }

  /** Stops tailing `file` after storing what is left in it, a partial last line included. */
  unwatch(file: string): void {
    const key = path.resolve(file);
    const w = this.watches.get(key);
    if (!w) return;
    try {
      this.drain(w, true);
      this.store.flush(w.app, w.source);
    } finally {
      this.unwatchFile(w);
      this.watches.delete(key);
      if (this.watches.size === 0) this.stopTimer();
    }
  }

  /** Stores every complete line pending in the watched files, now. */
  flushNow(): void {
    for (const w of this.watches.values()) this.drain(w, false);
  }

  /** Stops polling. Unread bytes stay in the raw files, and the next tailer resumes from the offsets. */
  close(): void {
    this.stopTimer();
    for (const w of this.watches.values()) this.unwatchFile(w);
    this.watches.clear();
  }

  /** A read soon (pollMs, which gathers a burst of writes into one read), unless one is due
   * sooner already. */
  private soon(): void {
    if (this.timer && this.delayMs <= this.pollMs) return;
    this.delayMs = this.pollMs;
    this.stopTimer();
    this.schedule();
  }

  /** Watches the file for writes once it exists; false while it has no watch. */
  private watchFile(w: Watch): boolean {
    if (w.watcher) return true;
    try {
      const watcher = fs.watch(w.file, { persistent: false }, (event) => {
        // Renamed or removed: this watch follows the old file; the next poll watches the new.
        if (event === 'rename') this.unwatchFile(w);
        this.soon();
      });
      watcher.on('error', () => this.unwatchFile(w));
      w.watcher = watcher;
      return true;
    } catch {
      return false; // not there yet (ENOENT), or out of inotify watches: polled instead
    }
  }

  private unwatchFile(w: Watch): void {
    w.watcher?.close();
    w.watcher = undefined;
  }

  private stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      const moved = this.poll();
      if (this.watches.size === 0) {
        this.timer = undefined;
        return;
      }
      const watched = [...this.watches.values()].every((w) => this.watchFile(w));
      const most = Math.max(watched ? MAX_WATCHED_POLL_MS : MAX_IDLE_POLL_MS, this.pollMs);
      this.delayMs = moved ? this.pollMs : Math.min(this.delayMs * 2, most);
      this.schedule();
    }, this.delayMs);
    // The tailer alone must not keep a process (or a test run) alive.
    this.timer.unref();
  }

  /** One look at every file; true when any of them had something new (or a partial line). */
  private poll(): boolean {
    let moved = false;
    for (const w of this.watches.values()) {
      const before = w.offset;
      try {
        this.drain(w, false);
      } catch (err) {
        this.onError(err, w.file);
      }
      if (w.offset !== before || w.partialAt) moved = true;
    }
    return moved;
  }

  // Synchronous on purpose: a drain is never interleaved with another on the same file, so the
  // offset in memory, on disk and the lines in the store always move together.
  private drain(w: Watch, force: boolean): void {
    let fd: number;
    try {
      fd = fs.openSync(w.file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // the instance has not written yet
      throw err;
    }
    try {
      const st = fs.fstatSync(fd, { bigint: true });
      const ino = String(st.ino);
      // Replaced by another file, or truncated by someone else: what is there now is all new.
      const size = Number(st.size);
      const replaced = w.ino !== undefined && w.ino !== ino;
      w.ino = ino;
      if (replaced || size < w.offset) this.moveOffset(w, 0);
      while (w.offset < size) {
        const want = Math.min(size - w.offset, READ_CHUNK_BYTES);
        const buf = Buffer.allocUnsafe(want);
        const got = fs.readSync(fd, buf, 0, want, w.offset);
        if (got === 0) break;
        const consume = this.consumable(w, buf.subarray(0, got), w.offset + got === size, force);
        if (consume === 0) break;
        // Whole lines only (unless forced), so the store buffers nothing of ours and a restart
        // between here and the offset write can at worst repeat these lines, never lose them.
        this.store.append(w.app, w.source, buf.subarray(0, consume).toString('utf8'), new Date());
        if (buf[consume - 1] !== 0x0a) this.store.flush(w.app, w.source);
        this.moveOffset(w, w.offset + consume);
      }
      if (w.offset === size && size > this.truncateAbove) this.truncate(w, size);
    } finally {
      fs.closeSync(fd);
    }
  }

  // How many bytes of buf to store: up to the last newline, or all of it when the partial rest
  // must go now (unwatch, a line too long to keep waiting for, or one that stopped growing).
  private consumable(w: Watch, buf: Buffer, atEnd: boolean, force: boolean): number {
    const complete = buf.lastIndexOf(0x0a) + 1;
    if (complete === buf.length) {
      w.partialAt = undefined;
      return complete;
    }
    const restBytes = buf.length - complete;
    if (force || restBytes >= this.store.maxLineChars) return buf.length;
    if (complete > 0) return complete;
    if (!atEnd) return 0;
    const size = w.offset + buf.length;
    const now = Date.now();
    if (w.partialAt?.size !== size) {
      w.partialAt = { size, since: now };
      return 0;
    }
    return now - w.partialAt.since >= this.staleLineMs ? buf.length : 0;
  }

  // Raw files would otherwise grow for the life of the instance. There is no "truncate if the size
  // is still N" on Linux: a write landing between the fstat below and ftruncate is lost. The window
  // is a few microseconds once per megabyte of output, and only affects apps writing at that very
  // moment; punching a hole (fallocate) would avoid it but is not reachable from Node.
  private truncate(w: Watch, size: number): void {
    const fd = fs.openSync(w.file, 'r+');
    try {
      if (fs.fstatSync(fd).size !== size) return; // more output arrived: consume it first
      fs.ftruncateSync(fd, 0);
    } finally {
      fs.closeSync(fd);
    }
    // Offset written after the truncate: a crash in between leaves offset > size, read as "truncated".
    this.moveOffset(w, 0);
  }

  private moveOffset(w: Watch, offset: number): void {
    w.offset = offset;
    w.partialAt = undefined;
    writeOffset(w.file, { offset, ino: w.ino });
  }
}

interface SavedOffset {
  offset: number;
  ino: string | undefined;
}

function offsetFileOf(file: string): string {
  return `${file}.offset`;
}

function readOffset(file: string): SavedOffset | undefined {
  let text: string;
  try {
    text = fs.readFileSync(offsetFileOf(file), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const v = JSON.parse(text) as { offset?: unknown; ino?: unknown };
    if (typeof v.offset === 'number' && Number.isInteger(v.offset) && v.offset >= 0) {
      return { offset: v.offset, ino: typeof v.ino === 'string' ? v.ino : undefined };
    }
  } catch {
    // Only a power loss can leave this file unreadable (no fsync, see writeOffset): start over.
  }
  return undefined;
}

// Atomic through rename, so a reader sees the old offset or the new one. Not fsynced: it is
// written every poll, and after a power loss an older offset only repeats some lines.
function writeOffset(file: string, saved: SavedOffset): void {
  const target = offsetFileOf(file);
  const tmp = `${target}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(saved), { mode: 0o600 });
  fs.renameSync(tmp, target);
}
