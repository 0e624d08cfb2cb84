// The addresses of this host's own interfaces, which the egress proxy never connects to: a
// service listening on all interfaces answers on each of them, whatever range it is in (a
// public address, or a documentation one as on this project's machine). Read at start and
// again when a check finds the list older than maxAgeMs, so an address added later (DHCP,
// an operator's new interface) is refused within seconds, with no timer to stop.
import os from 'node:os';
import { canonicalAddress, embeddedIPv4 } from './address-policy.js';

export interface HostAddressesOptions {
  /** Every address of every interface; default os.networkInterfaces(). Tests give their own. */
  read?: () => Iterable<string>;
  /** How long one reading is trusted; default 5 s. */
  maxAgeMs?: number;
  now?: () => number;
}

export class HostAddresses {
  private readonly read: () => Iterable<string>;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private known = new Set<string>();
  private readAt = Number.NEGATIVE_INFINITY;

  constructor(opts: HostAddressesOptions = {}) {
    this.read = opts.read ?? interfaceAddresses;
    this.maxAgeMs = opts.maxAgeMs ?? 5000;
    this.now = opts.now ?? Date.now;
    this.refresh();
  }

  /** Whether ip, or the IPv4 address an IPv6 form of it carries, is one of this host's. */
  has(ip: string): boolean {
    if (this.now() - this.readAt > this.maxAgeMs) this.refresh();
    const key = canonicalAddress(ip);
    if (key !== undefined && this.known.has(key)) return true;
    const v4 = embeddedIPv4(ip);
    return v4 !== undefined && this.known.has(v4);
  }

  private refresh(): void {
    const next = new Set<string>();
    for (const address of this.read()) {
      const key = canonicalAddress(address);
      if (key !== undefined) next.add(key);
    }
    this.known = next;
    this.readAt = this.now();
  }
}

function* interfaceAddresses(): Iterable<string> {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const info of list ?? []) yield info.address;
  }
}
