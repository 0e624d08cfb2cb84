// The one typed configuration object, built at start from flags, environment (PETRI_*) and
// an optional JSON file, validated once. Nothing else reads process.env.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { UserError } from './errors.js';
import {
  DEFAULT_MEMBER_MAX_LIMITS,
  hostMaxLimits,
  type LimitCeiling,
  type Limits,
  readHostFacts,
} from './limits.js';
import { NODE_FLAG } from './node-flags.js';

export interface PetriConfig {
  dataDir: string;
  /** Apps are served at NAME.<domain>; the API also at petri.<domain>... see apiHost. */
  domain: string;
  httpPort: number;
  /** Address the router binds to. */
  httpBind: string;
  apiPort: number;
  apiBind: string;
  /** Host name under which the router also serves the API (/v1). */
  apiHost: string;
  /** How long a new instance may take to listen on PORT before the deploy fails. */
  bootTimeoutMs: number;
  buildTimeoutMs: number;
  /** Size of each app's build cache (MiB), a filesystem of its own: a build step that fills
   * it fails; dependencies that do not fit are not kept. */
  buildCacheMiB: number;
  /** The shared cache of Node.js runtimes apps run on (absolute path); default DATA_DIR/runtimes. */
  runtimesDir?: string;
  /** How many Node.js versions that cache holds at most (each about 190 MB); default 12. */
  maxNodeVersions?: number;
  /** How long a stopping instance gets between SIGTERM and SIGKILL. */
  drainGraceMs: number;
  /** Largest upload (the gzip as sent) and largest git push pack. */
  maxUploadBytes: number;
  /** What an upload or push may unpack to: file bytes and entries (files and directories). */
  maxUnpackedBytes: number;
  maxUploadEntries: number;
  /** Objects one git push may send (the count in its pack header). */
  maxPushObjects: number;
  /** An upload or push is received and unpacked within this, or refused (408). */
  uploadTimeoutMs: number;
  /** Uploads and pushes one user may have in flight at once; more get 429. */
  maxConcurrentUploads: number;
  defaultLimits: Limits;
  /** No app's limits go past these (default: what the host has; pids 4096). */
  maxLimits: LimitCeiling;
  /** A member's own changes go up to these (each at most maxLimits'); admins' to maxLimits. */
  memberMaxLimits: LimitCeiling;
  /** App N runs as uid/gid uidBase + N. */
  uidBase: number;
  /** Name of Petri's cgroup under each controller; unique per data dir when several run. */
  cgroupParent: string;
  logMaxBytesPerApp: number;
  logLevel: string;
  /** Each sandbox in its own network namespace on this bridge and subnet (IPv4 CIDR). */
  network: { enabled: boolean; bridge: string; subnet: string };
  /** The egress proxy's port on the bridge's gateway address. */
  egressPort: number;
  /** Hosts apps may reach through the proxy even though they resolve to private addresses. */
  egressAllowPrivateHosts: string[];
  /** Hosts builds may reach (package registries); default: the registry npm is configured with. */
  buildEgress?: string[];
  addons: AddonsConfig;
  /** An app with no request for this long sleeps (0: never), unless it says otherwise. */
  idleTimeoutMs: number;
  /** How long the first request to a sleeping app waits for it to be healthy. */
  wakeTimeoutMs: number;
  /** How often the router's counters are read to find idle apps. */
  idleCheckMs: number;
  /** Time between the metrics collector's passes (store, probes, cgroups): a minute. */
  metricsPassMs: number;
  /** HAProxy's own Prometheus exporter (/metrics) and stats page (/stats) on 127.0.0.1 at
   * this port, for operators who want its full set; 0: off. */
  routerMetricsPort: number;
  /** The waker (on 127.0.0.1): the router's backup server of every app. */
  wakerPort: number;
  /** What one app or one owner may take of what all share (see README, Security and ceilings). */
  ceilings: Ceilings;
  /** What each team may have unless an admin set its own (petri quotas TEAM). */
  quotas: Quotas;
  /** How people sign in: OIDC, LDAP, local passwords; sessions and their re-checks. */
  identity: IdentityConfig;
  /** How long experiments live, when their owners are warned, when expired ones are archived. */
  lifecycle: LifecycleConfig;
  /** Who may reach apps (issue 15). */
  audience: AudienceConfig;
  /** Custom domains of apps and how they are verified (issue 20). */
  domains: DomainsConfig;
  /** The mail relay every app may send through (issue 17). */
  mail: MailConfig;
  /** The router's HTTPS port (0: no HTTPS). */
  httpsPort: number;
  /** How the router gets its certificates, and what HTTP does (issue 20). */
  tls: TlsConfig;
  /** The Node.js and V8 flags `petri server` runs under (lib/node-flags); [] for V8's defaults. */
  nodeFlags: string[];
}

/** `tls` in petri.json. */
export interface TlsConfig {
  /** self-signed: a local CA of Petri's (DATA_DIR/tls/ca.pem); wildcard: the operator's
   * certificate for *.<domain>; acme: certificates from an ACME directory. */
  mode: 'self-signed' | 'wildcard' | 'acme';
  /** wildcard: the certificate chain (PEM) and its private key (PEM), absolute paths. */
  certFile?: string;
  keyFile?: string;
  /** Required in the acme mode; in the others, custom domains get ACME certificates too. */
  acme?: AcmeConfig;
  /** HTTP answers 308 to HTTPS (but /.well-known/); default: on unless self-signed. */
  redirectHttp: boolean;
  /** A certificate is renewed this long before it expires. */
  renewBeforeDays: number;
}

export interface AcmeConfig {
  directoryUrl: string;
  /** The ACME account's contact. */
  email: string;
  /** External account binding (some CAs require one): both or neither. eabHmac is a secret. */
  eabKid?: string;
  eabHmac?: string;
  /** A CA certificate (PEM) to trust for the directory besides the system's (a test CA's). */
  caFile?: string;
}

/** `mail` in petri.json. */
export interface MailConfig {
  /** false: no relay, no SMTP_URL. */
  enabled: boolean;
  /** Apps send as NAME@<domain>; default: the server's domain. */
  domain: string;
  /** The relay's SMTP port on the sandboxes' gateway (127.0.0.1 without a network of their own). */
  smtpPort: number;
  /** The relay's HTTP send API (MAIL_API_URL), on the same address. */
  httpPort: number;
  /** The operator's smarthost, smtp://USER:PASSWORD@HOST:PORT (STARTTLS when it offers it;
   * ?requireTLS=true to insist). Absent: mail is kept in the capture box (`petri mail show`). */
  relay?: string;
  /** An app's defaults; admins override them per app (`petri mail limits`). */
  perHour: number;
  perDay: number;
  recipients: number;
  maxBytes: number;
  /** While an app's audience is invite or staff, it mails only people who may use it. */
  restrictToAudience: boolean;
  /** This many refusals in a row pause the app's mail for pauseMinutes. */
  pauseAfterRefusals: number;
  pauseMinutes: number;
}

/** `domains` in petri.json. */
export interface DomainsConfig {
  /** The port a custom domain is checked on (the router's public HTTP port). */
  verifyPort: number;
  /** DNS servers to resolve custom domains with ("IP" or "IP:PORT"); default: the system's. */
  resolver?: string[];
  /** The platform's public addresses: a domain is checked only at one of these (default: the
   * router's bind address unless it is a wildcard, and the host's interface addresses). */
  addresses?: string[];
  /** Custom domains one app may have. */
  maxPerApp: number;
  /** New claims one team may make in an hour (removed ones count: each may cost a certificate). */
  claimsPerTeamPerHour: number;
  /** App names no new app may take besides Petri's own list (domain/names.ts): the app's host
   * NAME.<domain> means something on this network (an intranet's `vpn`, `intranet`). */
  reservedAppNames?: string[];
}

/** `audience` in petri.json. */
export interface AudienceConfig {
  /** The audience of a new app: staff (anyone who can sign in to Petri), invite or public. */
  default: 'public' | 'staff' | 'invite';
}

/** `lifecycle` in petri.json. Periods are days and may be fractional (0.5 is 12 hours; a test
 * gives seconds as 5 / 86400). */
export interface LifecycleConfig {
  /** A new app expires this long after its creation (and a renewal without --for lasts this). */
  defaultDays: number;
  /** The longest renewal an app's team may give itself; admins may give any. */
  maxDays: number;
  /** The owner and team are warned this long before expiry, once each (largest first). */
  warnDays: number[];
  /** An expired app is archived (final backups, then its files go) this long after expiry. */
  archiveAfterDays: number;
  /** How often the lifecycle loop looks. */
  checkMs: number;
}

/** `identity` in petri.json. The secrets in it (clientSecret, bindPassword) are never logged
 * nor repeated in a validation message; PETRI_OIDC_CLIENT_SECRET and PETRI_LDAP_BIND_PASSWORD
 * give them from the environment instead of the file. */
export interface IdentityConfig {
  oidc?: OidcConfig;
  ldap?: LdapConfig;
  /** How long a session token of a sign-in (SSO, LDAP, password) lives. */
  sessionDays: number;
  /** A session's user is re-checked with its provider when last checked longer ago than this. */
  recheckSeconds: number;
  /** Failed sign-ins allowed per address and per user name within windowSeconds; more get 429. */
  signInAttempts: { perAddress: number; perUser: number; windowSeconds: number };
  /** The first admin's e-mail: their single sign-on (OIDC, LDAP) then finds that account. */
  adminEmail?: string;
}

export interface OidcConfig {
  /** The provider's issuer URL (its /.well-known/openid-configuration is read from it). */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** E-mail domains whose people may sign in without an invitation (default: none). */
  allowedDomains: string[];
  /** Groups (in groupsClaim) whose people may sign in without an invitation (default: none). */
  allowedGroups: string[];
  /** The ID token / userinfo claim that lists the user's groups (default 'groups'). */
  groupsClaim: string;
  /** People in one of these groups are platform admins (default: none). */
  adminGroups: string[];
}

export interface LdapConfig {
  /** ldap://host:389 or ldaps://host:636. */
  url: string;
  /** The service account Petri searches the directory as. */
  bindDn: string;
  bindPassword: string;
  /** Where people's entries are searched (subtree). */
  userBase: string;
  /** {username} is replaced by the escaped name typed (default '(uid={username})'). */
  userFilter: string;
  /** Where groups are searched (groupOfNames, groupOfUniqueNames, posixGroup); none: no groups. */
  groupBase?: string;
  /** Groups (their cn or DN) whose people may sign in without an invitation (default: none). */
  allowedGroups: string[];
  /** E-mail domains whose people may sign in without an invitation (default: none). */
  allowedDomains: string[];
  /** Groups (their cn or DN) whose people are platform admins (default: none). */
  adminGroups: string[];
  /** Upgrade an ldap:// connection with StartTLS before binding. */
  startTls: boolean;
}

/** Shares of what every app and owner draw from, so one tenant cannot exhaust them. */
export interface Ceilings {
  /** Instances of one app, all process types together. */
  instancesPerApp: number;
  /** Instances of all the apps one user owns. */
  instancesPerOwner: number;
  /** Add-ons (of every engine) of all the apps one user owns. */
  addonsPerOwner: number;
  /** One-off runs (`petri run`) at once of one app, and of all the apps one user owns. */
  oneOffsPerApp: number;
  oneOffsPerOwner: number;
  /** Deploys waiting to be built of all the apps one user owns (one per app: a newer one
   * supersedes the one queued before it). */
  queuedDeploysPerOwner: number;
  /** Apps one user owns. */
  appsPerOwner: number;
  /** Shared teams one person (not a platform admin) may be an admin of: each has quotas of
   * its own, and a script must not be able to fill the store with teams. */
  teamsPerPerson: number;
}

/** The default quotas of a team: they bound a team's share of the platform, where the
 * ceilings bound one owner's (and one app's) to protect the host. */
export interface Quotas {
  /** Apps of the team, scaled to 0 or not. */
  apps: number;
  /** Memory of the instances the team's apps want running (formation x memory limit),
   * sleeping apps included: waking one must not take the team over. */
  memoryMiB: number;
  /** Add-ons of the team's apps, all engines together. */
  addons: number;
}

export const ADDON_ENGINES = ['postgres', 'mysql', 'redis'] as const;
export type AddonEngine = (typeof ADDON_ENGINES)[number];

/** managed: Petri runs the server itself (the default); external: an operator's server,
 * given by an admin URL; off: the engine is not offered. */
export type EngineConfig =
  | { mode: 'managed'; port?: number }
  | { mode: 'external'; adminUrl: string }
  | { mode: 'off' };

export interface AddonsConfig {
  postgres: EngineConfig;
  mysql: EngineConfig;
  redis: EngineConfig;
  /** System user the managed servers run as. */
  serverUser: string;
  /** A scheduled backup is taken when an add-on's last one is older than this. */
  backupIntervalHours: number;
  /** How long scheduled backups are kept. */
  backupRetentionDays: number;
  /** How long the final backup of a destroyed add-on (or app) is kept for an admin to restore. */
  finalBackupRetentionDays: number;
}

export type ConfigInput = Partial<{ [K in keyof PetriConfig]: unknown }> & { configFile?: string };

const MiB = 1024 * 1024;

/** Without the limit ceilings: their defaults depend on the host (see limitCeilings). */
export const DEFAULTS: Omit<PetriConfig, 'maxLimits' | 'memberMaxLimits'> = {
  dataDir: './.petri',
  domain: 'petri.localhost',
  httpPort: 8080,
  httpBind: '127.0.0.1',
  apiPort: 7070,
  apiBind: '127.0.0.1',
  apiHost: 'petri.localhost',
  bootTimeoutMs: 60_000,
  buildTimeoutMs: 15 * 60_000,
  buildCacheMiB: 1024,
  drainGraceMs: 30_000,
  maxUploadBytes: 500 * MiB,
  // Sources only (the CLI leaves node_modules and .petriignore'd paths out): 1 GiB is the
  // default app disk the source must fit on, and 20,000 entries is several times a large
  // app's source tree, while refusing a bomb of empty files takes about a second.
  maxUnpackedBytes: 1024 * MiB,
  maxUploadEntries: 20_000,
  // A first push carries the whole history: ample for thousands of commits, while a pack
  // of millions of tiny objects is refused before git indexes any of it.
  maxPushObjects: 200_000,
  // 500 MiB at about 7 Mbit/s; the per-user limit bounds what slow senders can hold.
  uploadTimeoutMs: 10 * 60_000,
  maxConcurrentUploads: 2,
  defaultLimits: { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 },
  uidBase: 100_000,
  cgroupParent: 'petri',
  logMaxBytesPerApp: 5 * MiB,
  logLevel: 'info',
  network: { enabled: true, bridge: 'petri0', subnet: '10.213.0.0/16' },
  egressPort: 3128,
  egressAllowPrivateHosts: [],
  // For a process that waits on I/O nearly all the time (issue 16: 87-89 instead of
  // 101-104 MiB resident at rest with one app, bench/density.ts; docs/adr/0002):
  nodeFlags: [
    // New objects in 1 MiB semi-spaces, not up to 16 MiB: after a busy spell V8 keeps the
    // young generation it grew, about 6 MiB of it resident at rest; a scavenge of 1 MiB
    // takes well under a millisecond.
    '--max-semi-space-size=1',
    // One V8 helper thread for the GC and the compilers instead of four: each thread keeps
    // a stack and a malloc arena of its own.
    '--v8-pool-size=1',
    // Maglev is the top tier: TurboFan's code is 6 MiB of the node binary that stays
    // resident once it has compiled a single function. The cost, measured: the router's
    // request log is parsed at 8 instead of 4 us a line, a metrics pass or a listing of
    // 1,000 apps takes 1.5-2x as long. A busy host can drop this one (and keep the others).
    '--max-opt=2',
    // AsyncLocalStorage (the audit scope of an API request) from V8's context frames, not
    // from async hooks on every promise: with hooks, a reconcile pass over 1,000 apps spends
    // much of its time in them: under the flags above, 13 ms per 1,000 awaited steps
    // against 1 ms with context frames. The default from Node.js 24 on; left out where
    // Node.js lacks it.
    '--experimental-async-context-frame',
  ],
  idleTimeoutMs: 30 * 60_000,
  wakeTimeoutMs: 30_000,
  idleCheckMs: 10_000,
  metricsPassMs: 60_000,
  routerMetricsPort: 0,
  wakerPort: 7071,
  ceilings: {
    instancesPerApp: 20,
    instancesPerOwner: 50,
    addonsPerOwner: 10,
    oneOffsPerApp: 3,
    oneOffsPerOwner: 5,
    queuedDeploysPerOwner: 3,
    appsPerOwner: 20,
    teamsPerPerson: 20,
  },
  quotas: { apps: 20, memoryMiB: 8192, addons: 10 },
  addons: {
    postgres: { mode: 'managed' },
    mysql: { mode: 'managed' },
    redis: { mode: 'managed' },
    serverUser: 'petri-addons',
    backupIntervalHours: 24,
    backupRetentionDays: 7,
    finalBackupRetentionDays: 30,
  },
  identity: {
    sessionDays: 90,
    recheckSeconds: 900,
    signInAttempts: { perAddress: 10, perUser: 5, windowSeconds: 300 },
  },
  lifecycle: { defaultDays: 90, maxDays: 90, warnDays: [14, 7, 1], archiveAfterDays: 30, checkMs: 60_000 },
  audience: { default: 'staff' },
  domains: { verifyPort: 80, maxPerApp: 20, claimsPerTeamPerHour: 20 },
  mail: {
    enabled: true,
    domain: '',
    smtpPort: 587,
    httpPort: 8587,
    perHour: 50,
    perDay: 200,
    recipients: 10,
    maxBytes: 1024 * 1024,
    restrictToAudience: true,
    pauseAfterRefusals: 10,
    pauseMinutes: 60,
  },
  httpsPort: 8443,
  tls: { mode: 'self-signed', redirectHttp: false, renewBeforeDays: 30 },
};

const ENV_KEYS: Record<string, keyof PetriConfig> = {
  PETRI_DATA_DIR: 'dataDir',
  PETRI_DOMAIN: 'domain',
  PETRI_HTTP_PORT: 'httpPort',
  PETRI_HTTPS_PORT: 'httpsPort',
  PETRI_API_PORT: 'apiPort',
  PETRI_WAKER_PORT: 'wakerPort',
  PETRI_BOOT_TIMEOUT_MS: 'bootTimeoutMs',
  PETRI_LOG_LEVEL: 'logLevel',
};

/** Flags win over environment, environment over the file, the file over defaults. */
export function loadConfig(flags: ConfigInput, env: NodeJS.ProcessEnv = process.env): PetriConfig {
  const fromEnv: ConfigInput = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    if (env[name] !== undefined) fromEnv[key] = env[name];
  }
  const file = flags.configFile ?? env.PETRI_CONFIG;
  const fromFile = file ? readConfigFile(file) : {};
  const merged: Record<string, unknown> = { ...DEFAULTS, ...fromFile, ...fromEnv };
  for (const [k, v] of Object.entries(flags)) if (v !== undefined && k !== 'configFile') merged[k] = v;
  merged.identity = identitySecretsFromEnv(merged.identity, env);
  return validate(merged);
}

function readConfigFile(file: string): ConfigInput {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as ConfigInput;
  } catch (err) {
    throw new UserError('bad_request', `cannot read config file ${file}: ${(err as Error).message}`);
  }
}

function validate(raw: Record<string, unknown>): PetriConfig {
  const port = (key: string) => integer(raw, key, 1, 65535);
  const limits = (raw.defaultLimits ?? DEFAULTS.defaultLimits) as Limits;
  return {
    dataDir: path.resolve(text(raw, 'dataDir')),
    domain: hostName(raw, 'domain'),
    httpPort: port('httpPort'),
    httpBind: text(raw, 'httpBind'),
    apiPort: port('apiPort'),
    apiBind: text(raw, 'apiBind'),
    apiHost: hostName(raw, 'apiHost'),
    bootTimeoutMs: integer(raw, 'bootTimeoutMs', 100, 3_600_000),
    buildTimeoutMs: integer(raw, 'buildTimeoutMs', 1000, 24 * 3_600_000),
    buildCacheMiB: integer(raw, 'buildCacheMiB', 16, 1_048_576),
    ...(raw.runtimesDir === undefined ? {} : { runtimesDir: absolutePath(raw, 'runtimesDir') }),
    ...(raw.maxNodeVersions === undefined
      ? {}
      : { maxNodeVersions: integer(raw, 'maxNodeVersions', 1, 1000) }),
    drainGraceMs: integer(raw, 'drainGraceMs', 0, 3_600_000),
    maxUploadBytes: integer(raw, 'maxUploadBytes', 1024, Number.MAX_SAFE_INTEGER),
    maxUnpackedBytes: integer(raw, 'maxUnpackedBytes', 1024, Number.MAX_SAFE_INTEGER),
    maxUploadEntries: integer(raw, 'maxUploadEntries', 1, 10_000_000),
    maxPushObjects: integer(raw, 'maxPushObjects', 1, 100_000_000),
    uploadTimeoutMs: integer(raw, 'uploadTimeoutMs', 100, 24 * 3_600_000),
    maxConcurrentUploads: integer(raw, 'maxConcurrentUploads', 1, 1000),
    defaultLimits: {
      memoryMiB: integer(limits, 'memoryMiB', 16, 1_048_576),
      cpus: number(limits, 'cpus', 0.01, 1024),
      pids: integer(limits, 'pids', 8, 1_000_000),
      diskMiB: integer({ diskMiB: 1024, ...limits }, 'diskMiB', 16, 1_048_576),
    },
    ...limitCeilings(raw),
    uidBase: integer(raw, 'uidBase', 1000, 2_000_000_000),
    cgroupParent: matching(raw, 'cgroupParent', /^[a-z][a-z0-9-]{0,62}$/),
    logMaxBytesPerApp: integer(raw, 'logMaxBytesPerApp', 4096, Number.MAX_SAFE_INTEGER),
    logLevel: matching(raw, 'logLevel', /^(trace|debug|info|warn|error|fatal|silent)$/),
    network: validateNetwork(raw.network),
    egressPort: integer(raw, 'egressPort', 1, 65535),
    egressAllowPrivateHosts: stringList(raw, 'egressAllowPrivateHosts'),
    nodeFlags: nodeFlags(raw),
    buildEgress: raw.buildEgress === undefined ? undefined : stringList(raw, 'buildEgress'),
    addons: validateAddons(raw.addons),
    idleTimeoutMs: integer(raw, 'idleTimeoutMs', 0, 365 * 24 * 3_600_000),
    wakeTimeoutMs: integer(raw, 'wakeTimeoutMs', 100, 3_600_000),
    idleCheckMs: integer(raw, 'idleCheckMs', 50, 3_600_000),
    metricsPassMs: integer(raw, 'metricsPassMs', 50, 3_600_000),
    routerMetricsPort: integer(raw, 'routerMetricsPort', 0, 65535),
    wakerPort: integer(raw, 'wakerPort', 1, 65535),
    ceilings: validateCeilings(raw.ceilings),
    quotas: validateQuotas(raw.quotas),
    identity: validateIdentity(raw.identity),
    lifecycle: validateLifecycle(raw.lifecycle),
    audience: validateAudience(raw.audience),
    domains: validateDomains(raw.domains),
    mail: validateMail(raw.mail, hostName(raw, 'domain')),
    ...validateHttps(raw),
  };
}

const TLS_KEYS = ['mode', 'certFile', 'keyFile', 'acme', 'redirectHttp', 'renewBeforeDays'];
const ACME_KEYS = ['directoryUrl', 'email', 'eabKid', 'eabHmac', 'caFile'];

/** httpsPort and tls together: a redirect needs an HTTPS port to go to. Unknown keys are
 * refused: a typo (redirectHTTP) would silently keep a default. */
function validateHttps(raw: Record<string, unknown>): Pick<PetriConfig, 'httpsPort' | 'tls'> {
  const httpsPort = integer(raw, 'httpsPort', 0, 65535);
  for (const other of ['httpPort', 'apiPort', 'wakerPort']) {
    if (httpsPort !== 0 && httpsPort === Number(raw[other])) {
      throw invalid('httpsPort', httpsPort, `another port than ${other} (${httpsPort}), or 0 for no HTTPS`);
    }
  }
  const value = raw.tls;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('tls', value, 'an object like { "mode": "self-signed" }');
  }
  known(value, 'tls', TLS_KEYS);
  const t = prefixed(value as Record<string, unknown>, 'tls');
  const mode = t['tls.mode'] ?? 'self-signed';
  if (mode !== 'self-signed' && mode !== 'wildcard' && mode !== 'acme') {
    throw invalid('tls.mode', mode, 'one of "self-signed", "wildcard" or "acme"');
  }
  const files = ['certFile', 'keyFile'] as const;
  for (const key of files) {
    if (mode === 'wildcard' && t[`tls.${key}`] === undefined) {
      throw invalid(
        `tls.${key}`,
        undefined,
        `an absolute path in the wildcard mode (the ${key === 'certFile' ? 'certificate chain' : 'private key'}, PEM)`,
      );
    }
    if (mode !== 'wildcard' && t[`tls.${key}`] !== undefined) {
      throw invalid(
        `tls.${key}`,
        t[`tls.${key}`],
        `left out unless tls.mode is "wildcard" (it is "${mode}")`,
      );
    }
  }
  if (mode === 'acme' && t['tls.acme'] === undefined) {
    throw invalid(
      'tls.acme',
      undefined,
      'an object like { "directoryUrl": "https://acme-v02.api.letsencrypt.org/directory", "email": "ops@example.org" } in the acme mode',
    );
  }
  const redirect = t['tls.redirectHttp'] ?? (mode !== 'self-signed' && httpsPort !== 0);
  if (typeof redirect !== 'boolean') throw invalid('tls.redirectHttp', redirect, 'true or false');
  if (redirect && httpsPort === 0) {
    throw invalid(
      'tls.redirectHttp',
      redirect,
      'false when httpsPort is 0 (there is no HTTPS to redirect to)',
    );
  }
  return {
    httpsPort,
    tls: {
      mode,
      ...(mode === 'wildcard' && {
        certFile: filePath(t, 'tls.certFile'),
        keyFile: filePath(t, 'tls.keyFile'),
      }),
      ...(t['tls.acme'] !== undefined && { acme: validateAcme(t['tls.acme']) }),
      redirectHttp: redirect,
      // Down to a second's worth, and up to years, so tests can force a renewal.
      renewBeforeDays: number(
        { 'tls.renewBeforeDays': t['tls.renewBeforeDays'] ?? 30 },
        'tls.renewBeforeDays',
        0,
        3650,
      ),
    },
  };
}

/** The EAB key: base64url, never repeated in a message. */
function eabHmac(value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9_-]{16,512}={0,2}$/.test(value)) {
    throw new UserError(
      'bad_request',
      "configuration 'tls.acme.eabHmac' must be the base64url HMAC key your CA gave with the eabKid (value hidden)",
    );
  }
  return value;
}

function validateAcme(value: unknown): AcmeConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(
      'tls.acme',
      '(not an object)',
      'an object like { "directoryUrl": "https://...", "email": "ops@example.org" }',
    );
  }
  known(value, 'tls.acme', ACME_KEYS);
  const a = prefixed(value as Record<string, unknown>, 'tls.acme');
  const email = a['tls.acme.email'];
  if (typeof email !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email)) {
    throw invalid(
      'tls.acme.email',
      email,
      'an e-mail address like ops@example.org (the ACME account contact)',
    );
  }
  const kid = a['tls.acme.eabKid'];
  const hmac = a['tls.acme.eabHmac'];
  if ((kid === undefined) !== (hmac === undefined)) {
    throw new UserError(
      'bad_request',
      "configuration 'tls.acme.eabKid' and 'tls.acme.eabHmac' go together: give both or neither",
    );
  }
  return {
    directoryUrl: httpUrl(
      a,
      'tls.acme.directoryUrl',
      /^https:$/,
      'https://acme-v02.api.letsencrypt.org/directory',
    ),
    email,
    ...(kid !== undefined && {
      eabKid: text(a, 'tls.acme.eabKid'),
      eabHmac: eabHmac(hmac),
    }),
    ...(a['tls.acme.caFile'] !== undefined && { caFile: filePath(a, 'tls.acme.caFile') }),
  };
}

/** Unknown keys are refused: a typo (perhour) would silently keep a default. */
function validateMail(value: unknown, domain: string): MailConfig {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalid('mail', value, 'an object like { "relay": "smtp://user:pass@smarthost:587" }');
  }
  const keys = [...Object.keys(DEFAULTS.mail), 'relay'];
  known(value ?? {}, 'mail', keys);
  const raw = { ...DEFAULTS.mail, ...(value as object | undefined) } as Record<string, unknown>;
  const at = (key: string) => ({ [`mail.${key}`]: raw[key] });
  const int = (key: string, min: number, max: number) => integer(at(key), `mail.${key}`, min, max);
  const bool = (key: string) => {
    if (typeof raw[key] !== 'boolean') throw invalid(`mail.${key}`, raw[key], 'true or false');
    return raw[key] as boolean;
  };
  let relay: string | undefined;
  if (raw.relay !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(String(raw.relay));
    } catch {}
    if (!url || !['smtp:', 'smtps:'].includes(url.protocol) || !url.hostname) {
      // Never repeat the value: it holds the smarthost's password.
      throw new UserError(
        'bad_request',
        "configuration 'mail.relay' must be a URL like smtp://USER:PASSWORD@smarthost.example.org:587",
      );
    }
    relay = raw.relay as string;
  }
  return {
    enabled: bool('enabled'),
    domain: raw.domain === '' ? domain : hostName(at('domain'), 'mail.domain'),
    smtpPort: int('smtpPort', 1, 65535),
    httpPort: int('httpPort', 1, 65535),
    ...(relay !== undefined && { relay }),
    perHour: int('perHour', 1, 1_000_000),
    perDay: int('perDay', 1, 10_000_000),
    recipients: int('recipients', 1, 1000),
    maxBytes: int('maxBytes', 1024, 50 * 1024 * 1024),
    restrictToAudience: bool('restrictToAudience'),
    pauseAfterRefusals: int('pauseAfterRefusals', 1, 10_000),
    pauseMinutes: number(at('pauseMinutes'), 'mail.pauseMinutes', 0, 7 * 24 * 60),
  };
}

function validateAudience(value: unknown): AudienceConfig {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalid('audience', value, 'an object like { "default": "staff" }');
  }
  known(value ?? {}, 'audience', Object.keys(DEFAULTS.audience));
  const given = (value as { default?: unknown } | undefined)?.default ?? DEFAULTS.audience.default;
  if (given !== 'public' && given !== 'staff' && given !== 'invite') {
    throw invalid('audience.default', given, 'one of "staff", "invite" or "public"');
  }
  return { default: given };
}

/** Unknown keys are refused; the addresses are IPs, the resolvers IP or IP:PORT. */
function validateDomains(value: unknown): DomainsConfig {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalid('domains', value, 'an object like { "verifyPort": 80 }');
  }
  known(value ?? {}, 'domains', [
    'verifyPort',
    'resolver',
    'addresses',
    'maxPerApp',
    'claimsPerTeamPerHour',
    'reservedAppNames',
  ]);
  const raw = { ...DEFAULTS.domains, ...(value as object | undefined) } as Record<string, unknown>;
  const at = (key: string) => ({ [`domains.${key}`]: raw[key] });
  const ips = (key: string, example: string, ok: (s: string) => boolean) => {
    if (raw[key] === undefined) return {};
    const list = stringList(at(key), `domains.${key}`);
    if (list.length === 0 || !list.every(ok)) throw invalid(`domains.${key}`, list, example);
    return { [key]: list };
  };
  const withPort = (s: string) => {
    const m = /^\[([0-9a-f:.]+)\]:(\d{1,5})$|^([0-9.]+):(\d{1,5})$/i.exec(s);
    if (!m) return net.isIP(s) !== 0;
    const port = Number(m[2] ?? m[4]);
    return net.isIP(m[1] ?? m[3] ?? '') !== 0 && port >= 1 && port <= 65535;
  };
  return {
    verifyPort: integer(at('verifyPort'), 'domains.verifyPort', 1, 65535),
    maxPerApp: integer(at('maxPerApp'), 'domains.maxPerApp', 0, 10_000),
    claimsPerTeamPerHour: integer(at('claimsPerTeamPerHour'), 'domains.claimsPerTeamPerHour', 0, 10_000),
    ...ips('resolver', "a list of DNS servers like ['192.0.2.53', '127.0.0.1:8053']", withPort),
    ...ips(
      'addresses',
      "a list of IP addresses like ['203.0.113.7', '2001:db8::7']",
      (s) => net.isIP(s) !== 0,
    ),
    ...(raw.reservedAppNames === undefined
      ? {}
      : { reservedAppNames: reservedNames(at('reservedAppNames')) }),
  };
}

/** App names as `petri apps create` takes them (lower case: a name in upper case would
 * reserve nothing). */
function reservedNames(raw: Record<string, unknown>): string[] {
  const list = stringList(raw, 'domains.reservedAppNames');
  const bad = list.find((n) => !/^[a-z][a-z0-9-]{1,29}$/.test(n));
  if (bad !== undefined) {
    throw invalid('domains.reservedAppNames', bad, "app names like ['vpn', 'intranet'] (lower case)");
  }
  return list;
}

/** A typo (warnDay, maxdays) would silently keep a default: unknown keys are refused. */
function validateLifecycle(value: unknown): LifecycleConfig {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalid('lifecycle', value, 'an object like { "defaultDays": 90, "maxDays": 90 }');
  }
  known(value ?? {}, 'lifecycle', Object.keys(DEFAULTS.lifecycle));
  const raw = { ...DEFAULTS.lifecycle, ...(value as object | undefined) } as Record<string, unknown>;
  const at = (key: keyof LifecycleConfig) => ({ [`lifecycle.${key}`]: raw[key] });
  const days = (key: keyof LifecycleConfig, min: number) => number(at(key), `lifecycle.${key}`, min, 36_500);
  const warn = raw.warnDays;
  if (!Array.isArray(warn) || warn.some((d) => typeof d !== 'number' || !Number.isFinite(d) || d <= 0)) {
    throw invalid('lifecycle.warnDays', warn, 'a list of numbers of days above 0, like [14, 7, 1]');
  }
  return {
    // Down to a second, so a test can watch an experiment expire.
    defaultDays: days('defaultDays', 1 / 86_400),
    maxDays: days('maxDays', 1 / 86_400),
    warnDays: [...new Set(warn as number[])].sort((a, b) => b - a),
    archiveAfterDays: days('archiveAfterDays', 0),
    checkMs: integer(at('checkMs'), 'lifecycle.checkMs', 50, 3_600_000),
  };
}

function sessionDays(value: unknown): number {
  const days = Number(value);
  if (!Number.isFinite(days) || days <= 0 || days > 3650) {
    throw invalid('identity.sessionDays', value, 'a number of days above 0 (0.5 is 12 hours), at most 3650');
  }
  return days;
}

/** The providers' secrets from the environment, so petri.json need not hold them. */
function identitySecretsFromEnv(value: unknown, env: NodeJS.ProcessEnv): unknown {
  if (value === null || typeof value !== 'object') return value;
  const identity = { ...(value as Record<string, unknown>) };
  const put = (section: string, key: string, from: string | undefined) => {
    const part = identity[section];
    if (from !== undefined && part !== null && typeof part === 'object') {
      identity[section] = { ...(part as object), [key]: from };
    }
  };
  put('oidc', 'clientSecret', env.PETRI_OIDC_CLIENT_SECRET);
  put('ldap', 'bindPassword', env.PETRI_LDAP_BIND_PASSWORD);
  return identity;
}

function validateIdentity(value: unknown): IdentityConfig {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid('identity', value, 'an object like { "ldap": {...}, "oidc": {...} }');
  }
  known(value as object, 'identity', [
    'oidc',
    'ldap',
    'sessionDays',
    'recheckSeconds',
    'signInAttempts',
    'adminEmail',
  ]);
  const raw = { ...DEFAULTS.identity, ...(value as object) } as Record<string, unknown>;
  const attempts = {
    ...DEFAULTS.identity.signInAttempts,
    ...(raw.signInAttempts as object | undefined),
  } as Record<string, unknown>;
  const at = (key: string) => ({ [`identity.signInAttempts.${key}`]: attempts[key] });
  return {
    // Down to a second, so a test can watch sessions expire and re-checks happen.
    sessionDays: sessionDays(raw.sessionDays),
    recheckSeconds: integer(
      prefixed(raw, 'identity', 'recheckSeconds'),
      'identity.recheckSeconds',
      1,
      86_400,
    ),
    signInAttempts: {
      perAddress: integer(at('perAddress'), 'identity.signInAttempts.perAddress', 1, 100_000),
      perUser: integer(at('perUser'), 'identity.signInAttempts.perUser', 1, 100_000),
      windowSeconds: integer(at('windowSeconds'), 'identity.signInAttempts.windowSeconds', 1, 86_400),
    },
    ...(raw.adminEmail === undefined ? {} : { adminEmail: adminEmail(raw.adminEmail) }),
    ...(raw.oidc === undefined ? {} : { oidc: validateOidc(raw.oidc) }),
    ...(raw.ldap === undefined ? {} : { ldap: validateLdap(raw.ldap) }),
  };
}

function adminEmail(value: unknown): string {
  if (typeof value !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value.trim())) {
    throw invalid('identity.adminEmail', value, 'an e-mail address like ana@example.org');
  }
  return value.trim().toLowerCase();
}

function validateOidc(value: unknown): OidcConfig {
  const o = section(
    value,
    'identity.oidc',
    '{ "issuer": "https://sso.example.org", "clientId": ..., "clientSecret": ... }',
  );
  return {
    issuer: httpUrl(o, 'identity.oidc.issuer', /^https?:$/, 'https://sso.example.org/realms/staff'),
    clientId: text(o, 'identity.oidc.clientId'),
    clientSecret: secret(o, 'identity.oidc.clientSecret', 'PETRI_OIDC_CLIENT_SECRET'),
    allowedDomains: optionalDomains(o, 'identity.oidc.allowedDomains'),
    allowedGroups: optionalList(o, 'identity.oidc.allowedGroups'),
    groupsClaim:
      o['identity.oidc.groupsClaim'] === undefined ? 'groups' : text(o, 'identity.oidc.groupsClaim'),
    adminGroups: optionalList(o, 'identity.oidc.adminGroups'),
  };
}

function validateLdap(value: unknown): LdapConfig {
  const l = section(value, 'identity.ldap', '{ "url": "ldap://ldap.example.org", "bindDn": ..., ... }');
  const url = httpUrl(l, 'identity.ldap.url', /^ldaps?:$/, 'ldaps://ldap.example.org:636');
  const userFilter =
    l['identity.ldap.userFilter'] === undefined ? '(uid={username})' : text(l, 'identity.ldap.userFilter');
  if (!userFilter.includes('{username}') || !/^\(.*\)$/.test(userFilter)) {
    throw invalid(
      'identity.ldap.userFilter',
      userFilter,
      "an LDAP filter in parentheses naming {username}, like '(uid={username})'",
    );
  }
  const startTls = l['identity.ldap.startTls'] ?? false;
  if (typeof startTls !== 'boolean') throw invalid('identity.ldap.startTls', startTls, 'true or false');
  if (startTls && url.startsWith('ldaps:')) {
    throw invalid(
      'identity.ldap.startTls',
      startTls,
      'false with an ldaps:// URL (that connection is TLS already)',
    );
  }
  return {
    url,
    bindDn: text(l, 'identity.ldap.bindDn'),
    bindPassword: secret(l, 'identity.ldap.bindPassword', 'PETRI_LDAP_BIND_PASSWORD'),
    userBase: text(l, 'identity.ldap.userBase'),
    userFilter,
    ...(l['identity.ldap.groupBase'] === undefined ? {} : { groupBase: text(l, 'identity.ldap.groupBase') }),
    allowedGroups: optionalList(l, 'identity.ldap.allowedGroups'),
    allowedDomains: optionalDomains(l, 'identity.ldap.allowedDomains'),
    adminGroups: optionalList(l, 'identity.ldap.adminGroups'),
    startTls,
  };
}

const OIDC_KEYS = [
  'issuer',
  'clientId',
  'clientSecret',
  'allowedDomains',
  'allowedGroups',
  'groupsClaim',
  'adminGroups',
];
const LDAP_KEYS = [
  'url',
  'bindDn',
  'bindPassword',
  'userBase',
  'userFilter',
  'groupBase',
  'allowedGroups',
  'allowedDomains',
  'adminGroups',
  'startTls',
];

/** A typo in a sign-in setting would silently weaken or disable it: unknown keys are refused. */
function known(value: object, name: string, keys: string[]): void {
  const unknown = Object.keys(value).find((k) => !keys.includes(k));
  if (unknown !== undefined) {
    throw new UserError(
      'bad_request',
      `configuration '${name}.${unknown}' is unknown; the keys are ${keys.join(', ')}`,
    );
  }
}

/** An identity section as an object whose keys carry their full name (for the messages). */
function section(value: unknown, name: string, example: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw invalid(name, value === undefined ? value : '(not an object)', `an object like ${example}`);
  }
  known(value, name, name.endsWith('oidc') ? OIDC_KEYS : LDAP_KEYS);
  return prefixed(value as Record<string, unknown>, name);
}

function prefixed(raw: Record<string, unknown>, name: string, only?: string): Record<string, unknown> {
  const keys = only === undefined ? Object.keys(raw) : [only];
  return Object.fromEntries(keys.map((k) => [`${name}.${k}`, raw[k]]));
}

/** A secret: required, never repeated in the message. */
function secret(raw: Record<string, unknown>, key: string, envName: string): string {
  const v = raw[key];
  if (typeof v !== 'string' || v === '') {
    throw new UserError(
      'bad_request',
      `configuration '${key}' must be a non-empty string (in the file or $${envName}), got ${v === undefined ? 'nothing' : 'another value (hidden)'}`,
    );
  }
  return v;
}

function httpUrl(raw: Record<string, unknown>, key: string, schemes: RegExp, example: string): string {
  const v = raw[key];
  let parsed: URL | undefined;
  try {
    parsed = typeof v === 'string' ? new URL(v) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!parsed || !schemes.test(parsed.protocol) || !parsed.hostname || parsed.username || parsed.password) {
    // A URL with a password in it is not repeated.
    throw invalid(
      key,
      typeof v === 'string' && v.includes('@') ? '(hidden)' : v,
      `a URL such as ${example} (without credentials)`,
    );
  }
  return (v as string).replace(/\/+$/, '');
}

function optionalList(raw: Record<string, unknown>, key: string): string[] {
  return raw[key] === undefined ? [] : stringList(raw, key);
}

function optionalDomains(raw: Record<string, unknown>, key: string): string[] {
  const list = optionalList(raw, key).map((d) => d.toLowerCase().replace(/^@/, ''));
  for (const d of list) {
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/.test(d)) {
      throw invalid(key, d, "a list of e-mail domains like ['example.org']");
    }
  }
  return list;
}

function validateCeilings(value: unknown): Ceilings {
  const raw = { ...DEFAULTS.ceilings, ...(value as object) } as Record<string, unknown>;
  return {
    instancesPerApp: integer(raw, 'instancesPerApp', 1, 10_000),
    instancesPerOwner: integer(raw, 'instancesPerOwner', 1, 100_000),
    addonsPerOwner: integer(raw, 'addonsPerOwner', 1, 10_000),
    oneOffsPerApp: integer(raw, 'oneOffsPerApp', 1, 10_000),
    oneOffsPerOwner: integer(raw, 'oneOffsPerOwner', 1, 100_000),
    queuedDeploysPerOwner: integer(raw, 'queuedDeploysPerOwner', 1, 10_000),
    appsPerOwner: integer(raw, 'appsPerOwner', 1, 100_000),
    teamsPerPerson: integer(raw, 'teamsPerPerson', 1, 100_000),
  };
}

function validateQuotas(value: unknown): Quotas {
  if (value !== undefined && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    throw invalid('quotas', value, 'an object like { "apps": 20, "memoryMiB": 8192, "addons": 10 }');
  }
  // A misspelt key (memory for memoryMiB) would otherwise leave the default on silently.
  const unknown = Object.keys(value ?? {}).find((key) => !(key in DEFAULTS.quotas));
  if (unknown) {
    throw new UserError(
      'bad_request',
      `configuration has no 'quotas.${unknown}'; the quotas are apps, memoryMiB and addons`,
    );
  }
  const raw = { ...DEFAULTS.quotas, ...(value as object | undefined) } as Record<string, unknown>;
  const at = (key: keyof Quotas) => ({ [`quotas.${key}`]: raw[key] });
  return {
    apps: integer(at('apps'), 'quotas.apps', 0, 1_000_000),
    memoryMiB: integer(at('memoryMiB'), 'quotas.memoryMiB', 0, 1_048_576_000),
    addons: integer(at('addons'), 'quotas.addons', 0, 1_000_000),
  };
}

/** maxLimits over the host's facts and memberMaxLimits over its defaults, key by key; a
 * member maximum above the per-app one is lowered to it (a small host's default). */
function limitCeilings(raw: Record<string, unknown>): Pick<PetriConfig, 'maxLimits' | 'memberMaxLimits'> {
  const ceiling = (section: string, base: LimitCeiling): LimitCeiling => {
    const given = { ...base, ...(raw[section] as object | undefined) } as Record<string, unknown>;
    const at = (key: keyof LimitCeiling) => ({ [`${section}.${key}`]: given[key] });
    return {
      memoryMiB: integer(at('memoryMiB'), `${section}.memoryMiB`, 16, 1_048_576),
      cpus: number(at('cpus'), `${section}.cpus`, 0.01, 1024),
      pids: integer(at('pids'), `${section}.pids`, 8, 1_000_000),
      diskMiB: integer(at('diskMiB'), `${section}.diskMiB`, 16, 1_048_576),
    };
  };
  const host = hostMaxLimits(readHostFacts(text(raw, 'dataDir')));
  const maxLimits = ceiling('maxLimits', {
    ...host,
    memoryMiB: Math.min(host.memoryMiB, 1_048_576),
    cpus: Math.min(host.cpus, 1024),
    diskMiB: Math.max(16, Math.min(host.diskMiB, 1_048_576)),
  });
  const member = ceiling('memberMaxLimits', DEFAULT_MEMBER_MAX_LIMITS);
  // New apps get defaultLimits: they too stay under the per-app maximum.
  const defaults = { ...DEFAULTS.defaultLimits, ...(raw.defaultLimits as object | undefined) } as Limits;
  for (const key of ['memoryMiB', 'cpus', 'pids', 'diskMiB'] as const) {
    const value = Number(defaults[key]);
    if (value > maxLimits[key])
      throw invalid(`defaultLimits.${key}`, defaults[key], `at most maxLimits.${key} (${maxLimits[key]})`);
  }
  return {
    maxLimits,
    memberMaxLimits: {
      memoryMiB: Math.min(member.memoryMiB, maxLimits.memoryMiB),
      cpus: Math.min(member.cpus, maxLimits.cpus),
      pids: Math.min(member.pids, maxLimits.pids),
      diskMiB: Math.min(member.diskMiB, maxLimits.diskMiB),
    },
  };
}

function validateAddons(value: unknown): AddonsConfig {
  const raw = { ...DEFAULTS.addons, ...(value as object) } as Record<string, unknown>;
  const engine = (name: AddonEngine): EngineConfig => {
    const key = `addons.${name}`;
    const e = raw[name] as Record<string, unknown> | undefined;
    if (e === null || typeof e !== 'object') throw invalid(key, e, 'an object like { "mode": "managed" }');
    if (e.mode === 'off') return { mode: 'off' };
    if (e.mode === 'managed') {
      return e.port === undefined
        ? { mode: 'managed' }
        : { mode: 'managed', port: integer(e, 'port', 1, 65535) };
    }
    if (e.mode === 'external') {
      const url = e.adminUrl;
      const scheme =
        name === 'postgres' ? /^postgres(ql)?:$/ : name === 'mysql' ? /^(mysql|mariadb):$/ : /^rediss?:$/;
      let parsed: URL | undefined;
      try {
        parsed = typeof url === 'string' ? new URL(url) : undefined;
      } catch {
        parsed = undefined;
      }
      if (!parsed || !scheme.test(parsed.protocol) || !parsed.hostname) {
        throw invalid(
          `${key}.adminUrl`,
          url === undefined ? url : '(hidden)',
          `an admin URL such as ${EXAMPLE_URLS[name]}`,
        );
      }
      return { mode: 'external', adminUrl: url as string };
    }
    throw invalid(`${key}.mode`, e.mode, "'managed', 'external' or 'off'");
  };
  return {
    postgres: engine('postgres'),
    mysql: engine('mysql'),
    redis: engine('redis'),
    serverUser: matching(raw, 'serverUser', /^[a-z_][a-z0-9_-]{0,31}$/),
    // Down to a second, so a test can watch the schedule and the expiry work.
    backupIntervalHours: number(raw, 'backupIntervalHours', 1 / 3600, 24 * 365),
    backupRetentionDays: number(raw, 'backupRetentionDays', 1 / 86_400, 3650),
    finalBackupRetentionDays: number(raw, 'finalBackupRetentionDays', 1 / 86_400, 3650),
  };
}

const EXAMPLE_URLS: Record<AddonEngine, string> = {
  postgres: 'postgres://admin:secret@db.internal:5432/postgres',
  mysql: 'mysql://admin:secret@db.internal:3306/',
  redis: 'redis://admin:secret@cache.internal:6379',
};

function validateNetwork(value: unknown): PetriConfig['network'] {
  const net = { ...DEFAULTS.network, ...(value as object) } as Record<string, unknown>;
  if (typeof net.enabled !== 'boolean') throw invalid('network.enabled', net.enabled, 'true or false');
  const bridge = matching(net, 'bridge', /^[a-z][a-z0-9-]{0,14}$/);
  const subnet = matching(net, 'subnet', /^(\d{1,3}\.){3}\d{1,3}\/(1[6-9]|2[0-8])$/);
  return { enabled: net.enabled, bridge, subnet };
}

/** V8's memory and compiler settings, and how AsyncLocalStorage works (NODE_FLAG says
 * which, and why). */
function nodeFlags(raw: Record<string, unknown>): string[] {
  const flags = stringList(raw, 'nodeFlags');
  const bad = flags.find((flag) => !NODE_FLAG.test(flag));
  if (bad !== undefined || flags.length > 16) {
    throw invalid(
      'nodeFlags',
      bad ?? flags,
      "up to 16 of V8's memory and compiler settings: --max-semi-space-size=N, --min-semi-space-size=N, --max-old-space-size=N, --v8-pool-size=N, --max-opt=N, --[no-]turbofan, --[no-]maglev, --[no-]sparkplug, --optimize-for-size, --single-threaded-gc, --experimental-async-context-frame",
    );
  }
  return flags;
}

function stringList(raw: Record<string, unknown>, key: string): string[] {
  const v = raw[key];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw invalid(key, v, 'a list of strings');
  return v as string[];
}

/** A directory given as an absolute path: it is mounted into sandboxes, so never relative to wherever Petri started. */
function absolutePath(raw: Record<string, unknown>, key: string): string {
  const value = raw[key];
  if (typeof value !== 'string' || !path.isAbsolute(value) || value.includes('\0')) {
    throw invalid(key, value, 'an absolute path like /var/lib/petri/runtimes');
  }
  return path.resolve(value);
}

/** A file Petri reads (a certificate, a key): an absolute path, so it does not depend on
 * where Petri was started. */
function filePath(raw: Record<string, unknown>, key: string): string {
  const value = raw[key];
  if (typeof value !== 'string' || !path.isAbsolute(value) || value.includes('\0')) {
    throw invalid(key, value, 'the absolute path of a PEM file, like /etc/petri/tls/wildcard.pem');
  }
  return path.resolve(value);
}

function text(raw: Record<string, unknown>, key: string): string {
  const v = raw[key];
  if (typeof v !== 'string' || v === '') throw invalid(key, v, 'a non-empty string');
  return v;
}

function matching(raw: Record<string, unknown>, key: string, re: RegExp): string {
  const v = text(raw, key);
  if (!re.test(v)) throw invalid(key, v, `a value matching ${re}`);
  return v;
}

function hostName(raw: Record<string, unknown>, key: string): string {
  return matching(
    raw,
    key,
    /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/,
  ).toLowerCase();
}

function number(raw: object, key: string, min: number, max: number): number {
  const v = Number((raw as Record<string, unknown>)[key]);
  if (!Number.isFinite(v) || v < min || v > max) {
    throw invalid(key, (raw as Record<string, unknown>)[key], `a number from ${min} to ${max}`);
  }
  return v;
}

function integer(raw: object, key: string, min: number, max: number): number {
  const v = number(raw, key, min, max);
  if (!Number.isInteger(v)) throw invalid(key, v, 'an integer');
  return v;
}

function invalid(key: string, value: unknown, expected: string): UserError {
  return new UserError(
    'bad_request',
    `configuration '${key}' must be ${expected}, got ${JSON.stringify(value)}`,
  );
}
