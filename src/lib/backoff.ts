// Per-object retry delays for the control plane's loops: an operation that failed on an
// object waits 1 s, 2 s, 4 s ... up to a cap before it is tried on that object again, so one
// object that cannot be fixed (an instance that cannot be stopped) costs a few attempts a
// minute, not a hot loop, and never delays the other objects.

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  now?: () => number;
}

interface Entry {
  failures: number;
  /** Not to be tried again before this time (ms since the epoch). */
  notBefore: number;
}

/** The delay after `failures` failures in a row: initialMs, doubled with each further failure,
 * up to maxMs. For schedules kept elsewhere than a Backoff (in the store, across restarts). */
export function backoffDelay(failures: number, initialMs: number, maxMs: number): number {
  return Math.min(initialMs * 2 ** Math.min(Math.max(failures, 1) - 1, 30), maxMs);
}

export class Backoff {
  private readonly entries = new Map<string, Entry>();
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly now: () => number;

  constructor(opts: BackoffOptions = {}) {
    this.initialMs = opts.initialMs ?? 1000;
    this.maxMs = opts.maxMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** True when the object may be tried now: it has not failed, or its delay has passed. */
  ready(key: string): boolean {
    const entry = this.entries.get(key);
    return entry === undefined || entry.notBefore <= this.now();
  }

  /** How many times in a row the object has failed (0: none pending). */
  failures(key: string): number {
    return this.entries.get(key)?.failures ?? 0;
  }

  /** Records a failure; returns the delay before the next attempt. */
  failed(key: string): number {
    this.prune();
    const failures = (this.entries.get(key)?.failures ?? 0) + 1;
    const delay = backoffDelay(failures, this.initialMs, this.maxMs);
    this.entries.set(key, { failures, notBefore: this.now() + delay });
    return delay;
  }

  /** The object's operation worked (or the object is gone): its next failure starts afresh. */
  succeeded(key: string): void {
    this.entries.delete(key);
  }

  /** Runs the operation unless the object is waiting out a delay; records how it went.
   * Returns false when it was not run; rethrows its error after recording it. */
  async attempt(key: string, run: () => Promise<void>): Promise<boolean> {
    if (!this.ready(key)) return false;
    try {
      await run();
    } catch (err) {
      this.failed(key);
      throw err;
    }
    this.succeeded(key);
    return true;
  }

  /** Keys whose delay ran out long ago belong to objects nobody tries any more (a row that
   * went away): dropped, so the map does not grow with every object that ever failed. */
  private prune(): void {
    const old = this.now() - 2 * this.maxMs;
    for (const [key, entry] of this.entries) if (entry.notBefore < old) this.entries.delete(key);
  }
}
