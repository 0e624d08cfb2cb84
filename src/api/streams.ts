// NDJSON answers (deploy events, log lines, the git hook's progress) and the signal that
// tells a long stream its client went away.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** Fastify sends a stream as it is, with no serializer: the route's line schema (the
 * contract's Ndjson) documents it, and the caller writes lines of the contract's types. */
export function sendNdjson(reply: FastifyReply, lines: Readable): FastifyReply {
  return reply.type('application/x-ndjson').send(lines);
}

/** One JSON value and its newline. */
export function ndjsonLine<T>(value: T): string {
  return `${JSON.stringify(value)}\n`;
}

/** Aborts when the client's connection closes. */
export function closedSignal(req: FastifyRequest): AbortSignal {
  const controller = new AbortController();
  req.raw.socket.once('close', () => controller.abort());
  return controller.signal;
}
