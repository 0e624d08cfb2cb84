// Anonymous refusals and their budget in the audit trail (see domain/audit.ts).
//
// A request nobody signed (no token, or one that matches no token) can be sent by anyone,
// as fast as they like. Each address has its refusals (and any other event of a request
// nobody signed) recorded one by one up to a budget per window, and all addresses together
// another; past them they are counted and written as one 'audit.suppressed' event per
// window (the count, the busiest addresses and actions), so a flood cannot grow the store
// without bound while the record still says it happened.
//
// Refusals of a dead token (revoked, expired, or its user disabled) are budgeted the same
// way, per user instead of per address: they have a name, but nothing an admin can do
// stops them (the token is revoked already, the account disabled), so recording each one
// would let whoever holds such a token grow the trail without bound in its owner's name.
// Other refusals of a known user (a forbidden route, a missing app) are always recorded
// one by one: the user's token still works, and an admin can revoke it.

export interface RefusalBudget {
  windowMs: number;
  perAddress: number;
  total: number;
}

const TRACKED_ADDRESSES = 10_000;

/** What the refusals are counted by, and so how the summary names them. */
export interface RefusalKeys {
  /** The summary's field for how many there were (addresses, users). */
  count: string;
  /** The summary's field for the busiest ones (busiestAddresses, busiestUsers). */
  busiest: string;
}

export class AnonymousRefusals {
  budget: RefusalBudget = { windowMs: 10 * 60_000, perAddress: 10, total: 60 };

  /** `keys`: what admit()'s first argument is (an address by default, or a user); `target`:
   * the summary event's target. */
  constructor(
    readonly keys: RefusalKeys = { count: 'addresses', busiest: 'busiestAddresses' },
    readonly target = 'anonymous refusals',
  ) {}
  private windowStart = 0;
  private recorded = 0;
  private perAddress = new Map<string, number>();
  /** Counted, not recorded, in the window: by address and by action. */
  suppressed = emptySuppressed();

  /** Whether this refusal is recorded on its own; if not, it is counted. `ip`: the key the
   * budget is per (an address, or a user for dead tokens). */
  admit(ip: string | null, action: string, at: number): boolean {
    if (at - this.windowStart >= this.budget.windowMs) {
      this.windowStart = at;
      this.recorded = 0;
      this.perAddress.clear();
    }
    const address = ip ?? 'unknown';
    const seen = this.perAddress.get(address) ?? 0;
    if (seen < this.budget.perAddress && this.recorded < this.budget.total) {
      // Past TRACKED_ADDRESSES (many addresses, one attacker) only the total bounds them.
      if (this.perAddress.size < TRACKED_ADDRESSES || this.perAddress.has(address))
        this.perAddress.set(address, seen + 1);
      this.recorded += 1;
      return true;
    }
    const s = this.suppressed;
    if (s.count === 0) {
      s.from = new Date(at).toISOString();
      s.windowStart = this.windowStart;
    }
    s.count += 1;
    bump(s.addresses, address);
    bump(s.actions, action);
    return false;
  }

  /** The window's suppressed refusals, once the window is over (and then forgotten). */
  takeSummary(at: number, force = false): Record<string, unknown> | undefined {
    const s = this.suppressed;
    if (s.count === 0 || (!force && at - s.windowStart < this.budget.windowMs)) return undefined;
    const summary = {
      count: s.count,
      from: s.from,
      until: new Date(at).toISOString(),
      [this.keys.count]: s.addresses.size,
      [this.keys.busiest]: top(s.addresses, 10),
      actions: top(s.actions, 10),
    };
    this.suppressed = emptySuppressed();
    return summary;
  }
}

function emptySuppressed() {
  return {
    count: 0,
    from: '',
    windowStart: 0,
    addresses: new Map<string, number>(),
    actions: new Map<string, number>(),
  };
}

function bump(counts: Map<string, number>, key: string): void {
  if (counts.size < TRACKED_ADDRESSES || counts.has(key)) counts.set(key, (counts.get(key) ?? 0) + 1);
}

function top(counts: Map<string, number>, n: number): Record<string, number> {
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1]).slice(0, n));
}
