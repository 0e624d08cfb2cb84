// The router's certificates as the store knows them (issue 20): one row per host, with its
// source, validity and the last attempt to get or renew it. The certificate controller writes
// them; `petri certs`, `petri domains` and the metrics read them. No key is ever stored here.
import type { Selectable } from 'kysely';
import type { Store } from '../store/db.js';
import type { CertificateSource, CertificatesTable } from '../store/schema.js';

export type Certificate = Selectable<CertificatesTable>;

const DAY_MS = 86_400_000;

/** What was had: the facts of a certificate the router now serves. */
export interface CertificateFacts {
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function listCertificates(db: Store): Promise<Certificate[]> {
  return db.selectFrom('certificates').selectAll().orderBy('host').execute();
}

/** The certificates of these hosts, by host (a host with none yet is not in the map): what
 * `petri domains` shows beside each custom domain. */
export async function certificateStates(db: Store, hosts: string[]): Promise<Map<string, Certificate>> {
  const states = new Map<string, Certificate>();
  // In slices: SQLite takes at most 32766 parameters in one statement.
  for (let i = 0; i < hosts.length; i += 500) {
    const slice = hosts.slice(i, i + 500);
    const rows = await db.selectFrom('certificates').selectAll().where('host', 'in', slice).execute();
    for (const row of rows) states.set(row.host, row);
  }
  return states;
}

/** The host of every app the router serves (NAME.<domain>): each is routed, expired and
 * archived apps included (the router answers for them). */
export async function routedAppHosts(db: Store, domain: string): Promise<string[]> {
  const rows = await db.selectFrom('apps').select('name').orderBy('name').execute();
  return rows.map((r) => `${r.name}.${domain}`);
}

/** Which of these hosts are claimed as some app's custom domain (in any state). */
export async function claimedDomainHosts(db: Store, hosts: string[]): Promise<Set<string>> {
  const claimed = new Set<string>();
  for (let i = 0; i < hosts.length; i += 500) {
    const rows = await db
      .selectFrom('domains')
      .select('host')
      .where('host', 'in', hosts.slice(i, i + 500))
      .execute();
    for (const row of rows) claimed.add(row.host);
  }
  return claimed;
}

/** Whole days until the certificate expires (negative once it has), at `now`. */
export function daysLeft(notAfter: string, now = Date.now()): number {
  return Math.floor((Date.parse(notAfter) - now) / DAY_MS);
}

/** A certificate was had and the router serves it: the attempt's outcome is 'ok'. */
export async function recordCertificate(
  db: Store,
  host: string,
  source: CertificateSource,
  facts: CertificateFacts,
  at: Date,
): Promise<void> {
  const row = {
    source,
    issuer: facts.issuer,
    serial: facts.serial,
    not_before: facts.notBefore.toISOString(),
    not_after: facts.notAfter.toISOString(),
    last_attempt_at: at.toISOString(),
    last_outcome: 'ok',
    next_attempt_at: null,
    failures: 0,
    unwanted_since: null,
  };
  await db
    .insertInto('certificates')
    .values({ host, ...row })
    .onConflict((c) => c.column('host').doUpdateSet(row))
    .execute();
}

/**
 * An attempt failed: why, and when the next one is due (`retryAfterMs(failures)`, the
 * failures in a row counting this one). The certificate the router had, if any, stays (and
 * so do its facts). Returns the failures in a row.
 */
export async function recordCertificateFailure(
  db: Store,
  host: string,
  source: CertificateSource,
  reason: string,
  at: Date,
  retryAfterMs: (failures: number) => number,
): Promise<number> {
  return db.transaction().execute(async (tx) => {
    const before = await tx
      .selectFrom('certificates')
      .select(['failures', 'source'])
      .where('host', '=', host)
      .executeTakeFirst();
    // A failure of another source (ACME after the local CA's) starts a count of its own.
    const failures = (before && before.source === source ? before.failures : 0) + 1;
    const row = {
      source,
      last_attempt_at: at.toISOString(),
      last_outcome: reason.slice(0, 1000),
      next_attempt_at: new Date(at.getTime() + retryAfterMs(failures)).toISOString(),
      failures,
    };
    if (before) {
      // source: where the certificate is wanted from now; the one served (its issuer, its
      // dates) stays until one from there is had.
      await tx.updateTable('certificates').set(row).where('host', '=', host).execute();
    } else {
      await tx
        .insertInto('certificates')
        .values({
          host,
          issuer: null,
          serial: null,
          not_before: null,
          not_after: null,
          unwanted_since: null,
          ...row,
        })
        .execute();
    }
    return failures;
  });
}

/** Hosts no route wants any more, from `at` (those already marked keep their time). */
export async function markUnwanted(db: Store, hosts: string[], at: Date): Promise<void> {
  for (let i = 0; i < hosts.length; i += 500) {
    await db
      .updateTable('certificates')
      .set({ unwanted_since: at.toISOString() })
      .where('host', 'in', hosts.slice(i, i + 500))
      .where('unwanted_since', 'is', null)
      .execute();
  }
}

/** Hosts wanted again (an app made anew with the same name, a domain verified again). */
export async function markWanted(db: Store, hosts: string[]): Promise<void> {
  for (let i = 0; i < hosts.length; i += 500) {
    await db
      .updateTable('certificates')
      .set({ unwanted_since: null })
      .where('host', 'in', hosts.slice(i, i + 500))
      .execute();
  }
}

export async function forgetCertificate(db: Store, host: string): Promise<void> {
  await db.deleteFrom('certificates').where('host', '=', host).execute();
}
