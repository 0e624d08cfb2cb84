// Anonymous refusals and their budget in the audit trail (see domain/audit.ts).
//
// A request nobody signed (no token, or one that matches no token) can be sent by anyone,
// as fast as they like. Each address has its refusals (and any other event of a request
// nobody signed) recorded one by one up to a budget per window, and all addresses together
// another; past them they are counted and written as one 'audit.suppressed' event per
// window (the count, the busiest addresses and actions), so a flood cannot grow the store
// without bound while the record still says it happened. Refusals of a known user (a
// revoked or expired token, a forbidden route) are always recorded one by one: they have a
// name, and a token to revoke.

export interface RefusalBudget {
  windowMs: number;
  perAddress: number;
  total: number;
}

const TRACKED_ADDRESSES = 10_000;

export class AnonymousRefusals {
  budget: RefusalBudget = { windowMs: 10 * 60_000, perAddress: 10, total: 60 };
  private windowStart = 0;
  private recorded = 0;
  private perAddress = new Map<string, number>();
  /** Counted, not recorded, in the window: by address and by action. */
  suppressed = emptySuppressed();

  /** Whether this refusal is recorded on its own; if not, it is counted. */
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
      addresses: s.addresses.size,
      busiestAddresses: top(s.addresses, 10),
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
