// Network isolation as plain data: the subnet arithmetic, the nftables ruleset of a Petri
// bridge, the names of a sandbox's namespace and veth pair, and the ip(8) commands that
// attach one. Nothing here touches the system (network.ts applies it), so the whole
// firewall is reviewed through golden files.
import { createHash } from 'node:crypto';
import type { SandboxLabels } from '../driver.js';

export const IP = '/usr/sbin/ip';
export const NFT = '/usr/sbin/nft';
/** Where `ip netns add` pins a named namespace; nsenter --net takes this file. */
export const NETNS_DIR = '/run/netns';
/** The sandbox end of its veth pair, as the app sees it. */
export const SANDBOX_IFNAME = 'eth0';

/** Linux interface names are at most 15 bytes (IFNAMSIZ - 1). */
const IFNAME = /^[a-z][a-z0-9_-]{0,14}$/;
/** nft identifiers: no '-', so a table name is always usable unquoted. */
const TABLE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export interface NetworkOptions {
  /** The Petri bridge, e.g. 'petri0'; at most 15 characters. */
  bridge: string;
  /** IPv4 CIDR of the sandboxes, e.g. '10.213.0.0/16' (the default); its first address is the gateway, on the bridge. */
  subnet: string;
  /** TCP ports on the gateway that sandboxes may reach (egress proxy, mail relay, add-ons). */
  hostPorts: number[];
  /** Services elsewhere that sandboxes reach at a port of the gateway (the add-on servers):
   * the kernel rewrites the destination, so this keeps working while the control plane is
   * down. A loopback target needs route_localnet on the bridge; any other is masqueraded. */
  forwards?: ServiceForward[];
  /** nftables table (family inet); default `petri_<bridge>` ('-' becomes '_'). */
  table?: string;
}

export interface ServiceForward {
  /** The port on the gateway that sandboxes connect to. */
  port: number;
  /** Where the service really listens: an IPv4 address and port. */
  to: { host: string; port: number };
}

export interface Subnet {
  /** e.g. '10.213.0.0/24', normalised. */
  cidr: string;
  network: number;
  prefix: number;
  /** The first address, on the bridge: where sandboxes reach the host. */
  gateway: string;
  broadcast: number;
}

/** Validated options with everything derived from them. */
export interface NetworkPlan {
  bridge: string;
  table: string;
  subnet: Subnet;
  hostPorts: number[];
  forwards: ServiceForward[];
}

export function parseIPv4(text: string): number {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) {
    throw new Error(`not an IPv4 address: '${text}'`);
  }
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function parseSubnet(cidr: string): Subnet {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr);
  const prefix = Number(match?.[2]);
  // /30 is the smallest with a gateway and one sandbox; /8 and shorter would be a mistake.
  if (!match || !(prefix >= 9 && prefix <= 30)) {
    throw new Error(
      `network subnet must be an IPv4 CIDR from /9 to /30, e.g. '10.213.0.0/24', got '${cidr}'`,
    );
  }
  const size = 2 ** (32 - prefix);
  const address = parseIPv4(match[1]!);
  if (address % size !== 0) {
    throw new Error(
      `network subnet '${cidr}' has host bits set; did you mean '${formatIPv4(address - (address % size))}/${prefix}'?`,
    );
  }
  return {
    cidr: `${formatIPv4(address)}/${prefix}`,
    network: address,
    prefix,
    gateway: formatIPv4(address + 1),
    broadcast: address + size - 1,
  };
}

export function networkPlan(opts: NetworkOptions): NetworkPlan {
  if (!IFNAME.test(opts.bridge)) {
    throw new Error(`network bridge must match ${IFNAME} (at most 15 characters), got '${opts.bridge}'`);
  }
  const table = opts.table ?? `petri_${opts.bridge.replace(/-/g, '_')}`;
  if (!TABLE.test(table)) throw new Error(`nft table name must match ${TABLE}, got '${table}'`);
  for (const port of opts.hostPorts) {
    if (!isPort(port)) {
      throw new Error(`network hostPorts must be TCP ports from 1 to 65535, got ${port}`);
    }
  }
  const hostPorts = [...new Set(opts.hostPorts)].sort((a, b) => a - b);
  const forwards = [...(opts.forwards ?? [])].sort((a, b) => a.port - b.port);
  for (const f of forwards) {
    if (!isPort(f.port) || !isPort(f.to.port)) {
      throw new Error(`network forwards need TCP ports from 1 to 65535, got ${f.port} -> ${f.to.port}`);
    }
    parseIPv4(f.to.host);
    if (hostPorts.includes(f.port) || forwards.filter((g) => g.port === f.port).length > 1) {
      throw new Error(`gateway port ${f.port} is given twice (host ports and forwards must differ)`);
    }
  }
  return { bridge: opts.bridge, table, subnet: parseSubnet(opts.subnet), hostPorts, forwards };
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535;
}

/** Whether a forward's target is on the host's loopback (needs route_localnet on the bridge). */
export function isLoopback(host: string): boolean {
  return host.startsWith('127.');
}

/** Named counters of what the ruleset dropped, for the platform to report. */
export const DROP_COUNTERS = {
  /** Sandboxes trying a host port (or address) they were not given. */
  input: 'sandbox_to_host_dropped',
  /** Sandboxes trying to go anywhere else (the outside world, another sandbox via the host). */
  forward: 'sandbox_forward_dropped',
} as const;

/** The whole table, replaced atomically by one `nft -f` (the add + delete + define idiom:
 * one transaction, so there is never a moment without rules). Only traffic of our bridge
 * is judged; every chain's policy is accept, so the rest of the host is left to its own
 * firewall. No br_netfilter is needed: sandboxes cannot reach each other at L2 because
 * their bridge ports are isolated, and everything they send to or through the host is IP
 * traffic the inet hooks see on the bridge. */
export function renderRuleset(plan: NetworkPlan): string {
  const br = `"${plan.bridge}"`;
  const ports = plan.hostPorts.length === 0 ? undefined : `{ ${plan.hostPorts.join(', ')} }`;
  const gw = plan.subnet.gateway;
  const remote = plan.forwards.filter((f) => !isLoopback(f.to.host));
  const nat =
    plan.forwards.length === 0
      ? []
      : [
          '',
          '\t# Add-on servers: a port of the gateway leads to where the server really listens.',
          '\tchain prerouting {',
          '\t\ttype nat hook prerouting priority dstnat; policy accept;',
          ...plan.forwards.map(
            (f) =>
              `\t\tiifname ${br} ip daddr ${gw} tcp dport ${f.port} dnat ip to ${f.to.host}:${f.to.port}`,
          ),
          '\t}',
          ...(remote.length === 0
            ? []
            : [
                '',
                '\tchain postrouting {',
                '\t\ttype nat hook postrouting priority srcnat; policy accept;',
                `\t\tip saddr ${plan.subnet.cidr} ct status dnat oifname != ${br} masquerade`,
                '\t}',
              ]),
        ];
  // Exactly the connections our own prerouting rules rewrote (their original and their new
  // destination), never one another DNAT on the host (a container's published port) made.
  const rewritten = (f: ServiceForward) =>
    `ip daddr ${f.to.host} tcp dport ${f.to.port} ct original ip daddr ${gw} ct original proto-dst ${f.port}`;
  const forwarded = plan.forwards
    .filter((f) => isLoopback(f.to.host))
    .map((f) => `\t\tiifname ${br} ${rewritten(f)} accept`);
  return [
    `table inet ${plan.table}`,
    `delete table inet ${plan.table}`,
    `table inet ${plan.table} {`,
    `\tcounter ${DROP_COUNTERS.input} {`,
    '\t}',
    '',
    `\tcounter ${DROP_COUNTERS.forward} {`,
    '\t}',
    '',
    '\t# Sandboxes to the host: only the platform services on the gateway.',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${br} ct state established,related accept`,
    ...(ports ? [`\t\tiifname ${br} ip daddr ${gw} tcp dport ${ports} accept`] : []),
    ...forwarded,
    // Path MTU discovery and "port unreachable" answers to our own connections are
    // related, so accepted above; everything else, IPv6 included, ends here.
    `\t\tiifname ${br} counter name ${DROP_COUNTERS.input} drop`,
    '\t}',
    '',
    '\t# Nothing is routed to, from or between sandboxes, even with ip_forward on (but a\n\t# connection to a remote add-on server, rewritten in prerouting).',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    // Both directions of a sandbox's connection to a remote add-on server.
    ...remote.map((f) => `\t\tiifname ${br} ${rewritten(f)} accept`),
    // Their answers: the original tuple is the sandbox's, whichever way the packet goes.
    ...remote.map(
      (f) =>
        `\t\toifname ${br} meta l4proto tcp ct original ip saddr ${plan.subnet.cidr} ct original ip daddr ${gw} ct original proto-dst ${f.port} ct state established,related accept`,
    ),
    `\t\tiifname ${br} counter name ${DROP_COUNTERS.forward} drop`,
    `\t\toifname ${br} drop`,
    '\t}',
    '',
    '\t# The host (the router, the control plane) reaches sandboxes on any port.',
    '\tchain output {',
    '\t\ttype filter hook output priority filter; policy accept;',
    `\t\toifname ${br} ip daddr ${plan.subnet.cidr} accept`,
    '\t}',
    ...nat,
    '}',
    '',
  ].join('\n');
}

/** What a sandbox runs on: 'instance' ids, task ids and one-off ids may coincide. */
/** 'spare': a namespace made ahead of the instance that will take it (SandboxNetwork.spares). */
export type SandboxKind = 'instance' | 'task' | 'run' | 'spare';

export interface Attachment {
  kind: SandboxKind;
  id: string;
  /** Under /run/netns; survives the control plane, like the instance. */
  netns: string;
  /** The bridge end of the veth pair (the other end is eth0 in the namespace). */
  hostVeth: string;
  /** The sandbox's address in the subnet. */
  address: string;
  /** What the sandbox is for (the driver's sandboxAt() answers with them). */
  labels?: SandboxLabels;
  /** A spare's, once made whole: one without it is being made, or was cut off halfway. */
  ready?: boolean;
}

/** Short, stable names for a sandbox's namespace and veth: interface names are 15 bytes at
 * most and ids are up to 128. The scope (the driver's state dir) keeps two drivers with
 * the same ids on one host (test suites, a second control plane) apart. */
export function attachmentNames(
  scope: string,
  kind: SandboxKind,
  id: string,
): { netns: string; hostVeth: string } {
  const hash = createHash('sha256').update(`${scope}\0${kind}\0${id}`).digest('hex').slice(0, 10);
  return { netns: `petri-${hash}`, hostVeth: `pv${hash}` };
}

/** A free host address (not the network, the gateway, the broadcast nor one in use): the
 * first after `after` (round robin), else the lowest. Round robin keeps a just-freed
 * address out of use for as long as possible, so nothing that still remembers the old
 * instance (a neighbour cache, a connection in a pool) meets a new one. Numbers, not
 * strings, in the loop: a /16 has 65,533 addresses to look through when nearly full. */
export function allocateAddress(subnet: Subnet, inUse: Iterable<string>, after?: string): string {
  const used = new Set<number>();
  for (const address of inUse) used.add(parseIPv4(address));
  const first = subnet.network + 2;
  const count = subnet.broadcast - first;
  const afterN = after === undefined ? undefined : parseIPv4(after);
  const start = afterN !== undefined && afterN >= first && afterN < subnet.broadcast ? afterN + 1 - first : 0;
  for (let i = 0; i < count; i++) {
    const address = first + ((start + i) % count);
    if (!used.has(address)) return formatIPv4(address);
  }
  throw new Error(
    `no free address left in ${subnet.cidr} (${count} sandboxes); stop some instances or configure a larger network.subnet`,
  );
}

/** A fixed, locally administered unicast MAC for the bridge, from its name. */
export function bridgeMac(bridge: string): string {
  const hash = createHash('sha256').update(bridge).digest();
  return ['02', ...[...hash.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** argv lists that create the bridge with the gateway address, idempotently (each may run
 * again on an existing bridge), after an `ip link add NAME type bridge` if it is missing. */
export function bridgeCommands(plan: NetworkPlan): string[][] {
  return [
    // A bridge takes the lowest MAC of its ports unless given one: as instances come and
    // go its MAC would change, and every sandbox's neighbour entry for the gateway would
    // point at a MAC that is gone, stalling the router's connections for seconds.
    [IP, 'link', 'set', 'dev', plan.bridge, 'address', bridgeMac(plan.bridge)],
    [IP, 'address', 'replace', `${plan.subnet.gateway}/${plan.subnet.prefix}`, 'dev', plan.bridge],
    [IP, 'link', 'set', 'dev', plan.bridge, 'up'],
  ];
}

/** Commands that give a fresh namespace its veth pair, address and default route: two
 * `ip -batch` runs (the host's side, then the namespace's), since every process spawned
 * here is time a woken app's first visitor waits. */
export function attachCommands(plan: NetworkPlan, a: Attachment): { argv: string[]; input: string }[] {
  const host = [
    ['netns', 'add', a.netns],
    ['link', 'add', a.hostVeth, 'type', 'veth', 'peer', 'name', SANDBOX_IFNAME, 'netns', a.netns],
    ['link', 'set', 'dev', a.hostVeth, 'master', plan.bridge],
    // Isolated ports only talk to the bridge itself (the host), never to each other: one
    // sandbox cannot reach another, or spoof its ARP, below the firewall.
    ['link', 'set', 'dev', a.hostVeth, 'type', 'bridge_slave', 'isolated', 'on'],
    ['link', 'set', 'dev', a.hostVeth, 'up'],
    // A reused address has a new MAC: forget the old one rather than wait for the host's
    // neighbour entry to go stale (seconds of failed connections from the router).
    ['neigh', 'flush', 'to', a.address, 'dev', plan.bridge],
  ];
  const sandbox = [
    ['link', 'set', 'dev', 'lo', 'up'],
    ['address', 'add', `${a.address}/${plan.subnet.prefix}`, 'dev', SANDBOX_IFNAME],
    ['link', 'set', 'dev', SANDBOX_IFNAME, 'up'],
    ['route', 'add', 'default', 'via', plan.subnet.gateway],
  ];
  const batch = (lines: string[][]) => `${lines.map((l) => l.join(' ')).join('\n')}\n`;
  return [
    { argv: [IP, '-batch', '-'], input: batch(host) },
    { argv: [IP, '-n', a.netns, '-batch', '-'], input: batch(sandbox) },
  ];
}

/** The file nsenter --net joins. */
export function netnsPath(netns: string): string {
  return `${NETNS_DIR}/${netns}`;
}
