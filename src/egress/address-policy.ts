// Which IP addresses the egress proxy never connects to: the host itself, the private
// networks around it, cloud metadata and every special-purpose range no public host answers
// from (IANA's special-purpose registries, RFC 6890). Declaring a name in petri.toml cannot
// open these; only an operator can, by name (allowPrivateHosts). Pure, so every range edge
// is tested; the host's own addresses, which are not pure, are in host-addresses.ts.
import { isIP } from 'node:net';

interface Range4 {
  base: number;
  bits: number;
  kind: string;
}

// Documentation and benchmarking ranges are refused too: they are not the internet, and a
// host may well sit in one (this project's machine has 192.0.2.2 on its own interface and a
// package registry at 203.0.113.x, allowed by name as a build registry).
const FORBIDDEN_V4: readonly Range4[] = [
  range4('0.0.0.0', 8, 'this-network'), // 0.0.0.0 reaches the host itself on Linux
  range4('10.0.0.0', 8, 'private'),
  range4('100.64.0.0', 10, 'shared (CGNAT)'),
  range4('127.0.0.0', 8, 'loopback'),
  range4('169.254.0.0', 16, 'link-local (cloud metadata)'),
  range4('172.16.0.0', 12, 'private'),
  range4('192.0.0.0', 24, 'IETF protocol assignment'), // DS-Lite, NAT64 discovery ...
  range4('192.0.2.0', 24, 'documentation'),
  range4('192.88.99.0', 24, '6to4 relay anycast'),
  range4('192.168.0.0', 16, 'private'),
  range4('198.18.0.0', 15, 'benchmarking'),
  range4('198.51.100.0', 24, 'documentation'),
  range4('203.0.113.0', 24, 'documentation'),
  range4('224.0.0.0', 4, 'multicast'),
  range4('240.0.0.0', 4, 'reserved'), // includes the broadcast 255.255.255.255
];

/** True when the proxy must not connect to ip. Anything that is not an IP address is forbidden too. */
export function isForbiddenAddress(ip: string): boolean {
  return forbiddenAddressKind(ip) !== undefined;
}

/** Why ip is forbidden, in words for a message ('loopback', 'private', ...), or undefined when it is allowed. */
export function forbiddenAddressKind(ip: string): string | undefined {
  if (isIP(ip) === 4) return kindOfIPv4(parseIPv4(ip));
  const v6 = parseIPv6(ip);
  return v6 === undefined ? 'invalid' : kindOfIPv6(v6);
}

function kindOfIPv4(addr: number): string | undefined {
  for (const r of FORBIDDEN_V4) {
    const mask = r.bits === 0 ? 0 : (0xffffffff << (32 - r.bits)) >>> 0;
    if ((addr & mask) >>> 0 === r.base) return r.kind;
  }
  return undefined;
}

function kindOfIPv6(h: readonly number[]): string | undefined {
  const [h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0, h5 = 0, h6 = 0, h7 = 0] = h;
  const low32 = ((h6 << 16) | h7) >>> 0;
  const upper64Zero = h0 === 0 && h1 === 0 && h2 === 0 && h3 === 0;
  // ::/96 holds the unspecified address, loopback ::1 and the deprecated IPv4-compatible
  // form ::a.b.c.d; no public host lives there, so the whole block is refused.
  if (upper64Zero && h4 === 0 && h5 === 0) {
    return h7 === 1 && h6 === 0 ? 'loopback' : 'unspecified or IPv4-compatible';
  }
  // Forms that carry an IPv4 address, which the kernel or a translator would reach:
  // IPv4-mapped ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::a.b.c.d.
  const mapped = upper64Zero && h4 === 0 && h5 === 0xffff;
  const translated = upper64Zero && h4 === 0xffff && h5 === 0;
  const nat64 = h0 === 0x64 && h1 === 0xff9b && h2 === 0 && h3 === 0 && h4 === 0 && h5 === 0;
  if (mapped || translated || nat64) return kindOfIPv4(low32);
  if (h0 === 0x64 && h1 === 0xff9b && h2 === 1) return 'local-use NAT64'; // 64:ff9b:1::/48
  // 6to4 (2002::/16) routes to the IPv4 address in bits 16..47.
  if (h0 === 0x2002) return kindOfIPv4(((h1 << 16) | h2) >>> 0);
  if (h0 === 0x100 && h1 === 0 && h2 === 0 && h3 === 0) return 'discard-only'; // 100::/64
  if (h0 === 0x2001 && h1 === 0x0db8) return 'documentation'; // 2001:db8::/32
  if (h0 === 0x3fff && (h1 & 0xf000) === 0) return 'documentation'; // 3fff::/20
  if (h0 === 0x2001 && h1 === 2 && h2 === 0) return 'benchmarking'; // 2001:2::/48
  // The rest of 2001::/23 (Teredo 2001::/32, which tunnels to an IPv4 address, ORCHID,
  // AMT, AS112): protocol plumbing, not hosts an app talks to.
  if (h0 === 0x2001 && h1 < 0x200) return 'IETF protocol assignment';
  if ((h0 & 0xfe00) === 0xfc00) return 'unique-local (private)'; // fc00::/7
  if ((h0 & 0xffc0) === 0xfe80) return 'link-local'; // fe80::/10
  if ((h0 & 0xffc0) === 0xfec0) return 'site-local'; // fec0::/10, deprecated but still private
  if ((h0 & 0xff00) === 0xff00) return 'multicast'; // ff00::/8
  // Every public IPv6 host is in global unicast 2000::/3 (NAT64 64:ff9b::/96, outside it,
  // was judged by its IPv4 address above); the rest of the space is reserved by the IETF.
  if ((h0 & 0xe000) !== 0x2000) return 'reserved';
  return undefined;
}

/**
 * The IPv4 address an IPv6 form carries (IPv4-mapped, IPv4-translated, IPv4-compatible,
 * NAT64 64:ff9b::/96, 6to4), as dotted text; undefined when it carries none. The host's own
 * addresses are compared in both forms, so ::ffff:192.0.2.2 is the host as much as 192.0.2.2.
 */
export function embeddedIPv4(ip: string): string | undefined {
  const h = parseIPv6(ip);
  if (h === undefined) return undefined;
  const [h0 = 0, h1 = 0, h2 = 0, h3 = 0, h4 = 0, h5 = 0, h6 = 0, h7 = 0] = h;
  const upper64Zero = h0 === 0 && h1 === 0 && h2 === 0 && h3 === 0;
  const low = ((h6 << 16) | h7) >>> 0;
  if (upper64Zero && ((h4 === 0 && (h5 === 0xffff || h5 === 0)) || (h4 === 0xffff && h5 === 0))) {
    return formatIPv4(low);
  }
  if (h0 === 0x64 && h1 === 0xff9b && h2 === 0 && h3 === 0 && h4 === 0 && h5 === 0) return formatIPv4(low);
  if (h0 === 0x2002) return formatIPv4(((h1 << 16) | h2) >>> 0);
  return undefined;
}

/** One spelling per address, to compare them: dotted IPv4, or eight hex groups for IPv6 (no zone). */
export function canonicalAddress(ip: string): string | undefined {
  if (isIP(ip) === 4) return formatIPv4(parseIPv4(ip));
  return parseIPv6(ip)
    ?.map((g) => g.toString(16))
    .join(':');
}

function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

function range4(base: string, bits: number, kind: string): Range4 {
  return { base: parseIPv4(base), bits, kind };
}

function parseIPv4(ip: string): number {
  const [a = 0, b = 0, c = 0, d = 0] = ip.split('.').map(Number);
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** Eight 16-bit groups, or undefined when ip is not an IPv6 address. A zone (%eth0) is ignored. */
function parseIPv6(ip: string): number[] | undefined {
  const bare = ip.includes('%') ? ip.slice(0, ip.indexOf('%')) : ip;
  if (isIP(bare) !== 6) return undefined;
  let text = bare.toLowerCase();
  // A dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const tail = text.slice(text.lastIndexOf(':') + 1);
  if (tail.includes('.')) {
    const v4 = parseIPv4(tail);
    text = `${text.slice(0, text.length - tail.length)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => Number.parseInt(g, 16)));
  const gap = text.indexOf('::');
  if (gap < 0) return groups(text);
  const head = groups(text.slice(0, gap));
  const rest = groups(text.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - rest.length).fill(0), ...rest];
}
