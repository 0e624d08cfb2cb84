// Per-app log lines on disk: one JSON line per log line in DIR/<app>.log, plus one rotated
// generation in <app>.log.1, so an app's logs never take much more than twice the cap.
// All sources of an app (build, web.1, release...) share one file in arrival order, which is
// the order `petri logs` shows them in.

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../lib/errors.js';

export interface LogLine {
  time: string;
  source: string;
  text: string;
}

export interface LogStoreOptions {
  dir: string;
  maxBytesPerApp?: number;
}

export interface ReadOptions {
  /** How many of the newest matching lines to return (default 100). */
  lines?: number;
  sources?: string[];
  since?: Date;
}

export const DEFAULT_MAX_BYTES_PER_APP = 5 * 1024 * 1024;
const DEFAULT_READ_LINES = 100;
// A process that never writes a newline must not grow our memory, or one stored line, without bound.
export const MAX_LINE_CHARS = 16 * 1024;
// Followers poll so they also see lines written by another LogStore (or process) over the same dir;
// in-process appends additionally wake them at once.
const FOLLOW_POLL_MS = 200;

const APP_NAME = /^[a-z][a-z0-9-]{1,29}$/;
// A process type, optionally with its instance number: build, release, petri, web.1, worker_2.13.
const SOURCE_NAME = /^[a-z][a-z0-9_-]{0,29}(\.[0-9]{1,5})?$/;

// CSI (colours, cursor moves), OSC (titles, hyperlinks) and the two-byte escapes.
const ANSI = /\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;
// C0 except tab, DEL and C1: they could drive the terminal of whoever reads the logs.
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;

// Names become file names, so they are checked here too even if the API already did.
export function assertAppName(app: string): void {
  if (!APP_NAME.test(app)) {
    throw new UserError('bad_request', `app name must match ${APP_NAME.source}, got '${app}'`);
  }
}

export function assertSourceName(source: string): void {
  if (!SOURCE_NAME.test(source)) {
    throw new UserError(
      'bad_request',
      `log source must be a process type with an optional instance number (like web.1), got '${source}'`,
    );
  }
}

// One emitter for the whole process, keyed by log file, so any LogStore's append wakes every follower.
const appended = new EventEmitter();
appended.setMaxListeners(0);
// Likewise for remove(): the app is gone, and its followers stop (a new app of the same name
// is another app, whose lines are not theirs).
const removed = new EventEmitter();
removed.setMaxListeners(0);

/** Why a follow stopped: its signal aborted, or the app's logs were removed (the app was
 * destroyed). */
export type FollowEnd = 'aborted' | 'removed';

interface Partial {
  text: string;
  time: Date;
}

export class LogStore {
  readonly dir: string;
  /** For drivers that pass output on (runtime's OutputSink, which this class is). */
  readonly maxLineChars = MAX_LINE_CHARS;
  private readonly maxBytes: number;
  // Text after the last newline, per app and source, waiting for the rest of its line.
  private readonly partials = new Map<string, Partial>();
  // Files whose last byte we have checked is a newline (see ensureNewlineEnd).
  private readonly checkedEnds = new Set<string>();

  constructor({ dir, maxBytesPerApp = DEFAULT_MAX_BYTES_PER_APP }: LogStoreOptions) {
    if (!(maxBytesPerApp > 0)) throw new Error(`maxBytesPerApp must be positive, got ${maxBytesPerApp}`);
    this.dir = path.resolve(dir);
    this.maxBytes = maxBytesPerApp;
    // Root's alone: apps print secrets to their logs (see lib/data-dir-modes).
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(this.dir, 0o700);
  }

  assertNames(app: string, source: string): void {
    assertAppName(app);
    assertSourceName(source);
  }

  append(app: string, source: string, text: string, time: Date = new Date()): void {
    assertAppName(app);
    assertSourceName(source);
    const key = partialKey(app, source);
    const pending = this.partials.get(key);
    const parts = ((pending?.text ?? '') + text).split('\n');
    const rest = parts.pop() ?? '';
    // A line is stamped with the time its first bytes arrived: closest to when it happened.
    const lines: LogLine[] = [];
    parts.forEach((raw, i) => {
      lines.push(...toLines(raw, source, i === 0 && pending ? pending.time : time));
    });
    const restTime = parts.length === 0 && pending ? pending.time : time;
    if (rest.length >= MAX_LINE_CHARS) {
      lines.push(...toLines(rest, source, restTime));
      this.partials.delete(key);
    } else if (rest.length > 0) {
      this.partials.set(key, { text: rest, time: restTime });
    } else {
      this.partials.delete(key);
    }
    this.write(app, lines);
  }

  /** Stores the buffered partial line of (app, source), if any, as a line of its own. */
  flush(app: string, source: string): void {
    assertAppName(app);
    assertSourceName(source);
    const key = partialKey(app, source);
    const pending = this.partials.get(key);
    if (!pending) return;
    this.partials.delete(key);
    this.write(app, toLines(pending.text, source, pending.time));
  }

  read(app: string, { lines = DEFAULT_READ_LINES, sources, since }: ReadOptions = {}): LogLine[] {
    assertAppName(app);
    if (!Number.isInteger(lines) || lines < 0) {
      throw new UserError('bad_request', `lines must be a whole number of 0 or more, got ${lines}`);
    }
    if (lines === 0) return [];
    // toISOString has a fixed shape, so ISO strings compare in time order.
    const sinceIso = since?.toISOString();
    const keep = (l: LogLine) =>
      (sources === undefined || sources.includes(l.source)) && (sinceIso === undefined || l.time >= sinceIso);
    const file = this.fileOf(app);
    const current = parseLogFile(file).filter(keep);
    // The rotated generation is only read when the current one does not have enough lines.
    if (current.length >= lines) return current.slice(-lines);
    const older = parseLogFile(rotatedOf(file)).filter(keep);
    return older.concat(current).slice(-lines);
  }

  /**
   * Delivers every line appended to the app's logs after this call until `signal` aborts or
   * the logs are removed (remove(), or the file replaced by one that is not a rotation: the
   * app was destroyed, and a file of that name now is another app's). Resolves with why it
   * stopped; rejects if reading the file or `onLine` fails.
   */
  follow(app: string, onLine: (line: LogLine) => void, signal: AbortSignal): Promise<FollowEnd> {
    assertAppName(app);
    const file = this.fileOf(app);
    const rotated = rotatedOf(file);
    return new Promise((resolve, reject) => {
      if (signal.aborted) return resolve('aborted');
      const start = statFile(file);
      let id = start?.id;
      let offset = start?.size ?? 0;
      let scheduled = false;

      const poll = () => {
        scheduled = false;
        try {
          const now = statFile(file);
          if (now?.id !== id) {
            // Rotated: finish the generation we were reading, now <app>.log.1. Gone, or another
            // file in its place that is not a rotation of ours: the app's logs were removed
            // (written by another process; in this one remove() stops us at once), and what
            // is there now is no longer the app we follow. (Two rotations between polls look
            // the same; at 200 ms and a cap of megabytes that needs a flood no reader could
            // follow anyway, and the client may follow again.)
            const old = statFile(rotated);
            if (id !== undefined) {
              if (old?.id !== id) {
                stop();
                resolve('removed');
                return;
              }
              deliverLines(rotated, offset, old.size, onLine);
            }
            id = now?.id;
            offset = 0;
          }
          if (now) {
            if (now.size < offset) offset = 0;
            offset = deliverLines(file, offset, now.size, onLine);
          }
        } catch (err) {
          stop();
          reject(err);
        }
      };
      // Deferred rather than run inside append(), so an onLine that appends cannot re-enter poll.
      const wake = () => {
        if (scheduled) return;
        scheduled = true;
        setImmediate(() => {
          if (!signal.aborted) poll();
        });
      };
      const timer = setInterval(poll, FOLLOW_POLL_MS);
      const stop = () => {
        clearInterval(timer);
        appended.off(file, wake);
        removed.off(file, onRemoved);
        signal.removeEventListener('abort', onAbort);
      };
      const onAbort = () => {
        stop();
        resolve('aborted');
      };
      const onRemoved = () => {
        stop();
        resolve('removed');
      };
      appended.on(file, wake);
      removed.on(file, onRemoved);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  remove(app: string): void {
    assertAppName(app);
    const file = this.fileOf(app);
    fs.rmSync(file, { force: true });
    fs.rmSync(rotatedOf(file), { force: true });
    this.checkedEnds.delete(file);
    for (const key of this.partials.keys()) {
      if (key.startsWith(`${app}\0`)) this.partials.delete(key);
    }
    removed.emit(file);
  }

  private fileOf(app: string): string {
    return path.join(this.dir, `${app}.log`);
  }

  private write(app: string, lines: LogLine[]): void {
    if (lines.length === 0) return;
    const file = this.fileOf(app);
    const data = lines.map((l) => JSON.stringify({ t: l.time, s: l.source, m: l.text }) + '\n').join('');
    const size = statFile(file)?.size ?? 0;
    // Rotating before the write keeps each generation under the cap (unless one batch alone is bigger).
    if (size > 0 && size + Buffer.byteLength(data) > this.maxBytes) {
      fs.renameSync(file, rotatedOf(file));
      this.checkedEnds.add(file);
    } else if (size > 0) {
      this.ensureNewlineEnd(file);
    }
    // Synchronous appends: a read() right after sees the line, and a crash loses at most a torn last line.
    fs.appendFileSync(file, data, { mode: 0o600 });
    this.checkedEnds.add(file);
    appended.emit(file);
  }

  // A crash mid-append can leave a torn last line; without a newline after it, our first line
  // would be glued to it and lost with it when read skips the unparsable line.
  private ensureNewlineEnd(file: string): void {
    if (this.checkedEnds.has(file)) return;
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const last = Buffer.alloc(1);
      if (size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a) {
        fs.appendFileSync(file, '\n');
      }
    } finally {
      fs.closeSync(fd);
    }
    this.checkedEnds.add(file);
  }
}

function partialKey(app: string, source: string): string {
  return `${app}\0${source}`;
}

function rotatedOf(file: string): string {
  return `${file}.1`;
}

// One raw line (without its newline) into stored lines: clean it, and cut one that is too long.
function toLines(raw: string, source: string, time: Date): LogLine[] {
  const text = sanitise(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  // A line made only of escape codes (a cursor move, a screen clear) says nothing once cleaned.
  if (text === '' && raw.replace(/\r$/, '') !== '') return [];
  const iso = time.toISOString();
  const out: LogLine[] = [];
  for (let i = 0; i === 0 || i < text.length; i += MAX_LINE_CHARS) {
    out.push({ time: iso, source, text: text.slice(i, i + MAX_LINE_CHARS) });
  }
  return out;
}

export function sanitise(text: string): string {
  return text.replace(ANSI, '').replace(CONTROL, '');
}

/** A file's size, and what tells it from another file at that path: its inode, and its
 * birth time where the file system keeps one (an inode is reused at once, often for the
 * next file made, as a destroyed app's log file is followed by a new app's). */
function statFile(file: string): { id: string; size: number } | undefined {
  try {
    const st = fs.statSync(file);
    return { id: `${st.ino}:${st.birthtimeMs}`, size: st.size };
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function parseLogFile(file: string): LogLine[] {
  let content: string;
  try {
    content = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (isNotFound(err)) return [];
    throw err;
  }
  return parseLines(content);
}

function parseLines(content: string): LogLine[] {
  const out: LogLine[] = [];
  for (const row of content.split('\n')) {
    const line = parseLine(row);
    if (line) out.push(line);
  }
  return out;
}

// Unparsable rows are skipped on purpose: the only way to get one is a torn write from a crash.
function parseLine(row: string): LogLine | undefined {
  if (row === '') return undefined;
  try {
    const v = JSON.parse(row) as { t?: unknown; s?: unknown; m?: unknown };
    if (typeof v.t === 'string' && typeof v.s === 'string' && typeof v.m === 'string') {
      return { time: v.t, source: v.s, text: v.m };
    }
  } catch {
    // torn row, see above
  }
  return undefined;
}

// Hands over the complete lines in [from, to) of file and returns the offset after the last one;
// a trailing partial line (another process mid-write) is left for the next poll.
function deliverLines(file: string, from: number, to: number, onLine: (line: LogLine) => void): number {
  if (to <= from) return from;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    if (isNotFound(err)) return from;
    throw err;
  }
  let buf: Buffer;
  try {
    buf = Buffer.alloc(to - from);
    buf = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, from));
  } finally {
    fs.closeSync(fd);
  }
  const end = buf.lastIndexOf(0x0a) + 1;
  for (const line of parseLines(buf.subarray(0, end).toString('utf8'))) onLine(line);
  return from + end;
}
