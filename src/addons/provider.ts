// The seam between Petri and a database engine: one AddonProvider per engine and server
// (managed by Petri or external), and one ManagedServer per engine Petri runs itself.
// Providers see only names Petri generated and plain files; the store, releases and the
// network are the caller's business. Every method is idempotent, so a step cut off by a
// crash is simply run again.

import type { AddonEngine } from '../lib/config.js';

/** One of lib/config's ADDON_ENGINES, the one list of engines. */
export type AddonType = AddonEngine;

export interface Endpoint {
  host: string;
  port: number;
}

/** What an app is given: one login on one database (PostgreSQL, MariaDB) or key prefix (Redis). */
export interface AddonCredentials {
  user: string;
  password: string;
  /** The database name, or for Redis the key prefix (e.g. 'petri_1a2b3c_7:'). */
  database: string;
}

export interface AddonUsage {
  /** On disk (PostgreSQL, MariaDB) or in memory (Redis). */
  bytes: number;
  /** Open sessions of the add-on's logins. */
  connections: number;
}

/** Each add-on has two login slots, so a rotation can hand out a new password while the
 * old one still serves, and revoke the old one once nothing uses it. */
export type LoginSlot = 'a' | 'b';

export interface AddonProvider {
  readonly type: AddonType;
  /** Resolves when the server answers the admin login; else throws EngineUnavailableError. */
  ping(): Promise<void>;
  /** Creates the database (or key space) `resource` and the login of slot 'a'. `resource`
   * matches ^[a-z][a-z0-9_]{0,40}$ and is unique on the server. If a step fails, whatever
   * was made is removed before the error is thrown. */
  provision(resource: string): Promise<AddonCredentials>;
  /** (Re)creates the login of `slot` with a fresh random password and the same rights as
   * the other slot; the other slot's login keeps working. */
  createLogin(resource: string, slot: LoginSlot): Promise<AddonCredentials>;
  /** The login can no longer connect, and its open sessions are closed. */
  revokeLogin(resource: string, slot: LoginSlot): Promise<void>;
  /** Drops the data and both logins, closing their sessions. Nothing left is not an error. */
  deprovision(resource: string): Promise<void>;
  /** Writes a dump of the data to `file` in the engine's standard format (pg_dump custom
   * format; mysqldump SQL; RESTORE commands for redis-cli --pipe). */
  backup(resource: string, file: string): Promise<void>;
  /** Replaces the data with the dump in `file` (as written by backup, of any resource of
   * the same engine), so that the add-on's logins own it. */
  restore(resource: string, file: string): Promise<void>;
  usage(resource: string): Promise<AddonUsage>;
  /** The URL an app connects with, when it reaches the server at `at`. */
  url(credentials: AddonCredentials, at: Endpoint): string;
  /** argv of the engine's client connected with the URL in environment variable `envVar`
   * (run inside the app's sandbox: `petri addons shell`). */
  shellCommand(envVar: string): string[];
  /** Takes from apps' logins what the engine gives every login by default and an app must
   * not have (PostgreSQL: CONNECT on `postgres` and `template1`, where a login could list
   * every add-on's database). Idempotent. Resolves with a warning for the operator when the
   * admin lacks the rights, else undefined. */
  secureServer(): Promise<string | undefined>;
  /** Closes admin connections. */
  close(): Promise<void>;
}

export interface ManagedServerOptions {
  /** The server's own directory, created if missing: state, data, socket and log. */
  dir: string;
  /** System user the server runs as (the install script creates 'petri-addons'). */
  user: string;
  /** Loopback port; default: a free one picked on first use and kept in the directory. */
  port?: number;
}

/** A server Petri runs from the host's binaries. It outlives the control plane (own
 * session, pid file), and the next start adopts it instead of starting a second one. */
export interface ManagedServer {
  readonly type: AddonType;
  /** Where it listens (127.0.0.1 and its port), picking and recording the port on first use. */
  endpoint(): Promise<Endpoint>;
  /** Initialises the data directory on first use, starts the server unless it already
   * runs, and resolves when it accepts the admin login. Returns the admin URL. */
  start(): Promise<string>;
  running(): Promise<boolean>;
  /** The server's processes, to measure what it costs. */
  pids(): Promise<number[]>;
  /** Stops it (fast shutdown), waiting until its processes are gone. */
  stop(): Promise<void>;
}

export class EngineUnavailableError extends Error {
  constructor(
    readonly type: AddonType,
    readonly where: string,
    cause: unknown,
  ) {
    super(
      `${type} server at ${where} is not reachable: ${cause instanceof Error ? cause.message : String(cause)}`,
    );
    this.name = 'EngineUnavailableError';
  }
}
