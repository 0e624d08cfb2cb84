// One HTTP exchange of the client: the request (a body of bytes or a stream), the answer's
// status and headers once they arrive, and its body as a stream. Over node:http (node:https
// for an https:// URL), which Node.js has ready at start: undici's import, or the first call
// of fetch (the same code inside Node.js), cost a CLI command some 90 ms of CPU against 5.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

// Required, not imported: an ES import of node:http reads every one of its exports, and the
// WebSocket ones load Node.js's own copy of undici, which is what this module avoids.
const require = createRequire(import.meta.url);

const CONNECT_TIMEOUT_MS = 10_000;

export interface Exchange {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array | Readable;
  signal?: AbortSignal;
  /** How long to wait for the answer's headers. */
  headersTimeoutMs: number;
  /** How long the body may stay silent once it flows; 0: forever (a stream of logs). */
  bodyTimeoutMs: number;
}

export interface Answer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  /** Read it to its end (or destroy it): the connection is reused once it is done. */
  body: IncomingMessage;
}

/** Sends the request; resolves with the answer once its headers are in. Network failures
 * reject with Node.js's own errors (ECONNREFUSED and so on), a timeout with ETIMEDOUT. */
export function exchange(x: Exchange): Promise<Answer> {
  const { request } = (
    x.url.startsWith('https:') ? require('node:https') : require('node:http')
  ) as typeof import('node:http');
  return new Promise<Answer>((resolve, reject) => {
    let answer: Answer | undefined;
    const req = request(x.url, { method: x.method, headers: x.headers, signal: x.signal });
    // After the headers, a failure reaches the caller through the body stream instead.
    req.on('error', (err) => {
      if (!answer) reject(err);
    });
    req.setTimeout(x.headersTimeoutMs, () => {
      const waited = answer ? x.bodyTimeoutMs : x.headersTimeoutMs;
      const err = Object.assign(new Error(`no answer in ${Math.round(waited / 1000)} s`), {
        code: 'ETIMEDOUT',
      });
      if (answer) answer.body.destroy(err);
      else req.destroy(err);
    });
    // A host that never answers the connection would otherwise hold the command for the
    // system's TCP retries (two minutes on Linux). The code is undici's, as errors.ts words it.
    req.on('socket', (socket) => {
      if (!socket.connecting) return; // a kept-alive connection, already up
      const timer = setTimeout(() => {
        req.destroy(Object.assign(new Error('timed out connecting'), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
      }, CONNECT_TIMEOUT_MS);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    req.on('response', (res) => {
      answer = { statusCode: res.statusCode ?? 0, headers: res.headers, body: res };
      req.setTimeout(x.bodyTimeoutMs);
      resolve(answer);
    });
    if (x.body instanceof Readable) {
      x.body.on('error', (err) => req.destroy(err));
      x.body.pipe(req);
    } else {
      req.end(x.body);
    }
  });
}

/** The whole body as text (UTF-8). */
export async function readText(body: AsyncIterable<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
