// Custom domains of apps (issue 20): which names an app's team may claim, the claims and
// their verification state. A claim routes only once verified (controllers/domains.ts finds
// the claim's token in the name's DNS, a TXT record, and sees the router answer for the name
// at the platform's own address), so no team can take another's name, or the platform's own,
// by claiming it first.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import os from 'node:os';
import { domainToASCII, domainToUnicode } from 'node:url';
import { sql } from 'kysely';
import type { PetriConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { App, DomainState, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { type Actor, recordAudit } from './audit.js';
import { describeScripts, latinLookalike, mixedScripts } from './mixed-scripts.js';

/** What a name may be once in ASCII: what the router's routes accept (router/routes.ts), at
 * least two labels, and a last label that is not all digits (that would read as an IPv4). */
const HOST =
  /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+(?=[a-z0-9-]*[a-z-])[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** The longest name accepted as typed (a Unicode name may be a little longer than its ASCII). */
const MAX_INPUT = 253;

export interface DomainName {
  /** ASCII (punycode) form: what DNS, the router and certificates use. */
  host: string;
  /** The form people read (equal to host for a plain ASCII name). */
  unicode: string;
}

type Where = Pick<PetriConfig, 'domain' | 'apiHost'>;

/** The name in its ASCII and Unicode forms, or a UserError saying what is wrong and what to
 * give instead. Case, a trailing dot and Unicode's compatibility forms (full-width letters)
 * are folded before any check, so no spelling of a refused name passes. */
export function parseDomain(raw: string, where: Where): DomainName {
  // Echoed in messages: control and format characters (a newline, a bidi override) shown as
  // escapes, so an error line says what was given and nothing more.
  const given = raw.trim();
  const typed = given.replace(
    /[\p{Cc}\p{Cf}]/gu,
    (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`,
  );
  const example = "a host name like 'www.example.org'";
  if (given === '') throw bad(`give ${example}`);
  if (given.length > MAX_INPUT)
    throw bad(`'${typed.slice(0, 40)}...' is longer than ${MAX_INPUT} characters`);
  if (given.includes('*')) {
    throw bad(`'${typed}' has a wildcard: add each name on its own, e.g. 'www.example.org'`);
  }
  const bare = given.replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (net.isIP(bare) !== 0) {
    throw bad(`'${typed}' is an IP address: give the host name that points to it, e.g. 'www.example.org'`);
  }
  if (/[\s/\\:@?#%]/.test(bare)) {
    throw bad(
      `'${typed}' is not a host name: give the name only (no scheme, port or path), e.g. 'www.example.org'`,
    );
  }
  const routable = `'${typed}' is not a host name Petri can route: labels of letters, digits and hyphens (at most 63 each, 253 in all), at least two of them, the last not all digits`;
  const host = domainToASCII(bare);
  if (host === '') {
    // URL parsers read a name ending in a number as an IPv4 address, and fail on it.
    if (/\.(\d+|0x[0-9a-f]*)$/i.test(bare)) throw bad(routable);
    throw bad(`'${typed}' is not a valid internationalised domain name (IDNA): check its spelling`);
  }
  // What a URL parser turns into an IP (127.1, 0x7f.0.0.1) is one too.
  if (net.isIP(host) !== 0) {
    throw bad(`'${typed}' is an IP address (${host}): give the host name that points to it`);
  }
  if (!HOST.test(host)) throw bad(routable);
  const domain = where.domain.toLowerCase();
  const apiHost = where.apiHost.toLowerCase();
  if (host === domain || host.endsWith(`.${domain}`) || host === apiHost) {
    throw bad(
      `'${host}' is one of Petri's own names (under ${domain}): every app has NAME.${domain} already`,
    );
  }
  // A name above the platform's: cookies set for it would reach every app and the API.
  if (domain.endsWith(`.${host}`) || apiHost.endsWith(`.${host}`)) {
    throw bad(`'${host}' is a parent of Petri's own domain (${domain}): give a name outside it`);
  }
  const unicode = domainToUnicode(host) || host;
  // Read from the name as stored, so its punycode spelling (xn--pypal-4ve) is judged as the
  // Unicode one (pаypal) is.
  const asciiLabels = host.split('.');
  const labels = unicode.split('.');
  const tld = labels.at(-1)!;
  for (const [i, label] of labels.entries()) {
    const ascii = asciiLabels[i] === label ? '' : ` (${asciiLabels[i]})`;
    const mixed = mixedScripts(label);
    if (mixed) {
      throw bad(
        `'${unicode}' has a label that mixes scripts, '${label}'${ascii}: ${describeScripts(mixed)}. Such a name can pass for another (a homograph: a Cyrillic 'а' for a Latin 'a'), and browsers show it as punycode; write each label in one script (Latin with Han, Hiragana, Katakana, Bopomofo or Hangul is fine)`,
      );
    }
    const passesFor = latinLookalike(label, tld);
    if (passesFor !== undefined) {
      throw bad(
        `'${unicode}' has a label in Cyrillic letters that all look Latin, '${label}'${ascii}: it passes for '${passesFor}' (a homograph), and browsers show it as punycode under .${tld}; a Cyrillic name is fine with another Cyrillic letter in it or under a Cyrillic top-level domain`,
      );
    }
  }
  return { host, unicode };
}

function bad(message: string): UserError {
  return new UserError('bad_request', `domain ${message}`);
}

/** What HTTPS custom domains get on this server, for their teams and the operator, when it
 * is not a certificate every browser trusts: null with tls.acme (the directory's
 * certificates), or without HTTPS at all. In the self-signed mode they get the local CA's,
 * trusted where it is installed (fine on a laptop); in the wildcard mode none (the operator's
 * certificate is for *.<domain> only, and the local CA is not there), so browsers refuse
 * https://HOST/, where plain HTTP redirects unless tls.redirectHttp is off. */
export function customDomainHttps(
  config: Pick<PetriConfig, 'httpsPort' | 'tls'>,
): { certified: boolean; note: string } | null {
  if (config.httpsPort === 0 || config.tls.acme) return null;
  if (config.tls.mode === 'self-signed') {
    return {
      certified: true,
      note: "HTTPS for custom domains uses certificates of Petri's local CA, which browsers trust only where its ca.pem is installed (fine on a laptop); for visitors' browsers the operator sets tls.acme in Petri's config",
    };
  }
  return {
    certified: false,
    note: `HTTPS for custom domains needs the operator to set tls.acme in Petri's config: with tls.mode "${config.tls.mode}" alone they get no certificate, so browsers refuse https://DOMAIN/${config.tls.redirectHttp ? ', where plain HTTP redirects' : ''}`,
  };
}

export interface DomainView {
  id: number;
  host: string;
  unicode: string;
  state: DomainState;
  reason: string | null;
  createdAt: string;
  verifiedAt: string | null;
  lastCheckAt: string | null;
  nextCheckAt: string;
  /** The path the router answers on every host with the token, while the domain is claimed. */
  verificationPath: string;
  token: string;
}

/** The path the router serves a domain's token at (router.setWellKnown). */
export function verificationPath(id: number): string {
  return `/.well-known/petri-domain/${id}`;
}

/** The name whose TXT record must hold a claim's token: the proof that whoever claims HOST
 * controls its DNS (pointing a name at the platform proves only where it leads, not whose it
 * is). Kept while the domain is in use: the checks every few hours look for it too. */
export function challengeName(host: string): string {
  return `_petri-challenge.${host}`;
}

type DomainRow = {
  id: number;
  host: string;
  unicode: string;
  token: string;
  state: DomainState;
  reason: string | null;
  created_at: string;
  verified_at: string | null;
  last_check_at: string | null;
  next_check_at: string;
};

function view(r: DomainRow): DomainView {
  return {
    id: r.id,
    host: r.host,
    unicode: r.unicode,
    state: r.state,
    reason: r.reason,
    createdAt: r.created_at,
    verifiedAt: r.verified_at,
    lastCheckAt: r.last_check_at,
    nextCheckAt: r.next_check_at,
    verificationPath: verificationPath(r.id),
    token: r.token,
  };
}

const COLUMNS = [
  'id',
  'host',
  'unicode',
  'token',
  'state',
  'reason',
  'created_at',
  'verified_at',
  'last_check_at',
  'next_check_at',
] as const;

export async function listDomains(db: Store, app: Pick<App, 'id'>): Promise<DomainView[]> {
  const rows = await db
    .selectFrom('domains')
    .select(COLUMNS)
    .where('app_id', '=', app.id)
    .orderBy('host')
    .execute();
  return rows.map(view);
}

const scope = (app: App) => ({ app: app.name, teamId: app.team_id });

/** How long a claim that has never verified keeps its name from other apps. */
const CLAIM_LAPSES_MS = 7 * 86_400_000;
/** The platform as the actor of what no person did (a claim lapsing, a check's outcome). */
const PETRI: Actor = { name: 'petri' };

/** `petri domains add HOST`: claims the name for the app, to be verified before it routes. */
export async function addDomain(
  db: Store,
  user: User,
  app: App,
  raw: string,
  config: Pick<PetriConfig, 'domain' | 'apiHost' | 'domains'>,
  ip?: string,
): Promise<DomainView> {
  const name = parseDomain(raw, config);
  const id = await db.transaction().execute(async (tx) => {
    const fresh = await tx.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirst();
    if (!fresh || fresh.stage === 'archived') {
      throw new UserError('conflict', `'${app.name}' is archived: it gets no new domains`);
    }
    let taken = await tx
      .selectFrom('domains')
      .innerJoin('apps', 'apps.id', 'domains.app_id')
      .select(['domains.id', 'domains.app_id', 'domains.state', 'domains.created_at', 'domains.verified_at'])
      .select(['apps.name', 'apps.team_id'])
      .where('domains.host', '=', name.host)
      .executeTakeFirst();
    // Another app's claim that never verified in a week lapses: claiming names one does not
    // control would otherwise keep them from their owners for good.
    if (
      taken &&
      taken.app_id !== app.id &&
      taken.verified_at === null &&
      Date.parse(taken.created_at) < Date.now() - CLAIM_LAPSES_MS
    ) {
      await tx.deleteFrom('domains').where('id', '=', taken.id).execute();
      await recordAudit(
        tx,
        PETRI,
        'app.domain.lapsed',
        taken.name,
        { host: name.host, claimedBy: app.name },
        { app: taken.name, teamId: taken.team_id },
      );
      taken = undefined;
    }
    if (taken?.app_id === app.id) {
      throw new UserError(
        'conflict',
        `${name.host} is already a domain of '${app.name}' (${taken.state}); see 'petri domains --app ${app.name}'`,
      );
    }
    if (taken) {
      // Which app, and whose, is not the asker's to know.
      throw new UserError(
        'conflict',
        `${name.host} is claimed by another app; if the name is yours, ask a Petri admin to release it (a claim that never verifies lapses after ${CLAIM_LAPSES_MS / 86_400_000} days)`,
      );
    }
    const count = await tx
      .selectFrom('domains')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('app_id', '=', app.id)
      .executeTakeFirstOrThrow();
    if (Number(count.n) >= config.domains.maxPerApp) {
      throw new UserError(
        'quota_exceeded',
        `'${app.name}' has ${count.n} domains, the most an app may have (${config.domains.maxPerApp}); remove one with 'petri domains remove HOST --app ${app.name}'`,
      );
    }
    await checkClaimRate(tx, fresh.team_id, config.domains.claimsPerTeamPerHour);
    const at = now();
    const row = await tx
      .insertInto('domains')
      .values({
        app_id: app.id,
        host: name.host,
        unicode: name.unicode,
        token: randomBytes(24).toString('base64url'),
        reason: null,
        created_at: at,
        verified_at: null,
        last_check_at: null,
        next_check_at: at,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await recordAudit(
      tx,
      actorOf(user, ip),
      'app.domain.add',
      app.name,
      { host: name.host, ...(name.unicode !== name.host ? { unicode: name.unicode } : {}) },
      scope(app),
    );
    return row.id;
  });
  const row = await db.selectFrom('domains').select(COLUMNS).where('id', '=', id).executeTakeFirstOrThrow();
  return view(row);
}

const HOUR_MS = 3_600_000;

/** A 429 when the team has made its hour's claims. Removed claims count (they are counted
 * from the audit trail): adding and removing names in a loop would otherwise cost a
 * certificate, an ACME order, a check each, without end. */
async function checkClaimRate(tx: Store, teamId: number, perHour: number): Promise<void> {
  const since = new Date(Date.now() - HOUR_MS).toISOString();
  const made = await tx
    .selectFrom('audit_events')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('at').as('oldest')])
    .where('team_id', '=', teamId)
    .where('action', '=', 'app.domain.add')
    .where('outcome', '=', 'ok')
    .where('at', '>=', since)
    .executeTakeFirstOrThrow();
  if (Number(made.n) < perHour) return;
  const team = await tx.selectFrom('teams').select('name').where('id', '=', teamId).executeTakeFirst();
  const oldest = made.oldest === null ? Date.now() : Date.parse(String(made.oldest));
  const minutes = Math.max(1, Math.ceil((oldest + HOUR_MS - Date.now()) / 60_000));
  throw new UserError(
    'too_many_requests',
    `team '${team?.name ?? teamId}' has claimed ${made.n} custom domains in the last hour, the most a team may (domains.claimsPerTeamPerHour: ${perHour}); try again in ${minutes} minute${minutes === 1 ? '' : 's'}`,
  );
}

/** `petri domains remove HOST`: the app stops answering for it at the router's next pass. */
export async function removeDomain(
  db: Store,
  user: User,
  app: App,
  raw: string,
  config: Pick<PetriConfig, 'domain' | 'apiHost'>,
  ip?: string,
): Promise<void> {
  // Parsed as added, so any spelling of the name removes it (a refused name was never added).
  let host: string;
  try {
    host = parseDomain(raw, config).host;
  } catch {
    // Matches nothing; echoed in the message, so no control character.
    host = raw
      .trim()
      .toLowerCase()
      .replace(/[\p{Cc}\p{Cf}]/gu, '?');
  }
  await db.transaction().execute(async (tx) => {
    const gone = await tx
      .deleteFrom('domains')
      .where('app_id', '=', app.id)
      .where('host', '=', host)
      .executeTakeFirst();
    if (Number(gone.numDeletedRows) === 0) {
      throw new UserError(
        'not_found',
        `${host} is not a domain of '${app.name}'; list them with 'petri domains --app ${app.name}'`,
      );
    }
    await recordAudit(tx, actorOf(user, ip), 'app.domain.remove', app.name, { host }, scope(app));
  });
}

/** Verified custom domains: the hosts that want a certificate (controllers/certificates.ts). */
export async function domainHostsWantingCertificates(db: Store): Promise<string[]> {
  const rows = await db
    .selectFrom('domains')
    .select('host')
    .where('state', '=', 'verified')
    .orderBy('host')
    .execute();
  return rows.map((r) => r.host);
}

/** Each app's verified domains, by app id: the routes the instance reconciler adds. */
export async function verifiedDomainsByApp(db: Store): Promise<Map<number, string[]>> {
  const rows = await db
    .selectFrom('domains')
    .select(['app_id', 'host'])
    .where('state', '=', 'verified')
    .orderBy('host')
    .execute();
  const byApp = new Map<number, string[]>();
  for (const r of rows) byApp.set(r.app_id, [...(byApp.get(r.app_id) ?? []), r.host]);
  return byApp;
}

/** Every verified custom domain, host -> app name: the metrics count its requests as the app's. */
export async function verifiedDomainApps(db: Store): Promise<Map<string, string>> {
  const rows = await db
    .selectFrom('domains')
    .innerJoin('apps', 'apps.id', 'domains.app_id')
    .select(['domains.host', 'apps.name'])
    .where('domains.state', '=', 'verified')
    .execute();
  return new Map(rows.map((r) => [r.host, r.name]));
}

/** The name of the app a verified custom domain routes to (Host header, any port, any case). */
export async function appNameOfDomain(
  db: Store,
  hostHeader: string | undefined,
): Promise<string | undefined> {
  const host = hostHeader?.split(':')[0]?.toLowerCase().replace(/\.$/, '');
  if (!host) return undefined;
  const row = await db
    .selectFrom('domains')
    .innerJoin('apps', 'apps.id', 'domains.app_id')
    .select('apps.name')
    .where('domains.host', '=', host)
    .where('domains.state', '=', 'verified')
    .executeTakeFirst();
  return row?.name;
}

/** Whether the host is a verified domain of this app (the gate's sign-in comes back to it). */
export async function isVerifiedDomainOf(db: Store, appId: number, host: string): Promise<boolean> {
  const row = await db
    .selectFrom('domains')
    .select('id')
    .where('app_id', '=', appId)
    .where('host', '=', host.toLowerCase())
    .where('state', '=', 'verified')
    .executeTakeFirst();
  return row !== undefined;
}

/** Every claim, whatever its state: the router serves each one's token (verified ones are
 * checked again now and then). */
export async function claimedDomains(db: Store): Promise<{ id: number; host: string; token: string }[]> {
  return db.selectFrom('domains').select(['id', 'host', 'token']).orderBy('id').execute();
}

export interface DueDomain {
  id: number;
  host: string;
  token: string;
  app: string;
  teamId: number;
}

/** The most claims one pass looks at (the verifier starts a few of them). */
const DUE_LIMIT = 1000;

/** The claims whose next check is due, with their app's name and team, in the order they are
 * best checked: never checked first (a new claim is answered within seconds), then by fewest
 * failures in a row (a claim that keeps failing waits behind the others), then most overdue. */
export async function domainsDue(db: Store, at = now()): Promise<DueDomain[]> {
  return db
    .selectFrom('domains')
    .innerJoin('apps', 'apps.id', 'domains.app_id')
    .select(['domains.id', 'domains.host', 'domains.token', 'apps.name as app', 'apps.team_id as teamId'])
    .where('domains.next_check_at', '<=', at)
    .orderBy(sql`domains.last_check_at is null`, 'desc')
    .orderBy('domains.failures')
    .orderBy('domains.next_check_at')
    .limit(DUE_LIMIT)
    .execute();
}

/** How often checks come (controllers/domains.ts): an unverified claim is tried again 15 s,
 * 30 s, 1 min ... up to 10 min after each failure; a verified one is checked again every 6
 * hours, and it stops routing only after 3 failed checks in a row (5 min apart), so a
 * passing DNS hiccup does not take a site down. */
export const DOMAIN_CHECKS = {
  firstRetryMs: 15_000,
  maxRetryMs: 10 * 60_000,
  recheckMs: 6 * 3_600_000,
  verifiedRetryMs: 5 * 60_000,
  verifiedFailuresAllowed: 3,
};

/** Records a check's outcome; true when the domain started or stopped routing. */
export async function recordDomainCheck(
  db: Store,
  id: number,
  outcome: { ok: true } | { ok: false; reason: string },
  nowMs = Date.now(),
): Promise<boolean> {
  return db.transaction().execute(async (tx) => {
    const row = await tx
      .selectFrom('domains')
      .innerJoin('apps', 'apps.id', 'domains.app_id')
      .select(['domains.host', 'domains.state', 'domains.failures', 'apps.name', 'apps.team_id'])
      .where('domains.id', '=', id)
      .executeTakeFirst();
    // Removed while it was being checked.
    if (!row) return false;
    const at = new Date(nowMs).toISOString();
    const later = (ms: number) => new Date(nowMs + ms).toISOString();
    const where = { app: row.name, teamId: row.team_id };
    if (outcome.ok) {
      await tx
        .updateTable('domains')
        .set({
          state: 'verified',
          reason: null,
          failures: 0,
          last_check_at: at,
          next_check_at: later(DOMAIN_CHECKS.recheckMs),
          ...(row.state === 'verified' ? {} : { verified_at: at }),
        })
        .where('id', '=', id)
        .execute();
      if (row.state === 'verified') return false;
      await recordAudit(tx, PETRI, 'app.domain.verified', row.name, { host: row.host }, where);
      return true;
    }
    const failures = row.failures + 1;
    const keepsRouting = row.state === 'verified' && failures < DOMAIN_CHECKS.verifiedFailuresAllowed;
    const retryMs =
      row.state === 'verified' || keepsRouting
        ? DOMAIN_CHECKS.verifiedRetryMs
        : Math.min(DOMAIN_CHECKS.firstRetryMs * 2 ** Math.min(failures - 1, 20), DOMAIN_CHECKS.maxRetryMs);
    const reason = outcome.reason.slice(0, 500);
    await tx
      .updateTable('domains')
      .set({
        state: keepsRouting ? 'verified' : 'failing',
        reason,
        failures,
        last_check_at: at,
        next_check_at: later(retryMs),
      })
      .where('id', '=', id)
      .execute();
    if (row.state !== 'verified' || keepsRouting) return false;
    await recordAudit(tx, PETRI, 'app.domain.unverified', row.name, { host: row.host, reason }, where);
    return true;
  });
}

/** Ranges that are no one's public address: loopback, private (RFC 1918, IPv6 unique local),
 * shared (CGNAT), link-local, unspecified. */
const PRIVATE = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  PRIVATE.addSubnet(prefix, bits, 'ipv4');
}
for (const [prefix, bits] of [
  ['::', 127],
  ['fc00::', 7],
  ['fe80::', 10],
] as const) {
  PRIVATE.addSubnet(prefix, bits, 'ipv6');
}

export function isPrivateAddress(ip: string): boolean {
  return PRIVATE.check(ip, net.isIPv6(ip) ? 'ipv6' : 'ipv4');
}

/** The platform's public addresses, where a custom domain must point (shown to every team,
 * and the only ones a check connects to): domains.addresses; else the router's bind address
 * when it binds one; else the host's interface addresses that are public, which leaves out
 * the sandboxes' bridge, container and VPN bridges and every private range (an operator
 * behind NAT names the public address in domains.addresses). */
export function platformAddresses(
  config: Pick<PetriConfig, 'httpBind' | 'domains' | 'network'>,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string[] {
  if (config.domains.addresses) return [...config.domains.addresses];
  if (net.isIP(config.httpBind) !== 0 && !['0.0.0.0', '::'].includes(config.httpBind)) {
    return [config.httpBind];
  }
  const found = new Set<string>();
  for (const [name, list] of Object.entries(interfaces)) {
    if (config.network.enabled && name === config.network.bridge) continue;
    for (const i of list ?? []) {
      if (!i.internal && !isPrivateAddress(i.address) && !inSandboxSubnet(i.address, config.network)) {
        found.add(i.address);
      }
    }
  }
  return [...found];
}

/** Whether the address is in the sandboxes' subnet (whatever range the operator gave it). */
function inSandboxSubnet(ip: string, network: PetriConfig['network']): boolean {
  if (!network.enabled || !net.isIPv4(ip)) return false;
  const [prefix, bits] = network.subnet.split('/');
  const list = new net.BlockList();
  list.addSubnet(prefix ?? '', Number(bits), 'ipv4');
  return list.check(ip, 'ipv4');
}

/** The URL the verification fetches (and a person may open): the router answers it with the token. */
export function verificationUrl(host: string, id: number, verifyPort: number): string {
  return `http://${host}${verifyPort === 80 ? '' : `:${verifyPort}`}${verificationPath(id)}`;
}

/** The origin a gate sign-in goes back to (scheme://host[:port]) when it is a verified custom
 * domain of the app; undefined for anything else, which then goes back to the app's own host.
 * `httpsOnly`: an http:// origin is refused too (the ticket in the URL would cross in the clear). */
export async function customOrigin(
  db: Store,
  appId: number,
  origin: string | undefined,
  httpsOnly: boolean,
): Promise<string | undefined> {
  if (!origin) return undefined;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  const bare = url.pathname === '/' && !url.search && !url.hash && !url.username && !url.password;
  const scheme = url.protocol === 'https:' || (url.protocol === 'http:' && !httpsOnly);
  if (!bare || !scheme) return undefined;
  return (await isVerifiedDomainOf(db, appId, url.hostname)) ? url.origin : undefined;
}
