// Waiting for a new release (a config change, a rollback) to serve or fail: the server
// answers at once with a pending release and converges on its own, so the CLI polls it,
// shows on a TTY that it is still waiting, and turns a failed release into an error.
// The error classes alone, not the client's index: that loads its HTTP stack, which a
// command loads when it first talks to the API (context.ts), not when the CLI starts.
import { ConnectionError } from '../client/errors.js';
import type { PetriClient, Release } from '../client/index.js';
import { UserError } from '../lib/errors.js';
import { sleep } from '../lib/until.js';
import { formatDuration, type Output } from './output.js';

// Often enough that a quick restart reads as instant, rarely enough to cost the server nothing.
export const POLL_INTERVAL_MS = 300;
// A release waits for its processes' boot timeout (60 s by default, settable per app) and
// may run a release phase first: five minutes covers both with room to spare.
export const WAIT_TIMEOUT_MS = 5 * 60_000;

export interface WaitOptions {
  intervalMs?: number;
  timeoutMs?: number;
  /** Called after every poll that found the release still pending. */
  onPending?: (elapsedMs: number) => void;
  /** Stops waiting (stdout went away); the release goes on on the server. */
  signal?: AbortSignal;
}

/** Polls until the release is succeeded or failed, and returns it as it ended. */
export async function waitForRelease(
  client: PetriClient,
  appName: string,
  release: Release,
  options: WaitOptions = {},
): Promise<Release> {
  const { intervalMs = POLL_INTERVAL_MS, timeoutMs = WAIT_TIMEOUT_MS } = options;
  const started = Date.now();
  let now = release;
  let lostConnection: ConnectionError | undefined;
  while (now.status === 'pending') {
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const why = lostConnection ? ` (${lostConnection.message})` : '';
      throw new UserError(
        'unavailable',
        `release ${release.version} of ${appName} is still pending after ${formatDuration(timeoutMs)}${why}; it goes on on the server: check 'petri releases -a ${appName}'`,
      );
    }
    if (options.signal?.aborted) {
      throw new UserError('unavailable', `stopped waiting for release ${release.version} of ${appName}`);
    }
    await sleep(intervalMs);
    try {
      now = await client.getRelease(appName, release.version);
      lostConnection = undefined;
    } catch (err) {
      // A server restarting under us is not a failed release: keep asking until the deadline.
      if (!(err instanceof ConnectionError)) throw err;
      lostConnection = err;
    }
    if (now.status === 'pending') options.onPending?.(Date.now() - started);
  }
  return now;
}

/**
 * The error a failed release exits with. Its first line is the reason, said on the one
 * `error:` line; the rest (a failing release phase's output) is shown above it, indented,
 * because squeezed into one line it could not be read.
 */
export function releaseFailure(out: Output, appName: string, release: Release): UserError {
  const [reason, ...output] = (release.error ?? '').trimEnd().split('\n');
  for (const line of output) out.note(`  | ${line}`);
  return new UserError(
    'deploy_failed',
    reason || `release ${release.version} of ${appName} failed; see 'petri logs -a ${appName}'`,
  );
}

/**
 * The line that says what is being waited for. On a TTY it stays open with the seconds
 * waited so far and is finished in place; elsewhere it is a line of its own (or, with
 * keep false, nothing: only the result is printed).
 */
export class WaitLine {
  private shownSeconds = -1;

  constructor(
    private readonly out: Output,
    private readonly text: string,
    private readonly keep: boolean,
  ) {}

  start(): void {
    if (this.out.isTTY) this.out.partial(this.text);
    else if (this.keep) this.out.line(this.text);
  }

  tick(elapsedMs: number): void {
    if (!this.out.isTTY) return;
    const secs = Math.floor(elapsedMs / 1000);
    if (secs === this.shownSeconds || secs < 1) return;
    this.shownSeconds = secs;
    this.out.partial(`${CLEAR_LINE}${this.text} ${this.out.paint('dim', `${secs}s`)}`);
  }

  /** Ends the line with `result`, or (with no result) wipes it on a TTY for the caller's own line. */
  end(result?: string): void {
    if (this.out.isTTY) {
      if (result === undefined) this.out.partial(CLEAR_LINE);
      else this.out.line(`${CLEAR_LINE}${this.text} ${result}`);
    } else if (result !== undefined && this.keep) {
      this.out.line(result);
    }
  }
}

const CLEAR_LINE = '\r\u001b[K';
