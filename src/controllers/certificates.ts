// The certificate controller (issue 20): every few seconds it compares the hosts that want a
// certificate of their own with the store's certificates and converges, one host at a time:
// - wanted: in the acme mode the API host and every app's host (from the ACME directory);
//   custom domains once verified (from the directory whenever tls.acme is set, else from
//   Petri's local CA; the wildcard mode has none, which start() warns of);
// - a missing certificate is had and installed in the router (runtime API: no reload); one
//   within tls.renewBeforeDays of its expiry is renewed the same way (not before a third of
//   its life: see renewalTime);
// - a failed attempt is recorded with its reason and retried with a growing delay kept in the
//   store (so a restart neither hurries nor forgets it); a directory that is down, slow or
//   rate-limiting holds every ACME attempt for a while, not just the host's;
// - a host no longer wanted keeps its certificate a day (an app made again, a domain whose
//   check flapped), then the router drops it; a custom domain its app gave up, at once.
import type { Logger } from 'pino';
import {
  type Certificate,
  type CertificateFacts,
  claimedDomainHosts,
  forgetCertificate,
  listCertificates,
  markUnwanted,
  markWanted,
  recordCertificate,
  recordCertificateFailure,
  routedAppHosts,
} from '../domain/certificates.js';
import { claimedDomains, customDomainHttps } from '../domain/domains.js';
import { Backoff, backoffDelay } from '../lib/backoff.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { Loop, type PassOutcome } from '../lib/loop.js';
import type { Router } from '../router/router.js';
import type { Store } from '../store/db.js';
import type { CertificateSource } from '../store/schema.js';

/** Nudges closer together than this wait (see Loop's nudgeGapMs). */
const NUDGE_GAP_MS = 1000;
const DAY_MS = 86_400_000;
/** A pass reads two listings (apps, certificates) and acts only on what is due. */
const PASS_MS = 5000;
/** With nothing due or under way, passes back off to this far apart. Renewals are due days
 * ahead; a host that newly wants a certificate (an app routed, a domain verified) nudges a
 * pass, so its certificate still comes within seconds. */
const QUIET_MAX_MS = 60_000;
/** A host's failed attempts: 5 min, 10, 20 ... up to a day apart (Let's Encrypt allows 5
 * failed validations per host and hour). */
const HOST_RETRY_MS = 5 * 60_000;
const HOST_RETRY_MAX_MS = DAY_MS;
/** A directory in trouble is left alone 1 min, 2, 4 ... up to an hour. */
const DIRECTORY_RETRY_MS = 60_000;
const DIRECTORY_RETRY_MAX_MS = 3_600_000;
/** How long a host no longer wanted keeps its certificate in the router. */
const UNWANTED_GRACE_MS = DAY_MS;
/** Attempts at a time, and one per group (the platform's own hosts; each custom domain's
 * parent name): a tenant's names that validate slowly (its DNS sends the CA to a server that
 * trickles) hold one slot for minutes, never the platform's hosts or another's domains. */
const MAX_IN_FLIGHT = 4;

/** A certificate had, checked (its key is the leaf's, it covers the hosts, it is valid now). */
export interface ObtainedCertificate extends CertificateFacts {
  /** The chain, leaf first, then the private key: what the router serves. Never logged. */
  pem: string;
}

/** Where certificates come from: an ACME directory (src/tls/acme.ts) or Petri's local CA. An
 * error with `directoryTrouble: true` says the source itself is in trouble (unreachable, slow,
 * rate-limiting), not just this host. */
export interface CertificateObtainer {
  obtain(hosts: string[], signal?: AbortSignal): Promise<ObtainedCertificate>;
}

export interface CertificateDeps {
  db: Store;
  config: PetriConfig;
  router: Pick<Router, 'setCertificate' | 'removeCertificate'>;
  /** The ACME directory (undefined without tls.acme) and the local CA (custom domains get
   * their certificates from it when there is no tls.acme). */
  sources: Partial<Record<CertificateSource, CertificateObtainer>>;
  /** The verified custom domains (domainHostsWantingCertificates). */
  customHosts: () => Promise<string[]>;
  logger: Logger;
  now?: () => number;
}

export class CertificateController {
  private readonly loop: Loop;
  private readonly now: () => number;
  /** The ACME directory's trouble (unreachable, 5xx, 429): every ACME attempt waits it out. */
  private readonly directory: Backoff;
  /** Ends the attempt in flight when the server stops. */
  private readonly stopping = new AbortController();
  /** Certificates had but not yet in the router (its runtime API failed), by source and host:
   * installed again before anything is asked of the directory again, which rate-limits
   * duplicates. */
  private readonly uninstalled = new Map<string, ObtainedCertificate>();
  /** Attempts under way, by host, with their group. */
  private readonly inFlight = new Map<string, { group: string; done: Promise<void> }>();

  constructor(private readonly deps: CertificateDeps) {
    this.now = deps.now ?? Date.now;
    this.directory = new Backoff({
      initialMs: DIRECTORY_RETRY_MS,
      maxMs: DIRECTORY_RETRY_MAX_MS,
      now: this.now,
    });
    this.loop = new Loop({
      what: 'converging certificates',
      pass: () => this.pass(),
      intervalMs: PASS_MS,
      quietMaxMs: QUIET_MAX_MS,
      // Nudged by every API write: at most one pass a second however many come.
      nudgeGapMs: NUDGE_GAP_MS,
      logger: deps.logger,
    });
  }

  start(): void {
    this.warnUncertified().catch((err: unknown) =>
      this.deps.logger.warn({ err: errorMessage(err) }, 'could not count the custom domains'),
    );
    this.loop.start();
  }

  /** Custom domains that get no certificate here (the wildcard mode without tls.acme) are
   * said at start: their teams see it in `petri domains`, the operator in the log. */
  private async warnUncertified(): Promise<void> {
    const https = customDomainHttps(this.deps.config);
    if (https === null || https.certified) return;
    const claims = await claimedDomains(this.deps.db);
    if (claims.length === 0) return;
    this.deps.logger.warn(
      { domains: claims.length, examples: claims.slice(0, 5).map((c) => c.host) },
      `${claims.length} custom domain${claims.length === 1 ? ' is' : 's are'} claimed: ${https.note}`,
    );
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop.stop();
    await this.settled();
  }

  /** Passes now until one starts nothing, each after the attempts the last one started
   * (tests). */
  async tick(): Promise<void> {
    for (;;) {
      await this.loop.runNow();
      if (this.inFlight.size === 0) return;
      await this.settled();
    }
  }

  private async settled(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight.values()].map((f) => f.done));
  }

  /** Each host that wants a certificate of its own, and where from. */
  async wanted(): Promise<Map<string, CertificateSource>> {
    const { db, config } = this.deps;
    const wanted = new Map<string, CertificateSource>();
    // No HTTPS, no certificates.
    if (config.httpsPort === 0) return wanted;
    if (config.tls.mode === 'acme') {
      wanted.set(config.apiHost, 'acme');
      for (const host of await routedAppHosts(db, config.domain)) wanted.set(host, 'acme');
    }
    const custom: CertificateSource | undefined = config.tls.acme
      ? 'acme'
      : this.deps.sources['local-ca']
        ? 'local-ca'
        : undefined;
    if (custom)
      for (const host of await this.deps.customHosts()) if (!wanted.has(host)) wanted.set(host, custom);
    return wanted;
  }

  /** Hosts may want certificates they lack (an app routed, a domain verified): a pass soon. */
  nudge(): void {
    this.loop.nudge();
  }

  /** Quiet when no host is due and no attempt is under way (a directory in trouble keeps
   * due hosts waiting: not quiet, its backoff decides). */
  private async pass(): Promise<PassOutcome | undefined> {
    const { db } = this.deps;
    const at = new Date(this.now());
    const wanted = await this.wanted();
    const rows = new Map((await listCertificates(db)).map((r) => [r.host, r]));
    await this.forgetUnwanted(wanted, rows, at);
    // Missing ones first, then the soonest due: a host without any certificate of its own
    // is served the default one, which a browser refuses.
    const due: { host: string; source: CertificateSource; at: number }[] = [];
    for (const [host, source] of wanted) {
      const when = this.dueAt(rows.get(host), source);
      if (when <= at.getTime()) due.push({ host, source, at: when });
    }
    due.sort((a, b) => a.at - b.at || a.host.localeCompare(b.host));
    if (due.length === 0 && this.inFlight.size === 0) return 'quiet';
    for (const { host, source } of due) {
      if (this.stopping.signal.aborted || this.inFlight.size >= MAX_IN_FLIGHT) return undefined;
      if (this.inFlight.has(host)) continue;
      if (source === 'acme' && !this.directory.ready('directory')) continue;
      const group = this.groupOf(host);
      if ([...this.inFlight.values()].some((f) => f.group === group)) continue;
      // In the background: the next pass starts as this one ends (a nudge).
      const done = this.attempt(host, source).finally(() => {
        this.inFlight.delete(host);
        this.loop.nudge();
      });
      this.inFlight.set(host, { group, done });
    }
    return undefined;
  }

  /** The platform's own hosts are one group (attempted one at a time, as before any tenant's);
   * a custom domain's group is its last two labels (www.example.org: example.org). */
  private groupOf(host: string): string {
    const { domain, apiHost } = this.deps.config;
    if (host === apiHost || host === domain || host.endsWith(`.${domain}`)) return '';
    return host.split('.').slice(-2).join('.');
  }

  /** When the host's next attempt is due (ms): now when it has no certificate from where it
   * is wanted; after a failure, its delay; else at the renewal time. */
  private dueAt(row: Certificate | undefined, source: CertificateSource): number {
    if (!row || row.source !== source) return 0;
    if (row.failures > 0 && row.next_attempt_at !== null) return Date.parse(row.next_attempt_at);
    if (row.not_before === null || row.not_after === null) return 0;
    return renewalTime(row.not_before, row.not_after, this.deps.config.tls.renewBeforeDays);
  }

  private async attempt(host: string, source: CertificateSource): Promise<void> {
    const { db, router, logger } = this.deps;
    const at = new Date(this.now());
    try {
      const held = `${source} ${host}`;
      const had = this.uninstalled.get(held) ?? (await this.obtain(host, source));
      this.uninstalled.set(held, had);
      await router.setCertificate(host, had.pem);
      this.uninstalled.delete(held);
      await recordCertificate(db, host, source, had, at);
      if (source === 'acme') this.directory.succeeded('directory');
      logger.info(
        { host, source, issuer: had.issuer, notAfter: had.notAfter.toISOString() },
        'certificate installed',
      );
    } catch (err) {
      if (this.stopping.signal.aborted) return;
      const reason = errorMessage(err);
      if ((err as { directoryTrouble?: boolean }).directoryTrouble === true)
        this.directory.failed('directory');
      const failures = await recordCertificateFailure(db, host, source, reason, at, (n) =>
        backoffDelay(n, HOST_RETRY_MS, HOST_RETRY_MAX_MS),
      );
      logger.warn(
        { host, source, failures, reason },
        'getting a certificate failed; it is tried again later',
      );
    }
  }

  private async obtain(host: string, source: CertificateSource): Promise<ObtainedCertificate> {
    const from = this.deps.sources[source];
    if (!from)
      throw new Error(
        source === 'acme' ? 'no ACME directory is configured (tls.acme)' : `no ${source} source`,
      );
    return from.obtain([host], this.stopping.signal);
  }

  private forgetHeld(host: string): void {
    for (const source of ['acme', 'local-ca', 'wildcard'] as const)
      this.uninstalled.delete(`${source} ${host}`);
  }

  /** Marks hosts no longer wanted (and wanted again); a day after, their certificates leave
   * the router. A host that never had one is forgotten at once. */
  private async forgetUnwanted(
    wanted: Map<string, CertificateSource>,
    rows: Map<string, Certificate>,
    at: Date,
  ): Promise<void> {
    const { db, router, logger } = this.deps;
    const gone: string[] = [];
    const back: string[] = [];
    // A custom domain its app gave up (not one whose check is failing for now) loses its
    // certificate at once: a tenant cycling names must not pile them up in the router.
    const unwanted = [...rows.keys()].filter((h) => !wanted.has(h) && this.groupOf(h) !== '');
    const claimed = unwanted.length > 0 ? await claimedDomainHosts(db, unwanted) : new Set<string>();
    for (const row of rows.values()) {
      if (wanted.has(row.host)) {
        if (row.unwanted_since !== null) back.push(row.host);
        continue;
      }
      if (row.not_after === null) {
        await forgetCertificate(db, row.host);
        this.forgetHeld(row.host);
        continue;
      }
      const released = this.groupOf(row.host) !== '' && !claimed.has(row.host);
      if (row.unwanted_since === null && !released) gone.push(row.host);
      else if (
        released ||
        at.getTime() - Date.parse(row.unwanted_since ?? at.toISOString()) >= UNWANTED_GRACE_MS
      ) {
        try {
          await router.removeCertificate(row.host);
          await forgetCertificate(db, row.host);
          this.forgetHeld(row.host);
          logger.info({ host: row.host }, 'certificate removed: no route wants its host any more');
        } catch (err) {
          logger.warn(
            { host: row.host, err: errorMessage(err) },
            'removing a certificate from the router failed',
          );
        }
      }
    }
    if (gone.length > 0) await markUnwanted(db, gone, at);
    if (back.length > 0) await markWanted(db, back);
  }
}

/**
 * When a certificate is renewed: renewBeforeDays before it expires, but never before a third
 * of its life has passed, so a renewal window longer than the certificates the CA issues (a
 * misconfiguration, or a test) renews each one once per third of its life, not in a loop.
 */
export function renewalTime(notBefore: string, notAfter: string, renewBeforeDays: number): number {
  const from = Date.parse(notBefore);
  const to = Date.parse(notAfter);
  return Math.max(to - renewBeforeDays * DAY_MS, from + (to - from) / 3);
}
