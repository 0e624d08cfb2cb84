// Failed sign-ins counted per client address and per user name, in a sliding window: past
// the limit, further attempts are refused with 429 before any password is checked, saying
// when to retry. Kept in memory on purpose: a restart only forgets failures (it never lets
// anyone in), and a guesser gains one window's worth of attempts per restart at most.
import { type ErrorCode, UserError } from '../lib/errors.js';

export interface AttemptLimits {
  perAddress: number;
  perUser: number;
  windowSeconds: number;
}

/** Keys kept at most: a spray of made-up user names cannot grow the map without bound. */
const MAX_KEYS = 100_000;

export class SignInAttempts {
  /** key → times (ms) of its failures within the window, oldest first. */
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: AttemptLimits,
    private readonly clock: () => number = Date.now,
  ) {}

  /** Throws 429 (with retryAfterSeconds on the error) when the address or the user name has
   * used up its failures; call before checking the password. */
  check(address: string | undefined, username: string): void {
    const wait = Math.max(
      this.waitFor(addressKey(address), this.limits.perAddress),
      this.waitFor(userKey(username), this.limits.perUser),
    );
    if (wait > 0) {
      const seconds = Math.ceil(wait / 1000);
      const at = new Date(this.clock() + seconds * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
      throw new TooManyAttempts(
        `too many failed sign-ins; try again in ${describe(seconds)} (after ${at})`,
        seconds,
      );
    }
  }

  /** A wrong password, an unknown user, an empty password: counted for both keys. */
  fail(address: string | undefined, username: string): void {
    const t = this.clock();
    for (const key of [addressKey(address), userKey(username)]) {
      const list = this.recent(key);
      list.push(t);
      this.failures.delete(key); // re-inserted last: the map stays in order of last failure
      this.failures.set(key, list);
    }
    while (this.failures.size > MAX_KEYS) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  /** A successful sign-in clears its user name's failures (not its address's: one right
   * password must not reset a guesser's count of other names from the same place). */
  succeed(username: string): void {
    this.failures.delete(userKey(username));
  }

  private recent(key: string): number[] {
    const since = this.clock() - this.limits.windowSeconds * 1000;
    return (this.failures.get(key) ?? []).filter((t) => t > since);
  }

  /** ms until the key may try again: until its oldest failure that keeps it at the limit ages out. */
  private waitFor(key: string, limit: number): number {
    const list = this.recent(key);
    if (list.length === 0) this.failures.delete(key);
    if (list.length < limit) return 0;
    const freeing = list[list.length - limit] ?? this.clock();
    return Math.max(1, freeing + this.limits.windowSeconds * 1000 - this.clock());
  }
}

export class TooManyAttempts extends UserError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super('too_many_requests', message);
  }
}

const addressKey = (address: string | undefined) => `address:${address ?? 'unknown'}`;
/** Names differ only in case or surrounding spaces for most directories: counted as one. */
const userKey = (username: string) => `user:${username.trim().toLowerCase()}`;

function describe(seconds: number): string {
  if (seconds < 60) return `${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `${minutes} minute${minutes === 1 ? '' : 's'}`;
}

/** A sign-in refused for what was typed (empty or wrong password, unknown name): 401, and
 * counted against the address and the name. `reason` is for the audit record only: the
 * answer does not tell an unknown name from a wrong password. */
export class FailedAttempt extends UserError {
  constructor(
    message: string,
    readonly reason: string,
    code: ErrorCode = 'unauthorized',
  ) {
    super(code, message);
  }
}
