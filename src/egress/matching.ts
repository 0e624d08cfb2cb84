// The grammar of egress patterns (petri.toml `[network] egress = [...]`) and whether a
// request's target matches one. Pure, so petri.toml validation and the proxy share one
// definition: a pattern the validator accepts is exactly what the proxy lets through.
import { isIP } from 'node:net';
import { UserError } from '../lib/errors.js';

export interface EgressPattern {
  kind: 'name' | 'wildcard' | 'ipv4' | 'ipv6';
  /** Lower case, no trailing dot; for a wildcard the domain after `*.`; IPv6 canonical, without brackets. */
  host: string;
  /** The port the pattern names, or 80 and 443 when it names none. */
  ports: readonly number[];
}

/** A request's destination, normalised: lower case, no trailing dot, IPv6 without brackets. */
export interface EgressTarget {
  host: string;
  port: number;
}

const DEFAULT_PORTS: readonly number[] = [80, 443];
// Letters, digits, hyphen (RFC 1123) and underscore, which some real service names use.
const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;
const EXAMPLE =
  'expected host:port, *.domain:port or a bare host (ports 80 and 443), e.g. "api.example.org:443"';

/** Parses a pattern, or throws a UserError naming it and saying what is wrong. */
export function parseEgressPattern(pattern: string): EgressPattern {
  const bad = (why: string) =>
    new UserError('bad_request', `egress pattern ${JSON.stringify(pattern)} ${why}; ${EXAMPLE}`);
  if (typeof pattern !== 'string' || pattern === '') throw bad('is empty');
  if (pattern.length > 300) throw bad('is too long');
  if (/[\s\x00-\x1f\x7f]/.test(pattern)) throw bad('contains white space or control characters');
  if (/[^\x20-\x7e]/.test(pattern)) {
    throw bad('contains non-ASCII characters (write an internationalised name in punycode, xn--...)');
  }
  if (pattern.includes('://')) throw bad('is a URL; write only the host and port');
  if (/[/?#@]/.test(pattern)) throw bad("contains '/', '?', '#' or '@'; write only the host and port");
  const p = pattern.toLowerCase();

  let host: string;
  let portText: string | undefined;
  if (p.startsWith('[')) {
    const close = p.indexOf(']');
    if (close < 0) throw bad('opens an IPv6 bracket it does not close');
    host = p.slice(1, close);
    const rest = p.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) throw bad('has text after the IPv6 address');
    portText = rest === '' ? undefined : rest.slice(1);
    if (host.includes('%') || isIP(host) !== 6)
      throw bad('has brackets around something that is not an IPv6 address');
  } else {
    const colons = p.split(':').length - 1;
    if (colons > 1)
      throw bad('has more than one colon (write IPv6 addresses in brackets, [2001:db8::1]:443)');
    const at = p.indexOf(':');
    host = at < 0 ? p : p.slice(0, at);
    portText = at < 0 ? undefined : p.slice(at + 1);
  }
  const ports = portText === undefined ? DEFAULT_PORTS : [parsePort(portText, bad)];

  if (isIP(host) === 6) return { kind: 'ipv6', host: canonicalIPv6(host), ports };
  if (isIP(host) === 4) return { kind: 'ipv4', host, ports };
  if (host.startsWith('*.')) {
    const domain = stripDot(host.slice(2));
    if (!isHostName(domain)) throw bad(`has a wildcard over '${domain}', which is not a valid host name`);
    // `*.com` would open a whole top-level domain: a wildcard needs a registered domain under it.
    if (!domain.includes('.'))
      throw bad('has a wildcard over a top-level domain; name the domain, *.example.net');
    return { kind: 'wildcard', host: domain, ports };
  }
  if (host.includes('*')) throw bad("has a '*' that is not the whole first label (write *.example.net)");
  const name = stripDot(host);
  if (name === '') throw bad('has no host');
  if (!isHostName(name)) {
    throw bad(
      /^[0-9.]+$/.test(name)
        ? 'is not a valid IPv4 address'
        : `has '${name}', which is not a valid host name`,
    );
  }
  return { kind: 'name', host: name, ports };
}

/** For petri.toml validation: throws a UserError naming a malformed pattern, else returns it normalised. */
export function validateEgressPattern(pattern: string): string {
  return formatEgressPattern(parseEgressPattern(pattern));
}

export function formatEgressPattern(p: EgressPattern): string {
  const host = p.kind === 'wildcard' ? `*.${p.host}` : p.kind === 'ipv6' ? `[${p.host}]` : p.host;
  return p.ports === DEFAULT_PORTS ? host : `${host}:${p.ports[0]}`;
}

/**
 * Whether any pattern allows the target. A malformed pattern matches nothing (fail closed):
 * patterns are validated at deploy, so one that is not here came from somewhere it should not.
 */
export function isEgressAllowed(patterns: readonly string[], target: EgressTarget): boolean {
  for (const text of patterns) {
    let pattern: EgressPattern;
    try {
      pattern = parseEgressPattern(text);
    } catch {
      continue;
    }
    if (matchesEgressPattern(pattern, target)) return true;
  }
  return false;
}

export function matchesEgressPattern(pattern: EgressPattern, target: EgressTarget): boolean {
  if (!pattern.ports.includes(target.port)) return false;
  const host = target.host.toLowerCase();
  switch (pattern.kind) {
    // An IP literal in a request matches only the same literal: a name pattern must never
    // let an app skip the name (and its resolution checks) by sending an address.
    case 'ipv4':
      return isIP(host) === 4 && host === pattern.host;
    case 'ipv6':
      return isIP(host) === 6 && canonicalIPv6(host) === pattern.host;
    case 'name':
      return isIP(host) === 0 && stripDot(host) === pattern.host;
    case 'wildcard':
      // Any subdomain, at any depth, but not the apex: `*.example.net` is not `example.net`.
      return isIP(host) === 0 && stripDot(host).endsWith(`.${pattern.host}`);
  }
}

/**
 * A DNS host name: LDH labels, 253 characters at most, and a last label that starts with a
 * letter. The last rule refuses names a resolver would read as an IPv4 address in another
 * spelling (`2130706433`, `0x7f.1`, `127.1`), which must never pass for a host name.
 */
export function isHostName(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((l) => LABEL.test(l))) return false;
  return /^[a-z]/.test(labels[labels.length - 1] ?? '');
}

/** host:port as people write it, with brackets around IPv6. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function parsePort(text: string, bad: (why: string) => Error): number {
  // No leading zeros, so one port has one spelling in petri.toml and in the counters.
  if (!/^[1-9][0-9]{0,4}$/.test(text) || Number(text) > 65535) {
    throw bad(`has port '${text}', which is not a number from 1 to 65535`);
  }
  return Number(text);
}

function stripDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** The WHATWG URL parser's canonical IPv6 text (lower case, zeros compressed), without brackets. */
export function canonicalIPv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}
