// The output of one deploy (build, release phase, start), kept beside it as JSON lines so
// `petri deploy` can stream it live and read it again after a restart of the control plane.
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, readSync } from 'node:fs';
import path from 'node:path';

export interface DeployLogLine {
  time: string;
  source: string;
  text: string;
}

export class DeployLog {
  /** Unfinished last line, per source. */
  private readonly partial = new Map<string, string>();
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  /** Appends output; a line is written once its newline arrives (or on flush). */
  write(source: string, text: string): DeployLogLine[] {
    const pieces = ((this.partial.get(source) ?? '') + text).split('\n');
    this.partial.set(source, pieces.pop() ?? '');
    return this.writeLines(source, pieces);
  }

  /** Writes every unfinished line. */
  flush(): DeployLogLine[] {
    const lines = [...this.partial].flatMap(([source, rest]) =>
      rest ? this.writeLines(source, [rest]) : [],
    );
    this.partial.clear();
    return lines;
  }

  private writeLines(source: string, texts: string[]): DeployLogLine[] {
    const time = new Date().toISOString();
    const lines = texts.map((t) => ({ time, source, text: t.replace(/\r$/, '') }));
    // Root's alone, like the app logs: a build may print a secret.
    if (lines.length > 0)
      appendFileSync(this.file, lines.map((l) => `${JSON.stringify(l)}\n`).join(''), { mode: 0o600 });
    return lines;
  }
}

/** Reads the complete lines written since byte `offset`; returns them and the new offset. */
export function readDeployLog(file: string, offset: number): { lines: DeployLogLine[]; offset: number } {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return { lines: [], offset };
  }
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return { lines: [], offset };
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    const text = buf.toString('utf8');
    const end = text.lastIndexOf('\n') + 1;
    const lines = text
      .slice(0, end)
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as DeployLogLine);
    return { lines, offset: offset + Buffer.byteLength(text.slice(0, end)) };
  } finally {
    closeSync(fd);
  }
}

/** The open deploy logs of this process, by deploy; lines for a deploy from anywhere. */
export class DeployLogs {
  private readonly open = new Map<string, DeployLog>();
  constructor(private readonly fileOf: (appId: number, deployId: string) => string) {}

  append(appId: number, deployId: string, source: string, text: string): void {
    this.logOf(appId, deployId).write(source, text);
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
