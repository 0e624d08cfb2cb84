// Verification of custom domains (issue 20). A claim verifies when three things hold:
// - its name's DNS holds the claim's token in a TXT record at _petri-challenge.HOST: the proof
//   that whoever claimed it controls the name (pointing a name at the platform proves only
//   where it leads, and anyone may claim a name someone else pointed here);
// - no hop of its CNAME chain is another app's host or another app's verified domain (such a
//   name leads to that app);
// - it leads to the platform: it resolves (domains.resolver, else the system's DNS) to one of
//   the platform's own addresses, and only then is http://HOST:verifyPort/.well-known/
//   petri-domain/ID fetched from that address, where the router serves each claim's token.
// So a claim can never make Petri fetch a URL of someone else's, internal or not: the address
// is ours, the port the router's, the path fixed. Each check has a deadline (DNS included),
// and checks run a few at a time without waiting for one another: one team's claims whose DNS
// never answers cannot hold back another team's. When a domain starts or stops routing the
// reconciler is nudged. How often checks come: DOMAIN_CHECKS in domain/domains.ts.

import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import {
  challengeName,
  claimedDomains,
  type DueDomain,
  domainsDue,
  isPrivateAddress,
  platformAddresses,
  recordDomainCheck,
  verificationPath,
  verifiedDomainApps,
} from '../domain/domains.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { Loop, type PassOutcome } from '../lib/loop.js';
import type { Router } from '../router/router.js';
import type { Store } from '../store/db.js';

/** Nudges closer together than this wait (see Loop's nudgeGapMs). */
const NUDGE_GAP_MS = 1000;
/** One check, DNS and the router's answer together, ends within this: a name whose DNS
 * drops Petri's queries costs a check slot this long, no longer. */
const CHECK_DEADLINE_MS = 5000;
/** Each DNS query: one try this long, then one more (c-ares waits longer on the second). */
const DNS_TIMEOUT_MS = 1000;
const DNS_TRIES = 2;
/** CNAMEs followed from a name; a longer chain fails (real ones have one or two). */
const MAX_CNAME_HOPS = 8;
/** The token is 32 characters: an answer longer than this is not the router's. */
const MAX_BODY_BYTES = 1024;
/** Checks at a time, and the most of them one team's claims take: another team's claim
 * always finds a free slot within a pass. */
const CONCURRENCY = 8;
const PER_TEAM = 4;
/** A new claim is seen within this; a pass costs two small queries when nothing is due. */
const PASS_MS = 2000;
/** With no check due or under way, passes back off to this far apart: an unverified claim's
 * first retry comes 15 s after a failure (DOMAIN_CHECKS). With no claim at all, to a minute:
 * nothing is due until a claim is made, which nudges a pass. */
const QUIET_MAX_MS = 15_000;
const UNCLAIMED_QUIET_MAX_MS = 60_000;

export interface DomainVerifierDeps {
  db: Store;
  config: PetriConfig;
  router: Pick<Router, 'setWellKnown' | 'deleteWellKnown'>;
  logger: Logger;
  /** A domain started or stopped routing: the reconciler applies routes now. */
  nudge: () => void;
}

export type CheckOutcome = { ok: true } | { ok: false; reason: string };

export class DomainVerifier {
  private readonly loop: Loop;
  /** What this control plane has had the router serve, path -> token. */
  private readonly served = new Map<string, string>();
  /** Checks under way, by domain id, with their team. */
  private readonly checking = new Map<number, { teamId: number; done: Promise<void> }>();

  constructor(private readonly deps: DomainVerifierDeps) {
    this.loop = new Loop({
      what: 'checking custom domains',
      pass: () => this.pass(),
      intervalMs: PASS_MS,
      quietMaxMs: () => (this.served.size === 0 ? UNCLAIMED_QUIET_MAX_MS : QUIET_MAX_MS),
      // Nudged by every API write: at most one pass a second however many come.
      nudgeGapMs: NUDGE_GAP_MS,
      logger: deps.logger,
    });
  }

  start(): void {
    this.loop.start();
  }

  /** No check starts after this; resolves once those under way have ended. */
  async stop(): Promise<void> {
    await this.loop.stop();
    await Promise.all([...this.checking.values()].map((c) => c.done));
  }

  /** One pass now, and the checks it started (tests). */
  async checkNow(): Promise<void> {
    await this.loop.runNow();
    await Promise.all([...this.checking.values()].map((c) => c.done));
  }

  /** A claim was made or removed: a pass soon. */
  nudge(): void {
    this.loop.nudge();
  }

  /** Serves the claims' tokens, then starts the due checks there is room for; it does not
   * wait for them (each one's end starts the next pass). Quiet with no check due or running. */
  private async pass(): Promise<PassOutcome | undefined> {
    const { db, router, config } = this.deps;
    // Tokens first: a claim is checked only once the router serves its token.
    const wanted = new Map((await claimedDomains(db)).map((d) => [verificationPath(d.id), d.token]));
    for (const [path, token] of wanted) {
      if (this.served.get(path) === token) continue;
      await router.setWellKnown(path, token);
      this.served.set(path, token);
    }
    for (const path of [...this.served.keys()]) {
      if (wanted.has(path)) continue;
      await router.deleteWellKnown(path);
      this.served.delete(path);
    }
    if (wanted.size === 0 && this.checking.size === 0) return 'quiet';
    if (this.checking.size >= CONCURRENCY) return undefined;
    const due = (await domainsDue(db)).filter(
      (d) => wanted.has(verificationPath(d.id)) && !this.checking.has(d.id),
    );
    const picked = fairShare(due, [...this.checking.values()], CONCURRENCY - this.checking.size);
    if (picked.length === 0) return this.checking.size === 0 ? 'quiet' : undefined;
    const options: CheckOptions = {
      domain: config.domain,
      addresses: platformAddresses(config),
      port: config.domains.verifyPort,
      resolver: config.domains.resolver,
      verifiedDomains: await verifiedDomainApps(db),
    };
    for (const d of picked) {
      const done = this.check(d, options).finally(() => {
        this.checking.delete(d.id);
        this.loop.nudge();
      });
      this.checking.set(d.id, { teamId: d.teamId, done });
    }
    return undefined;
  }

  private async check(d: DueDomain, options: CheckOptions): Promise<void> {
    try {
      const outcome = await checkDomain(d, options);
      if (!(await recordDomainCheck(this.deps.db, d.id, outcome))) return;
      this.deps.logger.info(
        { host: d.host, ...(outcome.ok ? {} : { reason: outcome.reason }) },
        outcome.ok ? 'custom domain verified' : 'custom domain no longer verified',
      );
      this.deps.nudge();
    } catch (err) {
      this.deps.logger.warn({ host: d.host, err: errorMessage(err) }, 'checking a custom domain failed');
    }
  }
}

/** Up to `room` of the due claims, in their order, none of a team that already has PER_TEAM
 * under way (or picked). */
function fairShare(due: DueDomain[], running: { teamId: number }[], room: number): DueDomain[] {
  const load = new Map<number, number>();
  for (const r of running) load.set(r.teamId, (load.get(r.teamId) ?? 0) + 1);
  const picked: DueDomain[] = [];
  for (const d of due) {
    if (picked.length >= room) break;
    const n = load.get(d.teamId) ?? 0;
    if (n >= PER_TEAM) continue;
    load.set(d.teamId, n + 1);
    picked.push(d);
  }
  return picked;
}

export interface CheckOptions {
  /** The platform's domain: a CNAME into it must name the app's own host. */
  domain: string;
  /** The platform's addresses: the only ones ever connected to. */
  addresses: string[];
  port: number;
  /** DNS servers ("IP" or "IP:PORT"); default: the system's. */
  resolver?: string[];
  /** Verified custom domains, host -> app name: a CNAME chain through another app's leads to
   * that app. */
  verifiedDomains?: ReadonlyMap<string, string>;
  /** The whole check's deadline (default CHECK_DEADLINE_MS). */
  deadlineMs?: number;
}

/** Whether HOST is the claimant's and leads to this platform's router (see the top of this
 * file). Never throws; ends within the deadline, saying what it was waiting for. */
export async function checkDomain(
  domain: { id: number; host: string; token: string; app: string },
  opts: CheckOptions,
): Promise<CheckOutcome> {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  if (opts.resolver) resolver.setServers(opts.resolver);
  const abort = new AbortController();
  const step = { doing: `looking ${domain.host} up in DNS` };
  const deadlineMs = opts.deadlineMs ?? CHECK_DEADLINE_MS;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<CheckOutcome>((resolve) => {
    timer = setTimeout(
      () => resolve(fail(`no answer within ${deadlineMs / 1000} s ${step.doing}; it is tried again`)),
      deadlineMs,
    );
  });
  try {
    return await Promise.race([check(domain, opts, resolver, abort.signal, step), deadline]);
  } finally {
    clearTimeout(timer);
    abort.abort();
    resolver.cancel();
  }
}

async function check(
  domain: { id: number; host: string; token: string; app: string },
  opts: CheckOptions,
  resolver: Resolver,
  signal: AbortSignal,
  step: { doing: string },
): Promise<CheckOutcome> {
  const ours = new Set(opts.addresses.map(canonicalIp));
  if (ours.size === 0) {
    return fail("no address of this platform is known: set domains.addresses in Petri's config");
  }
  const chain = await cnameChain(domain.host, resolver, step);
  if ('reason' in chain) return fail(chain.reason);
  const elsewhere = leadsElsewhere(domain, chain.hops, opts);
  if (elsewhere) return fail(elsewhere);
  step.doing = `looking ${domain.host} up in DNS`;
  const [resolved, txt] = await Promise.all([
    resolve(domain.host, resolver),
    txtRecords(challengeName(domain.host), resolver),
  ]);
  if ('reason' in resolved) return fail(resolved.reason);
  const mine = resolved.addresses.filter((a) => ours.has(canonicalIp(a)));
  const platform = [...ours].join(', ');
  if (resolved.addresses.length === 0) {
    return fail(`${domain.host} has no A or AAAA record yet: point it at this platform (${platform})`);
  }
  const address = mine[0];
  if (address === undefined) {
    return fail(
      `${domain.host} points to ${shown(resolved.addresses)}, not to this platform (${platform}): fix its DNS record`,
    );
  }
  const proof = proofOf(domain, txt);
  if (proof) return fail(proof);
  step.doing = `waiting for Petri's router at ${address}`;
  return fetchToken(domain, address, opts.port, signal);
}

/** The names HOST is a CNAME to, hop by hop (lower case, no trailing dot); empty when it is
 * none. A lookup that fails other than "no such record" fails the check, to be tried again:
 * a chain must be seen whole. */
async function cnameChain(
  host: string,
  resolver: Resolver,
  step: { doing: string },
): Promise<{ hops: string[] } | { reason: string }> {
  const hops: string[] = [];
  let name = host;
  for (;;) {
    step.doing = `looking up the CNAME of ${name}`;
    let target: string | undefined;
    try {
      [target] = await resolver.resolveCname(name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENODATA' || code === 'ENOTFOUND') return { hops };
      return { reason: `looking ${name} up in DNS failed (${code ?? errorMessage(err)}); it is tried again` };
    }
    if (target === undefined) return { hops };
    const next = target.toLowerCase().replace(/\.$/, '');
    if (next === host || hops.includes(next)) {
      return { reason: `${host} is a CNAME to ${[...hops, next].join(' -> ')}: a loop, fix its DNS records` };
    }
    hops.push(next);
    if (hops.length > MAX_CNAME_HOPS) {
      return {
        reason: `${host} is a CNAME to a chain of more than ${MAX_CNAME_HOPS} names: point it at the app's host directly`,
      };
    }
    name = next;
  }
}

/** Why a CNAME chain leads to another app (a hop that is another app's host, or another
 * app's verified domain), if it does. A chain reaching into the platform's domain ends there. */
function leadsElsewhere(
  domain: { host: string; app: string },
  hops: string[],
  opts: CheckOptions,
): string | undefined {
  const own = `${domain.app}.${opts.domain}`;
  for (const [i, hop] of hops.entries()) {
    const path = hops.slice(0, i + 1).join(' -> ');
    if (hop === own) return undefined;
    if (hop === opts.domain || hop.endsWith(`.${opts.domain}`)) {
      return `${domain.host} is a CNAME to ${path}, not to this app's ${own}: point it at ${own}`;
    }
    const owner = opts.verifiedDomains?.get(hop);
    if (owner !== undefined && owner !== domain.app) {
      return `${domain.host} is a CNAME to ${path}, another app's domain: point it at ${own}`;
    }
  }
  return undefined;
}

/** Why the claim's TXT record does not prove the name is the claimant's, if it does not. */
function proofOf(
  domain: { host: string; token: string },
  txt: { records: string[] } | { reason: string },
): string | undefined {
  if ('reason' in txt) return txt.reason;
  if (txt.records.includes(domain.token)) return undefined;
  const record = `${challengeName(domain.host)} TXT "${domain.token}"`;
  if (txt.records.length === 0) {
    return `${challengeName(domain.host)} has no TXT record: add ${record}, which proves the name is yours`;
  }
  return `${challengeName(domain.host)} has no TXT record with this claim's token (${txt.records.length} other${txt.records.length === 1 ? '' : 's'}): add ${record}`;
}

/** The TXT records of NAME, each one's strings joined; none when it has none. */
async function txtRecords(
  name: string,
  resolver: Resolver,
): Promise<{ records: string[] } | { reason: string }> {
  try {
    return { records: (await resolver.resolveTxt(name)).map((chunks) => chunks.join('').trim()) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENODATA' || code === 'ENOTFOUND') return { records: [] };
    return { reason: `looking ${name} up in DNS failed (${code ?? errorMessage(err)}); it is tried again` };
  }
}

/** The addresses a name resolves to, as a reason may show them: private ones unnamed (the
 * platform's resolver may know internal names, and a claim must not be a way to read what
 * they resolve to). */
function shown(addresses: string[]): string {
  const open = addresses.filter((a) => !isPrivateAddress(a));
  const hidden = addresses.length - open.length;
  return [
    ...open,
    ...(hidden > 0 ? [`${hidden === 1 ? 'a private address' : `${hidden} private addresses`}`] : []),
  ].join(', ');
}

function fail(reason: string): CheckOutcome {
  return { ok: false, reason };
}

function canonicalIp(ip: string): string {
  return net.isIPv6(ip) ? new net.SocketAddress({ address: ip, family: 'ipv6' }).address : ip;
}

async function resolve(
  host: string,
  resolver: Resolver,
): Promise<{ addresses: string[] } | { reason: string }> {
  const answers = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)]);
  const addresses: string[] = [];
  for (const answer of answers) {
    if (answer.status === 'fulfilled') {
      addresses.push(...answer.value);
      continue;
    }
    const code = (answer.reason as NodeJS.ErrnoException).code;
    // No such name, or no record of this type: an empty answer, not a failure.
    if (code === 'ENODATA' || code === 'ENOTFOUND') continue;
    return {
      reason: `looking ${host} up in DNS failed (${code ?? errorMessage(answer.reason)}); it is tried again`,
    };
  }
  return { addresses };
}

/** GET the verification path from the platform's own address, Host: the domain; given up
 * when the check's deadline aborts it. */
function fetchToken(
  domain: { id: number; host: string; token: string },
  address: string,
  port: number,
  signal: AbortSignal,
): Promise<CheckOutcome> {
  const where = `${net.isIPv6(address) ? `[${address}]` : address}:${port}`;
  return new Promise((resolve) => {
    let settled = false;
    const done = (outcome: CheckOutcome) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve(outcome);
    };
    const req = http.get(
      {
        host: address,
        port,
        path: verificationPath(domain.id),
        headers: {
          host: port === 80 ? domain.host : `${domain.host}:${port}`,
          'user-agent': 'Petri domain check',
        },
        agent: false,
        signal,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            done(fail(`${where} answered something else than the domain's token (a long body)`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8').trim();
          if (res.statusCode === 200 && body === domain.token) return done({ ok: true });
          done(
            fail(
              `${where} answered ${res.statusCode} without the domain's token: is something other than Petri's router answering on port ${port}?`,
            ),
          );
        });
        res.on('error', (err) => done(fail(`reading the answer of ${where} failed: ${errorMessage(err)}`)));
      },
    );
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      done(fail(`Petri's router did not answer at ${where} (${code ?? errorMessage(err)})`));
    });
  });
}
