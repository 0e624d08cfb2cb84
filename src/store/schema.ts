// The tables of the state store, as Kysely sees them. Times are ISO strings (UTC).
import type { Generated, Insertable, Selectable, Updateable } from 'kysely';
import type { AddonEngine } from '../lib/config.js';

/** Platform roles: admin (everything), auditor (reads everything but secrets), member. */
export type PlatformRole = 'admin' | 'auditor' | 'member';
/** Roles in a team: viewer reads, member also changes apps, admin also manages the team. */
export type TeamRole = 'admin' | 'member' | 'viewer';
/** How a person signs in; bots never sign in (their tokens are made for them). */
export type IdentityProvider = 'local' | 'oidc' | 'ldap' | 'bot';
/** How an account came in: an invitation, an allowed domain or group of the sign-in policy
 * ('policy': one of the two, from before Petri told them apart), or an admin (the first
 * start, a bot). */
export type AdmittedBy = 'invitation' | 'domain' | 'group' | 'policy' | 'admin';

export interface UsersTable {
  id: Generated<number>;
  /** Unique; shown in lists and the audit trail (a person's e-mail, a bot's name). */
  name: string;
  role: PlatformRole;
  created_at: string;
  /** Unique among people; null for bots (and the first admin of an install from before teams). */
  email: Generated<string | null>;
  kind: Generated<'person' | 'bot'>;
  provider: Generated<IdentityProvider>;
  /** The provider's id for the person (OIDC `sub`, LDAP DN); unique per provider. */
  subject: Generated<string | null>;
  /** scrypt or argon2 hash (PHC string) of a local account's password. */
  password_hash: Generated<string | null>;
  /** Set when an admin disabled the user (or the provider says they are gone). */
  disabled_at: Generated<string | null>;
  last_seen_at: Generated<string | null>;
  /** How the account came in: the sign-in re-applies the policy to domain, group, policy. */
  admitted_by: Generated<AdmittedBy>;
  /** 'groups': the role came from the provider's adminGroups (they may take it back). */
  role_from: Generated<'groups' | null>;
  /** When the person was last re-checked with their provider (OIDC, LDAP). */
  checked_at: Generated<string | null>;
  /** Sealed JSON: what re-checking needs (an OIDC refresh token, an LDAP DN and name). */
  recheck_sealed: Generated<string | null>;
}

export interface TeamsTable {
  id: Generated<number>;
  name: string;
  /** The user whose personal team this is; null for shared teams. */
  personal_of: number | null;
  /** Quotas; null: the configuration's default. */
  quota_apps: Generated<number | null>;
  quota_memory_mib: Generated<number | null>;
  quota_addons: Generated<number | null>;
  created_at: string;
}

export interface TeamMembersTable {
  team_id: number;
  user_id: number;
  role: TeamRole;
  created_at: string;
}

export interface InvitationsTable {
  id: Generated<number>;
  email: string;
  role: PlatformRole;
  team_id: number | null;
  team_role: TeamRole | null;
  /** sha256 of the secret in the invitation link. */
  token_hash: string;
  created_by: number;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  used_by: number | null;
}

/** A sign-in in progress (OIDC code or device flow), single use; its data sealed. */
export interface LoginFlowsTable {
  id: string;
  kind: 'oidc' | 'device' | 'web';
  data_sealed: string;
  created_at: string;
  expires_at: string;
}

export interface TokensTable {
  id: Generated<number>;
  user_id: number;
  /** sha256 of the token; the token itself is never stored. */
  hash: string;
  description: string;
  created_at: string;
  last_used_at: string | null;
  /** api: made by `petri tokens create` or at first start; session: a sign-in's; bot: a
   * service account's; metrics: `petri tokens create --metrics`, good for GET /metrics only. */
  kind: Generated<'api' | 'session' | 'bot' | 'metrics'>;
  /** null: never expires. */
  expires_at: Generated<string | null>;
  /** When the user behind an SSO session was last re-checked with the provider. */
  checked_at: Generated<string | null>;
  /** Sealed JSON: what re-checking needs (an OIDC refresh token, an LDAP DN). */
  recheck_sealed: Generated<string | null>;
  /** Set when the token was revoked (by its owner, an admin, or with its user's disabling). */
  revoked_at: Generated<string | null>;
}

export type DataClass = 'none' | 'anonymous' | 'personal' | 'sensitive';
export type Stage = 'experiment' | 'graduating' | 'graduated' | 'archived';

export interface AppsTable {
  id: Generated<number>;
  name: string;
  owner_id: number;
  /** The team the app belongs to: its members' roles decide who may do what with it. */
  team_id: number;
  /** What the experiment is, in a sentence or two. */
  description: Generated<string>;
  data_class: Generated<DataClass>;
  /** For personal or sensitive data: what is collected, why. */
  privacy_note: Generated<string | null>;
  retention_days: Generated<number | null>;
  /** The data class an admin approved (sensitive data serves beyond the team only then). */
  approved_class: Generated<DataClass | null>;
  approved_by: Generated<number | null>;
  approved_at: Generated<string | null>;
  stage: Generated<Stage>;
  /** When the experiment ends (null only while graduating or once graduated/archived). */
  expires_at: Generated<string | null>;
  /** Set when the lifecycle loop stopped the app at expiry; a renewal clears it. */
  expired_at: Generated<string | null>;
  archived_at: Generated<string | null>;
  /** A graduated app's new home: its URL answers a redirect there. */
  redirect_url: Generated<string | null>;
  created_at: string;
  memory_mib: number;
  cpus: number;
  pids: number;
  /** The release that should serve; the reconciler moves the world to it. */
  desired_release_id: number | null;
  /** The release that serves now (router points at its instances). */
  serving_release_id: number | null;
  /** Sealed JSON object of config vars ('' = none); see lib/secrets. */
  config_sealed: Generated<string>;
  /** null: the server's default. */
  boot_timeout_ms: number | null;
  disk_mib: Generated<number>;
  /** Seconds without a request before the app sleeps; null: the server's default; 0: never. */
  idle_timeout_s: Generated<number | null>;
  /** Set while the app sleeps: no process runs, the router keeps its route. */
  sleeping_since: Generated<string | null>;
  active_at: Generated<string | null>;
  woke_at: Generated<string | null>;
  /** Who may reach it (issue 15; the router enforces it from the next stage on). */
  audience: Generated<Audience>;
  /** Raised by every change that must end visitors' cookies (they name the version). */
  audience_key_version: Generated<number>;
  /** Raised when what the notice says changes: visitors are asked to consent again. */
  notice_version: Generated<number>;
  /** The mail relay's credentials are derived from it: `petri mail rotate` raises it. */
  mail_key_version: Generated<number>;
}

export type Audience = 'public' | 'staff' | 'invite';

/** The people an invite app lets in, by e-mail (lowercase). */
export interface AudienceInviteesTable {
  app_id: number;
  email: string;
  invited_by: number | null;
  created_at: string;
}

/** Invite links: the secret is in the URL, only its sha256 here. */
export interface AudienceLinksTable {
  id: Generated<number>;
  app_id: number;
  token_hash: string;
  max_uses: number;
  /** New people it may still let in; each person takes one use, once. */
  uses_left: number;
  expires_at: string;
  revoked_at: string | null;
  created_by: number | null;
  created_at: string;
  /** A personal link's invitee (petri audience invite EMAIL --link); null: anyone with it. */
  email: Generated<string | null>;
}

/** A visitor's consent to an app's notice (of the version they read). */
export interface AudienceConsentsTable {
  app_id: number;
  /** An e-mail, or invite:<link id>. */
  visitor: string;
  notice_version: number;
  consented_at: string;
  withdrawn_at: string | null;
  last_visit_at: string | null;
}

/** A browser's sign-in on the API host (the petri_session cookie; only its sha256 here). */
export interface WebSessionsTable {
  id: Generated<number>;
  user_id: number;
  token_hash: string;
  /** The X-CSRF-Token every unsafe request of the session must carry. */
  csrf: string;
  description: string;
  created_at: string;
  /** The idle end is this plus the idle period (written at most once a minute). */
  last_used_at: string;
  /** The absolute end. */
  expires_at: string;
}

/** The gate's single-use SSO tickets: sha256 of the ticket, for one app, 60 s. */
export interface GateTicketsTable {
  hash: string;
  app_id: number;
  user_id: number;
  expires_at: string;
}

export type DeployStatus = 'queued' | 'building' | 'releasing' | 'succeeded' | 'failed';

export interface DeploysTable {
  id: string;
  /** 1: build without the build cache. */
  no_cache: Generated<number>;
  app_id: number;
  status: DeployStatus;
  error: string | null;
  release_id: number | null;
  created_by: number;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface ReleasesTable {
  id: Generated<number>;
  app_id: number;
  version: number;
  deploy_id: string | null;
  /** Read-only build artifact directory. */
  slug_dir: string;
  /** JSON object: process type -> command. */
  process_types: string;
  /** JSON object: environment the build decided on (PATH, NODE_ENV ...). */
  runtime_env: string;
  description: string;
  created_by: number;
  created_at: string;
  /** Sealed JSON snapshot of the config vars this release runs with. */
  config_sealed: Generated<string>;
  kind: Generated<ReleaseKind>;
  status: Generated<ReleaseStatus>;
  error: string | null;
  /** The Procfile's release: command, run once before the release gets traffic. */
  release_command: string | null;
  /** petri.toml's health check path; null: listening on PORT is enough. */
  health_path: string | null;
  phase_status: Generated<PhaseStatus>;
  /** The runtime id of the release command's process while it runs. */
  phase_instance: string | null;
  phase_started_at: string | null;
  /** JSON array of the host:port patterns this release may reach through the egress proxy. */
  egress: Generated<string>;
  /** The Node.js version (runtime cache) it was built and runs on; null: the host's. */
  node_version: string | null;
}

export type ReleaseKind = 'deploy' | 'config' | 'rollback' | 'addon';
export type ReleaseStatus = 'pending' | 'succeeded' | 'failed';
export type PhaseStatus = 'none' | 'pending' | 'running' | 'succeeded' | 'failed';

export interface FormationsTable {
  app_id: number;
  type: string;
  quantity: number;
  generation: Generated<number>;
}

export type InstanceState = 'starting' | 'up' | 'crashed' | 'stopping';

export interface InstancesTable {
  id: string;
  app_id: number;
  release_id: number;
  type: string;
  idx: number;
  /** Its PORT, the runtime driver's choice: null until start() (or list()) says it. An
   * instance without one is neither routed nor health-checked. */
  port: number | null;
  state: InstanceState;
  started_at: string;
  ready_at: string | null;
  restarts: number;
  exit_code: number | null;
  exit_reason: string | null;
  /** When a crashed instance may be started again (backoff). */
  next_start_at: string | null;
  /** Until when a stopping instance may drain before it gets SIGTERM. */
  stop_deadline: string | null;
  generation: Generated<number>;
  /** When SIGTERM was sent (drained, or its drain deadline passed). */
  signalled_at: string | null;
  /** Its address in its network namespace (null: the host's loopback). */
  address: Generated<string | null>;
}

export interface EgressAttemptsTable {
  app_id: number;
  host: string;
  port: number;
  /** 1 allowed, 0 refused. */
  allowed: number;
  count: number;
  last_seen: string;
  last_reason: string | null;
}

export type AddonStatus = 'provisioning' | 'ready' | 'destroying' | 'destroyed';

export interface AddonsTable {
  id: Generated<number>;
  app_id: number;
  /** Kept for the audit and the final backup after the app is gone. */
  app_name: string;
  name: string;
  type: AddonEngine;
  /** The config var the app gets the URL in (DATABASE_URL, or NAME_URL with --as). */
  env_var: string;
  mode: 'managed' | 'external';
  /** The database / key prefix on the server; unique per Petri installation. */
  resource: string;
  status: AddonStatus;
  /** Sealed JSON { slot, user, password, database } of the login the app uses. */
  credentials_sealed: Generated<string>;
  /** After a rotation: the old login's slot, revoked once no instance of a release before
   * retire_after_release_id runs. */
  retiring_slot: 'a' | 'b' | null;
  retire_after_release_id: number | null;
  created_by: number;
  created_at: string;
  destroyed_at: string | null;
  error: string | null;
}

export type BackupKind = 'manual' | 'scheduled' | 'final';
export type BackupStatus = 'running' | 'succeeded' | 'failed';

export interface AddonBackupsTable {
  id: Generated<number>;
  addon_id: number;
  kind: BackupKind;
  status: BackupStatus;
  size_bytes: number | null;
  error: string | null;
  /** Who asked: a user name, or 'petri' for scheduled backups. */
  created_by: string;
  created_at: string;
  finished_at: string | null;
  /** null: kept while the add-on lives. */
  expires_at: string | null;
}

export type AuditOutcome = 'ok' | 'denied' | 'failed';
/** How a change arrived: the HTTP API (CLI, dashboard), a git push, or the platform itself. */
export type AuditVia = 'api' | 'git' | 'system';

/** Append-only (triggers refuse UPDATE and DELETE); each row carries the hash of the one
 * before it (store/audit-chain.ts). Only domain/audit.ts writes here. */
export interface AuditEventsTable {
  id: Generated<number>;
  at: string;
  /** The user's name at the time (or 'petri', 'anonymous', an attempted sign-in name). */
  actor: string;
  action: string;
  target: string;
  /** JSON object. */
  detail: string;
  source_ip: string | null;
  actor_id: number | null;
  token_id: number | null;
  via: AuditVia;
  /** The app the event is about, by name (an app's events outlive it). */
  app: string | null;
  /** The team whose members see the event. */
  team_id: number | null;
  outcome: AuditOutcome;
  /** The HTTP status of the request, when the event is one. */
  status: number | null;
  request_id: string | null;
  prev_hash: string;
  hash: string;
}

/** The expiry warnings the lifecycle loop has sent: one row per app, expiry and threshold,
 * written with the audit event in one transaction, so a restart never sends one twice. A
 * renewal moves the expiry, so the next period's warnings are new rows. */
export interface AppWarningsTable {
  app_id: number;
  /** The expiry the warning was about. */
  expires_at: string;
  /** The threshold: days before expiry (fractional in tests). */
  days: number;
  sent_at: string;
}

/** Per-app figures of one minute (metric_minutes) or hour (metric_hours): see
 * src/metrics/. Only apps with activity in the period have a row. */
export interface MetricRowCounters {
  requests: number;
  s1xx: number;
  s2xx: number;
  s3xx: number;
  s4xx: number;
  s5xx: number;
  bytes: number;
  l0: number;
  l1: number;
  l2: number;
  l3: number;
  l4: number;
  l5: number;
  l6: number;
  l7: number;
  l8: number;
  l9: number;
  l10: number;
  l11: number;
  probes_ok: number;
  probes_failed: number;
  wakes: number;
  wake_ms: number;
  cpu_ms: number;
  /** Highest memory seen of all its processes together, in bytes. */
  memory_max: number;
  restarts: number;
  oom_kills: number;
}
export interface MetricMinutesTable extends MetricRowCounters {
  app_id: number;
  /** Unix minutes. */
  minute: number;
}
export interface MetricHoursTable extends MetricRowCounters {
  app_id: number;
  /** Unix hours. */
  hour: number;
}
/** Memory and CPU of one process type of an app in one minute (metric_type_minutes) or
 * hour (metric_type_hours), against its limits: see src/metrics/. */
export interface MetricTypeCounters {
  /** The most instances of the type measured at one pass. */
  instances: number;
  /** The highest memory of one of its instances, in bytes. */
  memory_max: number;
  /** The per-instance memory limit then (the highest in the period), in MiB. */
  memory_limit_mib: number;
  cpu_ms: number;
  /** The CPU time its instances were allowed: their CPU limit times the time measured. */
  cpu_limit_ms: number;
}
export interface MetricTypeMinutesTable extends MetricTypeCounters {
  app_id: number;
  minute: number;
  /** The process type (Procfile name), or '(other)' past the bound. */
  type: string;
}
export interface MetricTypeHoursTable extends MetricTypeCounters {
  app_id: number;
  hour: number;
  type: string;
}
/** The platform's incidents: kind 'control-plane' | 'router' | 'addon-server'. */
export interface IncidentsTable {
  id: Generated<number>;
  kind: string;
  subject: string;
  started_at: string;
  ended_at: string | null;
}
/** One alert episode per row: kind '5xx' | 'crash-loop' | 'memory'. */
export interface AppAlertsTable {
  id: Generated<number>;
  app_id: number;
  kind: string;
  message: string;
  started_at: string;
  ended_at: string | null;
}
export interface MetricStateTable {
  key: string;
  value: string;
}

/** A custom domain of an app (issue 20): routed while verified. */
export interface DomainsTable {
  id: Generated<number>;
  app_id: number;
  /** ASCII (IDNA) form, lower case, no trailing dot; unique across apps. */
  host: string;
  /** The same name as people write it (equal to host for an ASCII name). */
  unicode: string;
  /** What the router serves at /.well-known/petri-domain/ID for the verification. */
  token: string;
  state: Generated<DomainState>;
  /** Why the last check failed (null after a success). */
  reason: string | null;
  created_at: string;
  verified_at: string | null;
  last_check_at: string | null;
  next_check_at: string;
  /** Failed checks in a row. */
  failures: Generated<number>;
}

/** pending: not checked yet; verified: routed; failing: the last checks failed (see reason). */
export type DomainState = 'pending' | 'verified' | 'failing';

/** A certificate the router serves for one host (issue 20); its key is only in the router's files. */
export interface CertificatesTable {
  host: string;
  source: CertificateSource;
  /** The issuer's common name (or organization); null until a certificate was had. */
  issuer: string | null;
  /** Hex, as X.509 gives it. */
  serial: string | null;
  not_before: string | null;
  not_after: string | null;
  last_attempt_at: string | null;
  /** 'ok', or why the last attempt failed. */
  last_outcome: string | null;
  /** When the next attempt is due after a failure (ISO time). */
  next_attempt_at: string | null;
  /** Failed attempts in a row. */
  failures: Generated<number>;
  /** Since when no route wants the host (null: wanted). */
  unwanted_since: string | null;
}

export type CertificateSource = 'acme' | 'local-ca' | 'wildcard';

export interface Database {
  users: UsersTable;
  tokens: TokensTable;
  teams: TeamsTable;
  team_members: TeamMembersTable;
  invitations: InvitationsTable;
  login_flows: LoginFlowsTable;
  apps: AppsTable;
  deploys: DeploysTable;
  releases: ReleasesTable;
  formations: FormationsTable;
  instances: InstancesTable;
  audit_events: AuditEventsTable;
  egress_attempts: EgressAttemptsTable;
  addons: AddonsTable;
  addon_backups: AddonBackupsTable;
  app_warnings: AppWarningsTable;
  audience_invitees: AudienceInviteesTable;
  audience_links: AudienceLinksTable;
  audience_consents: AudienceConsentsTable;
  web_sessions: WebSessionsTable;
  gate_tickets: GateTicketsTable;
  mail_apps: MailAppsTable;
  mail_messages: MailMessagesTable;
  mail_deliveries: MailDeliveriesTable;
  mail_unsubscribes: MailUnsubscribesTable;
  metric_minutes: MetricMinutesTable;
  metric_hours: MetricHoursTable;
  incidents: IncidentsTable;
  app_alerts: AppAlertsTable;
  metric_state: MetricStateTable;
  metric_type_minutes: MetricTypeMinutesTable;
  metric_type_hours: MetricTypeHoursTable;
  certificates: CertificatesTable;
  domains: DomainsTable;
}

/** The mail relay's per-app state (issue 17): admin overrides (null: the server's default). */
export interface MailAppsTable {
  app_id: number;
  per_hour: number | null;
  per_day: number | null;
  recipients: number | null;
  refusal_streak: Generated<number>;
  paused_until: string | null;
}

/** queued: some recipient still due; sent; bounced (5xx, or retries given up); captured (no
 * smarthost); refused (at SMTP time: counted, never delivered, no body kept). */
export type MailStatus = 'queued' | 'sent' | 'bounced' | 'captured' | 'refused';

export interface MailMessagesTable {
  id: string;
  app_id: number;
  created_at: string;
  status: MailStatus;
  /** JSON list of addresses. */
  recipients: string;
  subject: string;
  size: number;
  /** Why it was refused or bounced. */
  reason: string | null;
  /** The message as accepted (headers added); null once delivered outside capture mode. */
  raw: Buffer | null;
}

export type MailDeliveryStatus = 'queued' | 'sending' | 'deferred' | 'sent' | 'bounced' | 'captured';

export interface MailDeliveriesTable {
  message_id: string;
  recipient: string;
  status: MailDeliveryStatus;
  attempts: Generated<number>;
  next_attempt_at: string;
  last_error: string | null;
  done_at: string | null;
}

export interface MailUnsubscribesTable {
  app_id: number;
  email: string;
  created_at: string;
}

export type App = Selectable<AppsTable>;
export type NewApp = Insertable<AppsTable>;
export type AppUpdate = Updateable<AppsTable>;
export type Deploy = Selectable<DeploysTable>;
export type Release = Selectable<ReleasesTable>;
export type Instance = Selectable<InstancesTable>;
export type User = Selectable<UsersTable>;
export type Team = Selectable<TeamsTable>;
export type Invitation = Selectable<InvitationsTable>;
export type Token = Selectable<TokensTable>;
export type Addon = Selectable<AddonsTable>;
export type AddonBackup = Selectable<AddonBackupsTable>;
