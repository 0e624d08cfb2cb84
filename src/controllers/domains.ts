// Verification of custom domains (issue 20): the router serves each claimed domain's token at
// /.well-known/petri-domain/ID on every host, and this loop checks that the domain leads
// there: it resolves the name (domains.resolver, else the system's DNS), and only if an
// address it resolves to is one of the platform's own (domains.addresses, else the router's
// bind address and the host's interfaces) does it GET http://HOST:verifyPort/.well-known/...
// from that address, with a short timeout and a small body cap. So a claim can never make
// Petri fetch a URL of someone else's, internal or not: the address is ours, the port the
// router's, the path fixed. When a domain starts or stops routing the reconciler is nudged.
// How often checks come: DOMAIN_CHECKS in domain/domains.ts.

import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import net from 'node:net';
import type { Logger } from 'pino';
import {
  claimedDomains,
  domainsDue,
  isPrivateAddress,
  platformAddresses,
  recordDomainCheck,
  verificationPath,
} from '../domain/domains.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { Loop } from '../lib/loop.js';
import type { Router } from '../router/router.js';
import type { Store } from '../store/db.js';

/** Time for one DNS lookup (each server tried twice) and for the router's answer. */
const DNS_TIMEOUT_MS = 2000;
const FETCH_TIMEOUT_MS = 5000;
/** The token is 32 characters: an answer longer than this is not the router's. */
const MAX_BODY_BYTES = 1024;
/** Checks at a time (each waits on DNS and one request at most). */
const CONCURRENCY = 8;
/** Checks in one pass (4 rounds of CONCURRENCY: at most some 30 s with every one timing out). */
const MAX_CHECKS_PER_PASS = 32;
/** A new claim is seen within this; a pass costs two small queries when nothing is due. */
const PASS_MS = 2000;

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

  constructor(private readonly deps: DomainVerifierDeps) {
    this.loop = new Loop({
      what: 'checking custom domains',
      pass: () => this.pass(),
      intervalMs: PASS_MS,
      logger: deps.logger,
    });
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One pass now (tests). */
  checkNow(): Promise<void> {
    return this.loop.runNow();
  }

  private async pass(): Promise<void> {
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
    // The most overdue first, a bounded number a pass: a new claim's token is served within
    // a pass or so however many checks wait (each may take its timeouts).
    const due = (await domainsDue(db))
      .filter((d) => wanted.has(verificationPath(d.id)))
      .slice(0, MAX_CHECKS_PER_PASS);
    if (due.length === 0) return;
    const options = {
      domain: config.domain,
      addresses: platformAddresses(config),
      port: config.domains.verifyPort,
      resolver: config.domains.resolver,
    };
    let changed = false;
    for (let i = 0; i < due.length; i += CONCURRENCY) {
      await Promise.all(
        due.slice(i, i + CONCURRENCY).map(async (d) => {
          const outcome = await checkDomain(d, options);
          if (await recordDomainCheck(db, d.id, outcome)) {
            changed = true;
            this.deps.logger.info(
              { host: d.host, ...(outcome.ok ? {} : { reason: outcome.reason }) },
              outcome.ok ? 'custom domain verified' : 'custom domain no longer verified',
            );
          }
        }),
      );
    }
    if (changed) this.deps.nudge();
  }
}

export interface CheckOptions {
  /** The platform's domain: a CNAME into it must name the app's own host. */
  domain: string;
  /** The platform's addresses: the only ones ever connected to. */
  addresses: string[];
  port: number;
  /** DNS servers ("IP" or "IP:PORT"); default: the system's. */
  resolver?: string[];
}

/** Whether HOST leads to this platform's router: resolved to one of its addresses, where the
 * router answers the domain's verification path with its token. A name that is a CNAME to
 * another app's host is that app's, and fails: otherwise a name someone points at their app
 * could be claimed by anyone, and verified, while it is not claimed. Never throws. */
export async function checkDomain(
  domain: { id: number; host: string; token: string; app: string },
  opts: CheckOptions,
): Promise<CheckOutcome> {
  const ours = new Set(opts.addresses.map(canonicalIp));
  if (ours.size === 0) {
    return fail("no address of this platform is known: set domains.addresses in Petri's config");
  }
  const own = `${domain.app}.${opts.domain}`;
  const target = await cnameOf(domain.host, opts.resolver);
  if (
    target !== undefined &&
    target !== own &&
    (target === opts.domain || target.endsWith(`.${opts.domain}`))
  ) {
    return fail(`${domain.host} is a CNAME to ${target}, not to this app's ${own}: point it at ${own}`);
  }
  const resolved = await resolve(domain.host, opts.resolver);
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
  return fetchToken(domain, address, opts.port);
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

function resolverOf(servers: string[] | undefined): Resolver {
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
  if (servers) resolver.setServers(servers);
  return resolver;
}

/** The name HOST is a CNAME to (lower case, no trailing dot), if it is one. A failed lookup
 * counts as none: the address lookup that follows fails the same way, saying so. */
async function cnameOf(host: string, servers: string[] | undefined): Promise<string | undefined> {
  try {
    const [target] = await resolverOf(servers).resolveCname(host);
    return target?.toLowerCase().replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

async function resolve(
  host: string,
  servers: string[] | undefined,
): Promise<{ addresses: string[] } | { reason: string }> {
  const resolver = resolverOf(servers);
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

/** GET the verification path from the platform's own address, Host: the domain. */
function fetchToken(
  domain: { id: number; host: string; token: string },
  address: string,
  port: number,
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
        timeout: FETCH_TIMEOUT_MS,
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
    req.on('timeout', () =>
      done(fail(`Petri's router did not answer at ${where} within ${FETCH_TIMEOUT_MS / 1000} s`)),
    );
    req.on('error', (err) => {
      const code = (err as NodeJS.ErrnoException).code;
      done(fail(`Petri's router did not answer at ${where} (${code ?? errorMessage(err)})`));
    });
  });
}
