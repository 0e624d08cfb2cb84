// Repeated identical errors logged once with a count: a loop that fails the same way on
// every pass writes one line when it starts failing, one summary a minute while it goes on
// ("... 120 more times in the last 60 s"), and one when it stops, instead of a line per pass.
import { errorMessage } from './errors.js';

/** The part of pino's Logger this needs. */
export interface LineLogger {
  error(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

interface Seen {
  /** What identifies "the same error": the message and the error's own message. */
  text: string;
  msg: string;
  /** Times seen since the last line written about it. */
  unlogged: number;
  since: number;
}

const MAX_KEYS = 10_000;

export class RepeatedErrorLog {
  private readonly seen = new Map<string, Seen>();
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(
    private readonly logger: LineLogger,
    opts: { windowMs?: number; now?: () => number } = {},
  ) {
    this.windowMs = opts.windowMs ?? 60_000;
    this.now = opts.now ?? Date.now;
  }

  /** Logs `msg` for this key unless the same error was logged for it within the window. */
  error(key: string, err: unknown, msg: string, fields: object = {}): void {
    const text = `${msg}\0${errorMessage(err)}`;
    const seen = this.seen.get(key);
    if (seen && seen.text === text) {
      seen.unlogged++;
      if (this.now() - seen.since < this.windowMs) return;
      this.logger.error({ ...fields, err, repeats: seen.unlogged }, `${msg} (${this.summary(seen)})`);
      seen.unlogged = 0;
      seen.since = this.now();
      return;
    }
    if (seen) this.flush(seen, fields);
    this.logger.error({ ...fields, err }, msg);
    // Keys of objects that went away without a resolved(): the oldest go first.
    if (this.seen.size >= MAX_KEYS) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(key, { text, msg, unlogged: 0, since: this.now() });
  }

  /** The operation on this key worked (or its object is gone): what was held back is said. */
  resolved(key: string, fields: object = {}): void {
    const seen = this.seen.get(key);
    if (!seen) return;
    this.flush(seen, fields);
    this.seen.delete(key);
  }

  private flush(seen: Seen, fields: object): void {
    if (seen.unlogged > 0)
      this.logger.info({ ...fields, repeats: seen.unlogged }, `${seen.msg} (${this.summary(seen)})`);
  }

  private summary(seen: Seen): string {
    const seconds = Math.max(1, Math.round((this.now() - seen.since) / 1000));
    return `the same error ${seen.unlogged} more time${seen.unlogged === 1 ? '' : 's'} in the last ${seconds} s`;
  }
}
