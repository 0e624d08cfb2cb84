// The shapes the Petri API answers with, as the CLI and the dashboard see them.
// They mirror the API contract; the server owns the truth, so nothing here adds defaults.

/** sleeping: idle too long (or put to sleep), its processes stopped; the first request wakes it. */
export type AppStatus = 'new' | 'deploying' | 'running' | 'crashed' | 'down' | 'sleeping';
export type ProcessState = 'starting' | 'up' | 'crashed' | 'stopping';
export type DeployStatus = 'queued' | 'building' | 'releasing' | 'succeeded' | 'failed';

export interface Limits {
  memoryMiB: number;
  cpus: number;
  pids: number;
  /** Size of /app and of /tmp per instance. */
  diskMiB: number;
}

export interface AppProcess {
  /** Process type and index, e.g. web.1. */
  name: string;
  state: ProcessState;
  port: number | null;
  startedAt: string | null;
  restarts: number;
}

/** Per-app settings people change with `petri apps set`. */
export interface AppSettings {
  /** How long a new process has to listen on its port before its release fails. */
  bootTimeoutSeconds: number;
  /** How long without a request before the app sleeps; null: it never does. */
  idleTimeoutSeconds: number | null;
}

export interface App {
  name: string;
  url: string;
  owner: string;
  createdAt: string;
  status: AppStatus;
  /** The release serving now, e.g. 'v3'; null before the first deploy. */
  release: string | null;
  /** When the app went to sleep; null while it is awake. */
  sleepingSince: string | null;
  limits: Limits;
  settings: AppSettings;
  processes: AppProcess[];
}

export interface AppUpdate {
  limits?: Partial<Limits>;
  settings?: Partial<AppSettings>;
}

export interface Deploy {
  id: string;
  app: string;
  status: DeployStatus;
  release: string | null;
  error: string | null;
  createdAt: string;
  finishedAt: string | null;
  durationMs: number | null;
  url: string;
}

export interface User {
  name: string;
  role: string;
}

/** A line of build or release output while a deploy runs. */
export interface DeployLogEvent {
  type: 'log';
  time: string;
  source: string;
  text: string;
}

/** The last event of a deploy stream: the deploy in its final state. */
export interface DeployEndEvent {
  type: 'end';
  deploy: Deploy;
}

export type DeployEvent = DeployLogEvent | DeployEndEvent;

export interface LogLine {
  time: string;
  /** Where the line came from: a process (web.1), build, release, router... */
  source: string;
  text: string;
}

/** An app's config vars: the environment its processes get, besides what Petri sets (PETRI_*, PORT). */
export type ConfigVars = Record<string, string>;

/** A change to config vars; the server makes a new release of it. */
export interface ConfigChange {
  set?: ConfigVars;
  unset?: string[];
}

export type ReleaseStatus = 'pending' | 'succeeded' | 'failed';
export type ReleaseKind = 'deploy' | 'config' | 'rollback' | 'addon';

/** A version of an app: a slug with a config. Pending until it serves or fails. */
export interface Release {
  /** e.g. 'v3'. */
  version: string;
  status: ReleaseStatus;
  kind: ReleaseKind;
  /** e.g. "Deploy d12ab", "Set FOO, BAR", "Unset BAZ", "Rollback to v2". */
  description: string;
  /** Whether this release is the one serving now. */
  current: boolean;
  /** Why it failed; for a failing release phase, its output too. */
  error: string | null;
  createdBy: string;
  createdAt: string;
}

/** How many processes of each type should run, e.g. {web: 2, worker: 0}. */
export type Formation = Record<string, number>;

/** A running (or crashed) process of an app, as `petri ps` shows it. */
export interface Process {
  /** Process type and index, e.g. web.1. */
  name: string;
  type: string;
  release: string;
  state: ProcessState;
  startedAt: string | null;
  uptimeSeconds: number | null;
  restarts: number;
  memoryBytes: number | null;
  cpuSeconds: number | null;
  port: number | null;
  /** How it last ended, when it did. */
  lastExit: string | null;
  /** Its last lines of output when it crashed. */
  lastLines: string[];
}

export interface ProcessList {
  formation: Formation;
  processes: Process[];
  /** When the app went to sleep (its processes stopped, the formation kept); null while awake. */
  sleepingSince: string | null;
}

export const TERMINAL_RELEASE_STATUSES: readonly ReleaseStatus[] = ['succeeded', 'failed'];

export const TERMINAL_DEPLOY_STATUSES: readonly DeployStatus[] = ['succeeded', 'failed'];

export interface EgressAttempt {
  app: string;
  host: string;
  port: number;
  allowed: boolean;
  count: number;
  lastSeen: string;
  lastReason: string | null;
}

export interface AppEgress {
  /** host:port patterns from petri.toml's [network] egress. */
  declared: string[];
  attempts: EgressAttempt[];
}

export type AddonStatus = 'provisioning' | 'ready' | 'destroying';
export type AddonBackupKind = 'manual' | 'scheduled' | 'final';
export type AddonBackupStatus = 'running' | 'succeeded' | 'failed';

/** What an add-on holds now; null figures when they could not be read (see `error`). */
export interface AddonUsage {
  /** On disk (Redis: in memory). */
  bytes: number | null;
  connections: number | null;
  /** Why the figures are missing. */
  error?: string;
}

/** A database of the app's own (PostgreSQL, MariaDB, Redis), attached as a config var. */
export interface Addon {
  /** e.g. 'postgres', or 'cache' for one created `--as CACHE`. */
  name: string;
  app: string;
  /** postgres, mysql or redis. */
  type: string;
  /** The config var the app gets the URL in, e.g. DATABASE_URL. */
  envVar: string;
  /** managed (Petri runs the server) or external. */
  mode: string;
  status: AddonStatus;
  /** An old password is still valid until the new release serves. */
  rotating: boolean;
  createdAt: string;
  usage: AddonUsage;
}

export interface AddonBackup {
  /** b1, b2 ... */
  id: string;
  app: string;
  addon: string;
  type: string;
  /** final: taken when the add-on was destroyed. */
  kind: AddonBackupKind;
  status: AddonBackupStatus;
  sizeBytes: number | null;
  createdBy: string;
  createdAt: string;
  finishedAt: string | null;
  /** null: kept while the add-on lives. */
  expiresAt: string | null;
  error: string | null;
}

export interface AddonList {
  addons: Addon[];
  /** The types this server can create. */
  available: string[];
}

export interface AddonDetail {
  addon: Addon;
  /** How many backups it has. */
  backups: number;
  /** The newest backup that succeeded. */
  lastBackup: AddonBackup | null;
  /** The engine's client as the app (what `petri addons shell` runs); empty until ready. */
  shell: string[];
}

/** An add-on created or rotated: its config var arrives in `release` (null before the first deploy). */
export interface AddonChange {
  addon: Addon;
  release: Release | null;
}

export interface AddonDestroyed {
  /** The final backup, kept for the retention period. */
  backup: AddonBackup;
  /** The release without the add-on's config var; null when the app has none. */
  release: Release | null;
}

export interface AddonRestore {
  /** The backup restored, e.g. b12. */
  restored: string;
  /** What was there before the restore. */
  safetyBackup: AddonBackup;
}
