// What the route modules need from the rest of the control plane, handed in by server.ts.
// Shapes that belong to the runtime are restated here structurally, so the API depends on
// no driver (the import arrows: api → domain → store).
import type { Readable, Writable } from 'node:stream';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import type { AddonServer, OcspInfo } from '../contract/index.js';
import type { Counters, TypeCounters } from '../domain/metrics.js';
import type { Identity } from '../identity/index.js';
import type { PetriConfig } from '../lib/config.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { Store } from '../store/db.js';
import type { Addon, AddonBackup, App, Release, User } from '../store/schema.js';

/** The Fastify instance routes register on: each handler's params, query, body and answers
 * are typed from the contract schemas of its route, so no handler casts them. */
export type Api = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export interface OneOffRequest {
  /** argv; a single string is run with `sh -c`. */
  command: string[];
  tty: boolean;
  cols?: number;
  rows?: number;
}

/** A one-off command running in the app's sandbox with its current release and config. */
export interface OneOffProcess {
  stdin: Writable;
  stdout: Readable;
  /** Empty when tty is true (a terminal merges both streams). */
  stderr: Readable;
  resize(cols: number, rows: number): void;
  signal(signal: NodeJS.Signals): void;
  /** Resolves when it ended; its sandbox and files are gone by then. */
  wait(): Promise<{ exitCode: number | null; signal: string | null }>;
}

/** `petri addons`: the part of the control plane that talks to the database engines. */
export interface AddonOps {
  /** The engines this Petri offers. */
  readonly types: string[];
  create(
    user: User,
    app: App,
    input: { type: string; as?: string },
    ip?: string,
  ): Promise<{ addon: Addon; release: Release | null }>;
  destroy(
    user: User,
    app: App,
    name: string,
    ip?: string,
  ): Promise<{ backup: AddonBackup; release: Release | null }>;
  /** Final backups and removal of every add-on of an app about to be destroyed. */
  destroyAllOf(user: User, app: App, ip?: string): Promise<void>;
  rotate(user: User, app: App, name: string, ip?: string): Promise<{ addon: Addon; release: Release | null }>;
  backup(user: User, app: App, name: string, ip?: string): Promise<AddonBackup>;
  backups(app: App, name: string): Promise<AddonBackup[]>;
  restore(
    user: User,
    app: App,
    name: string,
    backupId: number,
    ip?: string,
  ): Promise<{ restored: AddonBackup; safety: AddonBackup }>;
  backupFile(
    user: User,
    app: App | undefined,
    name: string | undefined,
    backupId: number,
  ): Promise<{ file: string; backup: AddonBackup; source: Addon }>;
  usage(addon: Addon): Promise<{ bytes: number | null; connections: number | null; error?: string }>;
  /** Each engine's server, who runs it and whether it answers (admins, auditors). */
  servers(): Promise<Omit<AddonServer, 'addons'>[]>;
  /** argv of the engine's client connected with the app's URL, to run in its sandbox. */
  shellCommand(addon: Addon): Promise<string[]>;
}

export interface ApiContext {
  db: Store;
  config: PetriConfig;
  secrets: SecretBox;
  paths: DataPaths;
  logs: LogStore;
  deployLogs: DeployLogs;
  /** Desired state changed: wake the reconcilers now rather than at their next tick. */
  nudge: () => void;
  /** A reconciler pass now, resolved once it has ended (the router has the routes and gate
   * keys it made): for changes that must hold at the very next request (a gate key raised).
   * Absent in tests without a reconciler. */
  routesNow?: () => Promise<void>;
  /** Writes the egress proxy's counted attempts to the store now (before a read of them). */
  flushEgress: () => Promise<void>;
  /** Memory and CPU of running instances, from the runtime. */
  usage: (instanceIds: string[]) => Promise<Map<string, { memoryBytes?: number; cpuSeconds?: number }>>;
  /** Starts a one-off command for `petri run` (throws a UserError when the app has no release). */
  runOneOff: (app: App, request: OneOffRequest) => Promise<OneOffProcess>;
  addons: AddonOps;
  /** Sign-ins (OIDC, LDAP, local passwords) and the re-check of sessions' users; absent in
   * tests that sign nobody in. */
  identity?: Identity;
  /** The metrics collector (issue 18): the Prometheus text, what is counted but not yet in
   * the store; absent in tests that start none. */
  metrics?: MetricsView;
  /** The router's default certificate chain (PEM, no key): what every host without one of its
   * own is served, listed by `petri certs`; absent without HTTPS. */
  defaultCertificate?: () => Promise<string | undefined>;
  /** OCSP stapling of the router's certificate for a host (null: the default certificate);
   * absent without HTTPS. */
  ocsp?: (host: string | null) => OcspInfo | undefined;
  /** Petri's own mail (src/mail/notices.ts): absent when mail.enabled is false. */
  mailNotices?: {
    /** Mails an invitee of an app's audience their personal single-use link. */
    personalLink(invite: {
      appId: number;
      app: string;
      description: string;
      by: string;
      to: string;
      url: string;
      expiresAt: string;
    }): Promise<void>;
  };
}

/** What the API needs of the metrics collector (src/metrics/collector.ts). */
export interface MetricsView {
  text(): Promise<string>;
  readonly contentType: string;
  /** An app's counters not yet in the store, by unix minute. */
  live(app: string): { minute: number; counters: Counters }[];
  /** Its memory and CPU per process type not yet in the store, by unix minute. */
  liveTypes(app: string): { minute: number; type: string; counters: TypeCounters }[];
  observeApi(route: string, method: string, status: number, seconds: number): void;
  /** A wake of a sleeping app and how long it took (for the waker to call). */
  countWake(app: string, ms: number): void;
  /** Messages an app sent through the mail relay (for the relay to call). */
  countMailSent(app: string, n?: number): void;
}
