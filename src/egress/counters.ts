// Counts egress attempts per app, host, port and verdict in memory, so the proxy does not
// write the store once per connection: the platform drains the deltas now and then and adds
// them to what it keeps. Bounded, because the hosts an app tries are the app's to choose.

export interface EgressAttempt {
  app: string;
  host: string;
  port: number;
  /** Whether policy let it through (declared, and not a forbidden address). */
  allowed: boolean;
  /** Why it was refused or failed ('not declared', 'loopback address 127.0.0.1', 'connect failed: ECONNREFUSED'). */
  reason?: string;
  time: Date;
}

export interface EgressCount {
  app: string;
  host: string;
  port: number;
  allowed: boolean;
  count: number;
  lastSeen: Date;
  /** The reason of the latest attempt that had one. */
  lastReason?: string;
}

/** Where attempts go once an app has tried more distinct hosts than the counters keep. */
export const OTHER_HOSTS = '(other hosts)';

export interface EgressCountersOptions {
  /** Distinct (app, host, port, allowed) rows kept between drains; default 10,000. */
  maxEntries?: number;
}

export class EgressCounters {
  private pending = new Map<string, EgressCount>();
  private readonly maxEntries: number;

  constructor(opts: EgressCountersOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** Fits EgressProxyOptions.onAttempt. */
  readonly record = (a: EgressAttempt): void => {
    this.add({ ...a, count: 1, lastSeen: a.time, lastReason: a.reason });
  };

  /** What was counted since the last drain, without clearing it. */
  peek(): EgressCount[] {
    return [...this.pending.values()].map((c) => ({ ...c }));
  }

  /** Returns what was counted since the last drain and starts again from zero. */
  drain(): EgressCount[] {
    const out = [...this.pending.values()];
    this.pending = new Map();
    return out;
  }

  /** Puts drained counts back, for when persisting them failed: nothing is lost, nothing counted twice. */
  restore(counts: readonly EgressCount[]): void {
    for (const c of counts) this.add({ ...c });
  }

  private add(c: EgressCount): void {
    let key = keyOf(c.app, c.host, c.port, c.allowed);
    let row = this.pending.get(key);
    if (!row && this.pending.size >= this.maxEntries) {
      // An app probing endless random names must not grow memory: fold the rest into one row.
      key = keyOf(c.app, OTHER_HOSTS, 0, c.allowed);
      row = this.pending.get(key);
      c = { ...c, host: OTHER_HOSTS, port: 0 };
    }
    if (!row) {
      const fresh: EgressCount = {
        app: c.app,
        host: c.host,
        port: c.port,
        allowed: c.allowed,
        count: 0,
        lastSeen: c.lastSeen,
      };
      this.pending.set(key, fresh);
      row = fresh;
    }
    row.count += c.count;
    // Attempts can be restored out of order: keep the latest time and the reason that came with it.
    if (c.lastSeen.getTime() >= row.lastSeen.getTime()) {
      row.lastSeen = c.lastSeen;
      if (c.lastReason !== undefined) row.lastReason = c.lastReason;
    } else if (row.lastReason === undefined && c.lastReason !== undefined) {
      row.lastReason = c.lastReason;
    }
  }
}

function keyOf(app: string, host: string, port: number, allowed: boolean): string {
  return JSON.stringify([app, host, port, allowed]);
}
