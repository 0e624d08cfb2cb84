// The output of one deploy (build, release phase, start), kept beside it as JSON lines so
// `petri deploy` can stream it live and read it again after a restart of the control plane.
// Capped like app logs (issue 11: `yes` in a build wrote 216 MiB in 10 s and one line of
// 95 MiB sat in memory): MAX_DEPLOY_LOG_BYTES per deploy, then one "output truncated" line,
// and no line longer than MAX_LINE_CHARS; read back in bounded windows.
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { MAX_LINE_CHARS } from './log-store.js';

export interface DeployLogLine {
  time: string;
  source: string;
  text: string;
}

const MiB = 1024 * 1024;
/** A deploy's log on disk: far more than any real build prints, what an app's log keeps. */
export const MAX_DEPLOY_LOG_BYTES = 5 * MiB;
/** Past the cap, Petri's own lines (the build's steps, how it ended, the release) still go
 * in, up to this much more, so the log still ends by saying what happened. */
const RESERVE_BYTES = 64 * 1024;
/** What readDeployLog parses at once: a follower reads a big log in several polls. */
const READ_WINDOW_BYTES = MiB;

export const TRUNCATED_TEXT = `-----> output truncated: this deploy's log reached ${MAX_DEPLOY_LOG_BYTES / MiB} MiB; what the build printed after that is not kept`;
const CUT_NOTE = ` [line cut at ${MAX_LINE_CHARS} characters]`;

/** The unfinished last line of one source, and whether the rest of an overlong one is dropped. */
interface Partial {
  text: string;
  dropping: boolean;
}

export class DeployLog {
  private readonly partial = new Map<string, Partial>();
  /** Bytes in the file, this process's and a previous one's (a log reopened after close). */
  private bytes: number;
  private truncated: boolean;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.bytes = sizeOf(file);
    this.truncated = this.bytes >= MAX_DEPLOY_LOG_BYTES;
  }

  /** Appends output; a line is written once its newline arrives (or on flush). Returns the
   * text kept, for whoever passes the output on (the app's log): all of it below the cap,
   * only Petri's own lines and the one truncation line past it. */
  write(source: string, text: string): string {
    if (this.truncated) {
      // Past the cap the flood is dropped at once, without splitting it into lines.
      if (!isPetriLine(source, text) || this.bytes >= MAX_DEPLOY_LOG_BYTES + RESERVE_BYTES) return '';
      this.partial.delete(source);
      this.writeLines(
        source,
        text.split('\n').filter((t) => t !== ''),
      );
      return text;
    }
    const state = this.partial.get(source) ?? { text: '', dropping: false };
    const complete: string[] = [];
    // What is passed on: the text without what an overlong line dropped.
    let kept = '';
    const pieces = text.split('\n');
    const last = pieces.length - 1;
    pieces.forEach((piece, i) => {
      const ended = i < last;
      if (!state.dropping) {
        // Bounded: the unfinished line never grows past MAX_LINE_CHARS.
        const taken = piece.slice(0, MAX_LINE_CHARS + 1 - state.text.length);
        state.text += taken;
        kept += taken;
        if (state.text.length > MAX_LINE_CHARS) {
          complete.push(state.text.slice(0, MAX_LINE_CHARS) + CUT_NOTE);
          state.text = '';
          state.dropping = true;
        } else if (ended) {
          complete.push(state.text);
          state.text = '';
        }
      }
      if (ended) {
        state.dropping = false;
        kept += '\n';
      }
    });
    this.partial.set(source, state);
    const written = this.writeLines(source, complete);
    return written === complete.length ? kept : `${TRUNCATED_TEXT}\n`;
  }

  /** Writes every unfinished line. */
  flush(): DeployLogLine[] {
    const lines: DeployLogLine[] = [];
    for (const [source, rest] of this.partial) {
      if (rest.text && !this.truncated) {
        const time = new Date().toISOString();
        if (this.writeLines(source, [rest.text]) === 1) lines.push({ time, source, text: rest.text });
      }
    }
    this.partial.clear();
    return lines;
  }

  /** Writes as many of the lines as the cap allows (then the truncation line); how many. */
  private writeLines(source: string, texts: string[]): number {
    if (texts.length === 0) return 0;
    const time = new Date().toISOString();
    const limit = this.truncated ? MAX_DEPLOY_LOG_BYTES + RESERVE_BYTES : MAX_DEPLOY_LOG_BYTES;
    let data = '';
    let size = 0;
    let count = 0;
    for (const text of texts) {
      const line = `${JSON.stringify({ time, source, text: text.replace(/\r$/, '') })}\n`;
      const bytes = Buffer.byteLength(line);
      if (this.bytes + size + bytes > limit) break;
      data += line;
      size += bytes;
      count += 1;
    }
    if (count < texts.length && !this.truncated) {
      this.truncated = true;
      data += `${JSON.stringify({ time, source: 'petri', text: TRUNCATED_TEXT })}\n`;
      size = Buffer.byteLength(data);
    }
    // Root's alone, like the app logs: a build may print a secret. Synchronous, so a reader
    // sees every line once the deploy says it ended; at most a few MiB per deploy.
    if (size > 0) appendFileSync(this.file, data, { mode: 0o600 });
    this.bytes += size;
    return count;
  }
}

/** Petri's own lines about the deploy (the builder's steps and verdict, the release). */
function isPetriLine(source: string, text: string): boolean {
  return source === 'petri' || text.startsWith('----->');
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** Reads the complete lines written since byte `offset`, at most a window of them; returns
 * them, the new offset, and `more` when the window was full (read again at once). */
export function readDeployLog(
  file: string,
  offset: number,
): { lines: DeployLogLine[]; offset: number; more: boolean } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return { lines: [], offset, more: false };
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return { lines: [], offset, more: false };
    const buf = Buffer.alloc(Math.min(size - offset, READ_WINDOW_BYTES));
    const read = readSync(fd, buf, 0, buf.length, offset);
    const more = offset + read < size;
    const end = buf.subarray(0, read).lastIndexOf(0x0a) + 1;
    // A window with no newline in it holds part of a line longer than any written now (a log
    // from before the cap): it is skipped, so a reader never holds more than a window.
    if (end === 0) return { lines: [], offset: more ? offset + read : offset, more };
    const lines: DeployLogLine[] = [];
    for (const text of buf.toString('utf8', 0, end).split('\n')) {
      if (text === '') continue;
      try {
        lines.push(JSON.parse(text) as DeployLogLine);
      } catch {
        // The tail of a skipped line, or a line torn by a crash: not a line to show.
      }
    }
    return { lines, offset: offset + end, more };
  } finally {
    closeSync(fd);
  }
}

/** The open deploy logs of this process, by deploy; lines for a deploy from anywhere. */
export class DeployLogs {
  private readonly open = new Map<string, DeployLog>();
  constructor(private readonly fileOf: (appId: number, deployId: string) => string) {}

  /** Appends output to the deploy's log; returns the text kept (see DeployLog.write). */
  append(appId: number, deployId: string, source: string, text: string): string {
    return this.logOf(appId, deployId).write(source, text);
  }

  /** Writes any partial line and forgets the deploy (it is finished). */
  close(deployId: string): void {
    this.open.get(deployId)?.flush();
    this.open.delete(deployId);
  }

  private logOf(appId: number, deployId: string): DeployLog {
    let log = this.open.get(deployId);
    if (!log) {
      log = new DeployLog(this.fileOf(appId, deployId));
      this.open.set(deployId, log);
    }
    return log;
  }
}
