// The control plane's periodic loops, made one way: a pass now and then, a nudge to run one
// as soon as possible, and a stop that waits for the pass in flight, so nothing a loop does
// outlives the control plane's shutdown. A failing pass is logged once while it repeats
// (log-dedupe) and the next one waits out a growing delay (backoff), never a hot loop. A pass
// that found nothing to do may say so ('quiet'): the next ones then come less and less
// often, up to quietMaxMs apart, until a pass has work again or a nudge comes, so a host at
// rest costs almost nothing while a change is still acted on at once.
import { AsyncResource } from 'node:async_hooks';
import { Backoff } from './backoff.js';
import { type LineLogger, RepeatedErrorLog } from './log-dedupe.js';

export interface LoopOptions {
  /** What the loop does, for its log lines ("looking for idle apps"). */
  what: string;
  /** One pass. It may throw: the error is logged, the next pass is delayed. 'quiet' says it
   * found nothing to do, nor anything that time alone will bring sooner than quietMaxMs. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a pass that says nothing is an async () => void
  pass: () => Promise<PassOutcome | void>;
  /** Time between passes, read after each one (a loop may run faster while busy). */
  intervalMs: number | (() => number);
  logger: LineLogger;
  /** Longest delay after repeated failures. */
  maxBackoffMs?: number;
  /** Longest delay after quiet passes in a row (each doubles the last); default: the interval. */
  quietMaxMs?: number | (() => number);
}

/** What a pass may say of itself (saying nothing means it had work, or does not tell). */
export type PassOutcome = 'quiet';

export class Loop {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Quiet passes in a row since the last one with work or the last nudge. */
  private quietPasses = 0;
  private readonly failures: Backoff;
  private readonly errors: RepeatedErrorLog;

  private readonly maxBackoffMs: number;
  /** The context the loop was made in (the server's start): its passes run there, not in
   * that of a request that nudged it, which would lend them its async-local state (the
   * request's audit scope: its user, address and app) for as long as the loop runs. */
  private readonly home = new AsyncResource('petri-loop');

  constructor(private readonly opts: LoopOptions) {
    this.maxBackoffMs = opts.maxBackoffMs ?? 60_000;
    this.failures = new Backoff({ initialMs: 1000, maxMs: this.maxBackoffMs });
    this.errors = new RepeatedErrorLog(opts.logger);
  }

  start(): void {
    this.schedule(0);
  }

  /** Something changed: a pass as soon as possible (one more after a pass under way). */
  nudge(): void {
    if (this.stopped) return;
    this.quietPasses = 0;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(0);
  }

  /** One pass now; concurrent callers share it, and a call during a pass gets one more after. */
  runNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    const run = this.home.runInAsyncScope(async () => {
      do {
        this.again = false;
        try {
          const outcome = await this.opts.pass();
          this.quietPasses = outcome === 'quiet' && !this.again ? this.quietPasses + 1 : 0;
          this.failures.succeeded('pass');
          this.errors.resolved('pass');
        } catch (err) {
          this.failures.failed('pass');
          this.errors.error('pass', err, `${this.opts.what} failed`);
        }
      } while (this.again && !this.stopped && this.failures.ready('pass'));
    });
    this.running = run.finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** No pass starts after this; resolves once the one in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(
      () =>
        this.home.runInAsyncScope(() => {
          this.timer = undefined;
          void this.runNow().then(() => this.schedule(this.nextDelay()));
        }),
      delayMs,
    );
  }

  /** The interval, longer after quiet passes, or longer while passes fail (their backoff). */
  private nextDelay(): number {
    const interval = millis(this.opts.intervalMs);
    if (this.failures.ready('pass')) {
      if (this.quietPasses === 0) return interval;
      const most = Math.max(interval, millis(this.opts.quietMaxMs ?? interval));
      return Math.min(interval * 2 ** Math.min(this.quietPasses, 20), most);
    }
    const backoff = 1000 * 2 ** Math.min(this.failures.failures('pass') - 1, 6);
    return Math.max(interval, Math.min(backoff, this.maxBackoffMs));
  }
}

function millis(ms: number | (() => number)): number {
  return typeof ms === 'function' ? ms() : ms;
}
