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
  /** Least time from the end of a pass to a pass a nudge asks for (default 0): a loop that
   * many writes nudge (the API's, a tenant's in a loop) then runs at most once per gap. */
  nudgeGapMs?: number;
}

/** What a pass may say of itself (saying nothing means it had work, or does not tell). */
export type PassOutcome = 'quiet';

export class Loop {
  private timer: NodeJS.Timeout | undefined;
  /** When the timer fires (performance.now()), Infinity without one. */
  private timerAt = Number.POSITIVE_INFINITY;
  /** When the last pass ended. */
  private lastEnd = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private again = false;
  /** A runNow() caller waits for a pass that starts after its call. */
  private againNow = false;
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

  private get gap(): number {
    return this.opts.nudgeGapMs ?? 0;
  }

  /** Something changed: a pass as soon as possible (one more after a pass under way). */
  nudge(): void {
    if (this.stopped) return;
    this.quietPasses = 0;
    if (this.running) {
      this.again = true;
      return;
    }
    this.scheduleWithin(this.lastEnd + this.gap - performance.now());
  }

  /** One pass now; concurrent callers share it, and a call during a pass gets one more after. */
  runNow(): Promise<void> {
    if (this.running) {
      this.again = true;
      this.againNow = true;
      return this.running;
    }
    const run = this.home.runInAsyncScope(async () => {
      do {
        this.again = false;
        this.againNow = false;
        try {
          const outcome = await this.opts.pass();
          this.quietPasses = outcome === 'quiet' && !this.again ? this.quietPasses + 1 : 0;
          this.failures.succeeded('pass');
          this.errors.resolved('pass');
        } catch (err) {
          this.failures.failed('pass');
          this.errors.error('pass', err, `${this.opts.what} failed`);
        }
        // A caller waiting on runNow gets its pass in this promise; with a gap, a nudge's
        // pass comes after the gap (below), not straight on.
      } while (
        (this.againNow || (this.again && this.gap === 0)) &&
        !this.stopped &&
        this.failures.ready('pass')
      );
    });
    this.running = run.finally(() => {
      this.running = undefined;
      this.lastEnd = performance.now();
      if (this.again && !this.stopped && this.failures.ready('pass')) this.scheduleWithin(this.gap);
    });
    return this.running;
  }

  /** No pass starts after this; resolves once the one in flight has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    await this.running;
  }

  /** A pass within delayMs: the timer moves sooner, never later. */
  private scheduleWithin(delayMs: number): void {
    const wait = Math.max(0, delayMs);
    if (this.timer && this.timerAt <= performance.now() + wait) return;
    this.schedule(wait);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = performance.now() + delayMs;
    this.timer = setTimeout(
      () =>
        this.home.runInAsyncScope(() => {
          this.timer = undefined;
          this.timerAt = Number.POSITIVE_INFINITY;
          // A nudge meanwhile may have asked for a pass sooner than the interval.
          void this.runNow().then(() => this.scheduleWithin(this.nextDelay()));
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
