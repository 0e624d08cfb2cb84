// Uploads and git pushes in flight: at most a few per user at once (429 beyond, so one
// member cannot occupy the control plane), each with one AbortSignal that fires when its
// client goes away, when it runs past the time cap, or when the server stops.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { UserError } from '../lib/errors.js';

export interface Upload {
  /** Aborted (its reason the error to report) when the work must stop. */
  signal: AbortSignal;
  /** Gives the slot back; safe to call more than once. */
  end(): void;
}

/** Seconds a refused client is told to wait: about what a small upload takes. */
const RETRY_AFTER_S = 10;

export class Uploads {
  private readonly perUser = new Map<number, number>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly maxPerUser: number,
    private readonly timeoutMs: number,
  ) {}

  /** Takes one of the user's slots for this request, or refuses with 429 and Retry-After. */
  begin(req: FastifyRequest, reply: FastifyReply, what: string): Upload {
    const user = req.user;
    const held = this.perUser.get(user.id) ?? 0;
    if (held >= this.maxPerUser) {
      reply.header('retry-after', String(RETRY_AFTER_S));
      throw new UserError(
        'too_many_requests',
        `${user.name} already has ${held} uploads or pushes in progress (the limit is ${this.maxPerUser}); wait for one to finish and send the ${what} again`,
      );
    }
    if (this.stopping.signal.aborted) throw this.stopping.signal.reason;
    this.perUser.set(user.id, held + 1);

    const controller = new AbortController();
    const abort = (reason: unknown) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    // The socket, not the request: a request emits 'close' once its body is read, too.
    const socket = req.raw.socket;
    const onGone = () =>
      abort(new UserError('bad_request', `the client closed the connection during the ${what}`));
    socket.once('close', onGone);
    const onStop = () => abort(this.stopping.signal.reason);
    this.stopping.signal.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(
      () =>
        abort(
          new UserError(
            'request_timeout',
            `the ${what} took longer than ${this.timeoutMs / 1000} s to send and unpack; send less (.petriignore) or over a faster link`,
          ),
        ),
      this.timeoutMs,
    );
    let ended = false;
    return {
      signal: controller.signal,
      end: () => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        socket.off('close', onGone);
        this.stopping.signal.removeEventListener('abort', onStop);
        const left = (this.perUser.get(user.id) ?? 1) - 1;
        if (left > 0) this.perUser.set(user.id, left);
        else this.perUser.delete(user.id);
      },
    };
  }

  /** Stops every upload and push in flight (server shutdown): each answers 503 at once. */
  stopAll(): void {
    this.stopping.abort(
      new UserError('unavailable', 'petri server is stopping; send the upload or push again once it is back'),
    );
  }
}

/** How long, and how much, of a refused request's body is still read and thrown away. */
const DRAIN_MS = 2000;
const DRAIN_BYTES = 64 * 1024 * 1024;

/**
 * After a refusal, reads and discards what the client is still sending for a moment, so
 * that it reads the answer instead of a reset (HTTP clients stop at a failed write, and
 * lose the answer with it); then the connection is cut. Nothing is decompressed or parsed.
 */
export function discardRest(req: FastifyRequest, body: Readable = req.raw): void {
  const socket = req.raw.socket;
  if (req.raw.complete || socket.destroyed) return;
  let seen = 0;
  const cut = () => socket.destroy();
  const timer = setTimeout(cut, DRAIN_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  body.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > DRAIN_BYTES) cut();
  });
  body.on('error', () => {});
  body.resume();
}
