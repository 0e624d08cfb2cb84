// The start of a receive-pack request, read before git sees any of it: the ref commands
// (pkt-lines up to a flush) and the pack header, whose object count is checked against
// the cap (git itself bounds only the pack's bytes, and indexing millions of tiny objects
// ties up a CPU for minutes). A refusal is answered in git's own report-status, so the
// pusher sees the reason as `remote unpack failed: ...`.
import type { Readable } from 'node:stream';
import { FLUSH, pktLine } from './pkt-line.js';

export interface PushHead {
  /** Every byte read so far: git must get them first. */
  bytes: Buffer;
  /** The refs the push updates. */
  refs: string[];
  capabilities: string[];
  /** The pack's object count; undefined when the request has no pack (deletions only). */
  objects: number | undefined;
}

/** Commands and shallow lines take a few hundred bytes a ref; this is thousands of refs. */
export const MAX_COMMAND_BYTES = 1024 * 1024;

/** Parses the head from what has arrived; undefined when more bytes are needed. */
export function parsePushHead(buf: Buffer, ended: boolean): PushHead {
  const refs: string[] = [];
  let capabilities: string[] = [];
  let at = 0;
  for (;;) {
    if (buf.length < at + 4) return incomplete(ended, 'the ref commands end early');
    const head = buf.subarray(at, at + 4).toString('latin1');
    if (!/^[0-9a-f]{4}$/.test(head)) throw new Error(`bad pkt-line length '${head}' at byte ${at}`);
    const len = Number.parseInt(head, 16);
    if (len === 0) {
      at += 4;
      break;
    }
    if (len < 4) throw new Error(`bad pkt-line length ${len} at byte ${at}`);
    if (buf.length < at + len) return incomplete(ended, 'a ref command ends early');
    const line = buf.subarray(at + 4, at + len).toString('utf8');
    const nul = line.indexOf('\0');
    if (nul >= 0)
      capabilities = line
        .slice(nul + 1)
        .trim()
        .split(' ');
    const command = (nul >= 0 ? line.slice(0, nul) : line).trim().split(' ');
    if (command.length === 3 && command[2]) refs.push(command[2]);
    at += len;
  }
  if (buf.length < at + 12) {
    if (ended && buf.length === at) return { bytes: buf, refs, capabilities, objects: undefined };
    return incomplete(ended, 'the pack header ends early');
  }
  // "PACK", version, object count: all big-endian 32-bit.
  const pack = buf.subarray(at, at + 12);
  const objects = pack.subarray(0, 4).toString('latin1') === 'PACK' ? pack.readUInt32BE(8) : undefined;
  return { bytes: buf, refs, capabilities, objects };
}

class NeedMore extends Error {}

function incomplete(ended: boolean, what: string): never {
  if (ended) throw new Error(`push request is incomplete: ${what}`);
  throw new NeedMore(what);
}

/** Reads from `body` until the head is complete; the rest stays in `body` for git. */
export async function readPushHead(body: Readable, signal: AbortSignal): Promise<PushHead> {
  let buf = Buffer.alloc(0);
  let ended = false;
  for (;;) {
    try {
      return parsePushHead(buf, ended);
    } catch (err) {
      if (!(err instanceof NeedMore)) throw err;
    }
    if (buf.length > MAX_COMMAND_BYTES) {
      throw new Error(`push request has more than ${MAX_COMMAND_BYTES} bytes of ref commands`);
    }
    const chunk = await nextChunk(body, signal);
    if (chunk === null) ended = true;
    else buf = Buffer.concat([buf, chunk]);
  }
}

function nextChunk(body: Readable, signal: AbortSignal): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    signal.throwIfAborted();
    const cleanup = () => {
      body.off('readable', tryRead);
      body.off('end', onEnd);
      body.off('error', onError);
      signal.removeEventListener('abort', onAbort);
    };
    const tryRead = () => {
      const chunk = body.read() as Buffer | null;
      if (chunk !== null) {
        cleanup();
        resolve(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const onAbort = () => {
      cleanup();
      reject(signal.reason);
    };
    body.on('readable', tryRead);
    body.once('end', onEnd);
    body.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
    if (body.readableEnded) onEnd();
    else tryRead();
  });
}

/**
 * receive-pack's answer refusing the whole push: `unpack <reason>` and every ref rejected,
 * in a side band (with the reason also as a `remote:` message) when the client asked for one.
 */
export function refusePush(head: PushHead, reason: string): Buffer {
  const report = Buffer.concat([
    pktLine(`unpack ${reason}\n`),
    ...head.refs.map((ref) => pktLine(`ng ${ref} push refused\n`)),
    FLUSH,
  ]);
  const sideband = head.capabilities.includes('side-band-64k') || head.capabilities.includes('side-band');
  if (!sideband) return report;
  const band = (n: number, data: Buffer | string) =>
    pktLine(Buffer.concat([Buffer.from([n]), Buffer.from(data)]));
  return Buffer.concat([band(2, `${reason}\n`), band(1, report), FLUSH]);
}
