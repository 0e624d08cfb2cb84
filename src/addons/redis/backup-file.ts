// The file a Redis add-on's backup is: `redis-cli --pipe` input, a header ECHO naming the
// source's key prefix, then `RESTORE <key> <ttl> <payload> REPLACE` per key, each an array of
// bulk strings (RESP). Written and read back here, checked so that a file from elsewhere cannot
// make the admin connection run anything but RESTOREs under the prefix.
import { createReadStream } from 'node:fs';
import { isResourceName } from '../names.js';

/** The first command of a backup: `ECHO "<HEADER><source prefix>"`. ECHO is harmless when
 * `redis-cli --pipe` replays the file, and it tells restore which prefix to rewrite. */
const HEADER = 'petri-backup redis v1 prefix=';

/** The header command of a backup of the keys under `prefix`. */
export function backupHeader(prefix: string): Buffer {
  return encodeCommand(['ECHO', HEADER + prefix]);
}

/** One array of bulk strings, the form of every request in the Redis protocol (RESP). */
export function encodeCommand(args: (string | Buffer)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = typeof arg === 'string' ? Buffer.from(arg) : arg;
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

export interface BackupEntry {
  /** The key without the source add-on's prefix. */
  suffix: Buffer;
  ttl: string;
  payload: Buffer;
}

/** The entries of a backup file, checked: only the header and RESTOREs of keys under the
 * header's prefix, so a file from elsewhere cannot make the admin connection run anything else. */
export async function* readBackup(file: string): AsyncGenerator<BackupEntry> {
  let source: Buffer | undefined;
  for await (const args of readCommands(file)) {
    if (source === undefined) {
      source = parseHeader(args, file);
      continue;
    }
    yield parseRestore(args, source, file);
  }
  if (source === undefined) throw notABackup(file, 'it is empty');
}

/** Reads the whole backup, throwing at the first thing that is not ours; returns its key count. */
export async function checkBackup(file: string): Promise<number> {
  let keys = 0;
  for await (const _entry of readBackup(file)) keys++;
  return keys;
}

function parseHeader(args: Buffer[], file: string): Buffer {
  const [command, text] = args;
  const header = args.length === 2 && command?.toString() === 'ECHO' ? text?.toString() : undefined;
  const prefix = header?.startsWith(HEADER) ? header.slice(HEADER.length) : undefined;
  if (prefix === undefined || !isResourceName(prefix.slice(0, -1)) || !prefix.endsWith(':')) {
    throw notABackup(file, 'it does not start with the petri-backup header');
  }
  return Buffer.from(prefix);
}

function parseRestore(args: Buffer[], source: Buffer, file: string): BackupEntry {
  const [command, key, ttlArg, payload, replace] = args;
  const ttl = ttlArg?.toString() ?? '';
  if (
    args.length !== 5 ||
    command?.toString() !== 'RESTORE' ||
    replace?.toString() !== 'REPLACE' ||
    key === undefined ||
    payload === undefined ||
    !/^\d{1,15}$/.test(ttl)
  ) {
    throw notABackup(file, 'it holds a command other than RESTORE <key> <ttl> <payload> REPLACE');
  }
  if (key.length < source.length || !key.subarray(0, source.length).equals(source)) {
    throw notABackup(file, `it holds a key outside its prefix ${source.toString()}`);
  }
  return { suffix: key.subarray(source.length), ttl, payload };
}

function notABackup(file: string, why: string): Error {
  return new Error(`${file} is not a Petri redis backup (${why}); restore only files written by backup`);
}

async function* readCommands(file: string): AsyncGenerator<Buffer[]> {
  const parser = new RespParser();
  for await (const chunk of createReadStream(file)) {
    parser.push(chunk as Buffer);
    for (;;) {
      let args: Buffer[] | undefined;
      try {
        args = parser.next();
      } catch (err) {
        throw notABackup(file, err instanceof Error ? err.message : String(err));
      }
      if (args === undefined) break;
      yield args;
    }
  }
  if (!parser.empty()) throw notABackup(file, 'it ends in the middle of a command');
}

/** Incremental reader of arrays of bulk strings. While a large bulk string is incomplete it
 * only collects chunks, so a big value costs one concatenation, not one per chunk. */
class RespParser {
  private buf = Buffer.alloc(0);
  private pos = 0;
  private chunks: Buffer[] = [];
  /** Unread bytes, in buf and chunks together. */
  private unread = 0;
  /** Unread bytes the next command needs at least. */
  private need = 1;

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.unread += chunk.length;
  }

  empty(): boolean {
    return this.unread === 0;
  }

  next(): Buffer[] | undefined {
    if (this.unread < this.need) return undefined;
    if (this.chunks.length > 0) {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.chunks]);
      this.pos = 0;
      this.chunks = [];
    }
    const start = this.pos;
    const args = this.command();
    if (args === undefined) {
      this.need = Math.max(this.need, this.buf.length - start + 1);
      this.pos = start;
      return undefined;
    }
    this.unread -= this.pos - start;
    this.need = 1;
    return args;
  }

  /** Parses one command at pos, or returns undefined (setting need) when it is incomplete. */
  private command(): Buffer[] | undefined {
    const start = this.pos;
    const count = this.header('*', 16);
    if (count === undefined) return undefined;
    const args: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const length = this.header('$', 512 * 1024 * 1024);
      if (length === undefined) return undefined;
      const end = this.pos + length;
      if (end + 2 > this.buf.length) {
        this.need = end + 2 - start;
        return undefined;
      }
      if (this.buf[end] !== 0x0d || this.buf[end + 1] !== 0x0a) throw new Error('bulk string without CRLF');
      args.push(this.buf.subarray(this.pos, end));
      this.pos = end + 2;
    }
    return args;
  }

  /** Reads `<type><n>\r\n` with 0 <= n <= max. */
  private header(type: string, max: number): number | undefined {
    const eol = this.buf.indexOf('\r\n', this.pos);
    if (eol === -1) {
      if (this.buf.length - this.pos > 16) throw new Error('malformed RESP header');
      return undefined;
    }
    const line = this.buf.toString('latin1', this.pos, eol);
    const n = Number(line.slice(1));
    if (line[0] !== type || !/^\d+$/.test(line.slice(1)) || n > max) {
      throw new Error(`unexpected RESP header '${line.slice(0, 16)}'`);
    }
    this.pos = eol + 2;
    return n;
  }
}
