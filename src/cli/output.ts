// Everything the CLI shows: aligned tables, key: value blocks, colour (only on a TTY and
// without NO_COLOR), JSON for scripts, and the one-line `error: ...` on stderr. Streams
// and environment come in through Io, so tests can capture exactly what a user would see.

/** The part of a writable stream the CLI needs; process.stdout and test buffers both fit. */
export interface Writer {
  write(chunk: string): unknown;
  isTTY?: boolean;
}

export interface Io {
  stdout: Writer;
  stderr: Writer;
  /** Where `petri run` reads its input (the process's stdin unless a caller gives one). */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: Record<string, string | undefined>;
  cwd: string;
}

/** A mistake in how the command was called; exits 2 where other errors exit 1. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Style = 'bold' | 'dim' | 'red' | 'green' | 'yellow' | 'blue' | 'magenta' | 'cyan';

const SGR: Record<Style, [number, number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  magenta: [35, 39],
  cyan: [36, 39],
};

/** A table cell: plain text, or text with a style applied when colour is on. */
export type Cell = string | { text: string; style?: Style };

export class Output {
  /** Colour on stdout; stderr decides for itself, it may be a TTY when stdout is a pipe. */
  readonly color: boolean;
  readonly isTTY: boolean;
  private readonly errColor: boolean;
  /** Set once stdout is gone (a closed pipe): later writes are dropped, not thrown. */
  closed = false;

  constructor(private readonly io: Io) {
    const noColor = io.env.NO_COLOR !== undefined && io.env.NO_COLOR !== '';
    this.isTTY = io.stdout.isTTY === true;
    this.color = this.isTTY && !noColor;
    this.errColor = io.stderr.isTTY === true && !noColor;
  }

  line(text = ''): void {
    if (!this.closed) this.io.stdout.write(`${text}\n`);
  }

  paint(style: Style, text: string): string {
    return this.color ? sgr(style, text) : text;
  }

  /** Pretty JSON of one value: what `--json` prints for a single object or list. */
  json(value: unknown): void {
    this.line(JSON.stringify(value, null, 2));
  }

  /** One compact JSON object per line, for streams a script reads line by line. */
  jsonLine(value: unknown): void {
    this.line(JSON.stringify(value));
  }

  /** Text without a newline: a line that progress will finish or rewrite (on a TTY only). */
  partial(text: string): void {
    if (!this.closed) this.io.stdout.write(text);
  }

  /** Columns padded to their widest cell; the last column is not padded. */
  table(headers: string[], rows: Cell[][]): void {
    for (const line of this.tableLines(headers, rows)) this.line(line);
  }

  /** The lines of table(), header first, for a caller that prints more between the rows. */
  tableLines(headers: string[], rows: Cell[][]): string[] {
    const all: Cell[][] = [headers.map((text) => ({ text, style: 'bold' as const })), ...rows];
    const widths = headers.map((_, col) => Math.max(...all.map((row) => cellText(row[col]).length)));
    return all.map((row) => {
      const cells = row.map((cell, col) => {
        const text = cellText(cell);
        const padded = col === row.length - 1 ? text : text.padEnd(widths[col] ?? 0);
        const style = typeof cell === 'string' ? undefined : cell?.style;
        // Pad before painting, so escape codes do not count toward the width.
        return style ? this.paint(style, padded) : padded;
      });
      return cells.join('  ').trimEnd();
    });
  }

  /** `key: value` lines with the values aligned; a value's later lines line up under its first. */
  keyValues(pairs: [string, string][]): void {
    if (pairs.length === 0) return;
    const width = Math.max(...pairs.map(([key]) => key.length)) + 1;
    const indent = ' '.repeat(width + 1);
    for (const [key, value] of pairs) {
      this.line(`${`${key}:`.padEnd(width)} ${value.split('\n').join(`\n${indent}`)}`);
    }
  }

  /** A line for people on stderr: progress or a warning that is not the command's result. */
  note(text: string): void {
    this.io.stderr.write(`${text}\n`);
  }

  warn(message: string): void {
    const label = this.errColor ? sgr('yellow', 'warning:') : 'warning:';
    this.io.stderr.write(`${label} ${oneLine(message)}\n`);
  }

  error(message: string): void {
    const label = this.errColor ? sgr('red', 'error:') : 'error:';
    this.io.stderr.write(`${label} ${oneLine(message)}\n`);
  }
}

function sgr(style: Style, text: string): string {
  const [on, off] = SGR[style];
  return `\u001b[${on}m${text}\u001b[${off}m`;
}

function cellText(cell: Cell | undefined): string {
  if (cell === undefined) return '';
  return typeof cell === 'string' ? cell : cell.text;
}

/** Errors are one line, so a script can read them and a terminal does not scroll. */
function oneLine(message: string): string {
  return message.trim().replace(/\s*\n\s*/g, ' ');
}

/** `-` for a missing value, so table columns never collapse. */
export function orDash(value: string | number | null | undefined): string {
  return value === null || value === undefined || value === '' ? '-' : String(value);
}

/** An ISO time to the second: enough for people, stable to read. */
export function shortTime(iso: string): string {
  return iso.replace(/\.\d+(?=Z$|[+-]\d\d:?\d\d$)/, '');
}

export function formatDuration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const seconds = Math.round(ms / 1000);
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
}
