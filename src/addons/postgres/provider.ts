// PostgreSQL add-ons: add-on r is database r, owned by the NOLOGIN role r, reached through
// two login roles r_a and r_b (the rotation slots) that act as r in every session, so all
// the add-on's objects belong to r and dropping or rotating a login never orphans them.
// Over 500 lines on purpose: one engine's provider, its SQL and the clients it drives, read as one unit.
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { mkdtemp, open, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { errorMessage } from '../../lib/errors.js';
import { execOk } from '../../lib/exec.js';
import { until } from '../../lib/until.js';
import { ADDON_CONNECTIONS } from '../ceilings.js';
import { checkEnvVar, checkResource, randomPassword } from '../names.js';
import {
  type AddonCredentials,
  type AddonProvider,
  type AddonUsage,
  type Endpoint,
  EngineUnavailableError,
  type LoginSlot,
} from '../provider.js';
import { postgresBinary } from './binaries.js';

const SLOTS: readonly LoginSlot[] = ['a', 'b'];
/** Databases every server has and, by default, every login may connect to. */
const SHARED_DATABASES = ['postgres', 'template1'];
/** Dumps and restores of big databases take long; this only catches one that hangs. */
const DUMP_TIMEOUT_MS = 60 * 60 * 1000;
/** How long revoking a login or dropping an add-on waits for its sessions to end. */
const SESSIONS_CLOSE_TIMEOUT_MS = 5000;

/** Where the admin login reaches the server, from the admin URL. */
interface AdminTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** The roles and database of one add-on. */
interface AddonNames {
  resource: string;
  /** The database, and the NOLOGIN role that owns it and everything in it. */
  owner: string;
  logins: Record<LoginSlot, string>;
}

export function createPostgresProvider(adminUrl: string): AddonProvider {
  return new PostgresProvider(parseAdminUrl(adminUrl));
}

class PostgresProvider implements AddonProvider {
  readonly type = 'postgres' as const;
  private readonly pool: pg.Pool;
  private readonly where: string;
  private closed = false;
  private serverVersion: number | undefined;

  constructor(private readonly target: AdminTarget) {
    this.where = `${target.host}:${target.port}`;
    this.pool = new pg.Pool({
      ...clientConfig(target, target.database),
      max: 3,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // An idle admin connection dies when the server restarts; the pool drops it and the
    // next query opens a new one, so there is nothing to report here.
    this.pool.on('error', () => {});
  }

  async ping(): Promise<void> {
    await this.admin((c) => c.query('SELECT 1'));
  }

  async provision(resource: string): Promise<AddonCredentials> {
    const n = addonNames(resource);
    await this.admin(async (c) => {
      if (await this.anyExists(c, n)) {
        throw new Error(
          `postgres add-on ${resource} already exists (database or role ${resource}); deprovision it first or pick another name`,
        );
      }
    });
    const made = { owner: false, database: false };
    try {
      await this.admin(async (c) => {
        await c.query(
          `CREATE ROLE ${id(n.owner)} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT`,
        );
        made.owner = true;
        // template0: nothing an administrator added to template1 leaks into add-ons.
        await c.query(
          `CREATE DATABASE ${id(n.owner)} OWNER ${id(n.owner)} TEMPLATE template0 ENCODING 'UTF8'`,
        );
        made.database = true;
        // No other role (other add-ons' logins included) may connect to it.
        await c.query(`REVOKE ALL ON DATABASE ${id(n.owner)} FROM PUBLIC`);
        // Both login slots together: one add-on cannot take the server's every slot.
        await c.query(`ALTER DATABASE ${id(n.owner)} CONNECTION LIMIT ${ADDON_CONNECTIONS}`);
        await c.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${id(n.owner)} TO ${id(n.owner)}`);
      });
      await this.inDatabase(n.owner, async (c) => {
        await c.query(`ALTER SCHEMA public OWNER TO ${id(n.owner)}`);
        await c.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
      });
      return await this.setLogin(n, 'a', 'create');
    } catch (err) {
      await this.undoProvision(n, made, err);
      throw err;
    }
  }

  async createLogin(resource: string, slot: LoginSlot): Promise<AddonCredentials> {
    return this.setLogin(addonNames(resource), slot, 'create-or-alter');
  }

  async revokeLogin(resource: string, slot: LoginSlot): Promise<void> {
    const login = addonNames(resource).logins[slot];
    const existed = await this.admin(async (c) => {
      if (!(await this.existingRoles(c, [login])).length) return false;
      // A fresh unknown password too, so a later LOGIN by mistake does not revive the old one.
      await c.query(`ALTER ROLE ${id(login)} NOLOGIN PASSWORD ${lit(scramVerifier(randomPassword()))}`);
      return true;
    });
    if (existed) await this.closeSessions({ roles: [login] });
  }

  async deprovision(resource: string): Promise<void> {
    const n = addonNames(resource);
    const logins = SLOTS.map((s) => n.logins[s]);
    const version = await this.version();
    await this.admin(async (c) => {
      // Refuse new sessions first, so none slips in between closing the old ones and the drop.
      for (const login of await this.existingRoles(c, logins)) {
        await c.query(`ALTER ROLE ${id(login)} NOLOGIN`);
      }
    });
    await this.closeSessions({ roles: logins, database: n.owner });
    await this.admin(async (c) => {
      // FORCE (PostgreSQL 13+) also ends sessions that arrived meanwhile.
      const force = version >= 130000 ? ' WITH (FORCE)' : '';
      await c.query(`DROP DATABASE IF EXISTS ${id(n.owner)}${force}`);
    });
    await this.dropRoles([...logins, n.owner]);
  }

  async backup(resource: string, file: string): Promise<void> {
    const n = addonNames(resource);
    await this.requireAddon(n);
    const partial = `${file}.partial`;
    // A dump holds the app's data: readable by us alone, and only named `file` once complete.
    await rm(partial, { force: true });
    await writeFile(partial, '', { mode: 0o600 });
    try {
      await execOk(
        postgresBinary('pg_dump'),
        ['--format=custom', '--no-owner', '--no-acl', '--lock-wait-timeout=60s', `--file=${partial}`],
        { env: this.clientEnv(n.owner), timeoutMs: DUMP_TIMEOUT_MS },
      );
      await fsyncFile(partial);
      await rename(partial, file);
    } catch (err) {
      await rm(partial, { force: true });
      throw err;
    }
  }

  async restore(resource: string, file: string): Promise<void> {
    const n = addonNames(resource);
    await this.requireAddon(n);
    const work = await mkdtemp(path.join(tmpdir(), 'petri-pg-restore-'));
    try {
      // The archive as SQL: this also proves it is one before anything is dropped. Owners,
      // grants and tablespaces are the source add-on's, not this one's.
      const script = path.join(work, 'restore.sql');
      await execOk(
        postgresBinary('pg_restore'),
        [
          '--no-owner',
          '--no-acl',
          '--no-tablespaces',
          '--no-subscriptions',
          '--no-security-labels',
          `--file=${script}`,
          file,
        ],
        { timeoutMs: DUMP_TIMEOUT_MS },
      );
      // The app's sessions would hold locks the drop waits for; they reconnect afterwards.
      await this.closeSessions({ roles: SLOTS.map((s) => n.logins[s]) });
      const wipe = await this.admin((c) => this.wipeSql(c, n));
      // One transaction: the old data goes and the dump comes in together, or nothing
      // changes. The dump runs as the owner role, so whatever it creates belongs to it.
      await execOk(
        postgresBinary('psql'),
        ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '--single-transaction', '-c', wipe, '-f', script],
        { env: this.clientEnv(n.owner), timeoutMs: DUMP_TIMEOUT_MS },
      ).catch((err: unknown) => {
        throw new Error(
          `restoring ${file} into postgres add-on ${resource} failed; its data is unchanged: ${errorMessage(err)}`,
          {
            cause: err,
          },
        );
      });
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async usage(resource: string): Promise<AddonUsage> {
    const n = addonNames(resource);
    const { rows } = await this.admin((c) =>
      c.query<{ bytes: string; connections: number }>(
        `SELECT pg_database_size(d.oid)::text AS bytes,
                (SELECT count(*)::int FROM pg_stat_activity WHERE usename = ANY($2)) AS connections
           FROM pg_database d WHERE d.datname = $1`,
        [n.owner, SLOTS.map((s) => n.logins[s])],
      ),
    );
    const row = rows[0];
    if (!row) throw missingAddon(resource);
    return { bytes: Number(row.bytes), connections: row.connections };
  }

  url(credentials: AddonCredentials, at: Endpoint): string {
    const host = at.host.includes(':') ? `[${at.host}]` : at.host;
    const user = encodeURIComponent(credentials.user);
    const password = encodeURIComponent(credentials.password);
    return `postgres://${user}:${password}@${host}:${at.port}/${encodeURIComponent(credentials.database)}`;
  }

  shellCommand(envVar: string): string[] {
    checkEnvVar(envVar);
    return ['/bin/sh', '-c', `exec psql "$${envVar}"`];
  }

  async secureServer(): Promise<string | undefined> {
    return this.admin(async (c) => {
      const { rows } = await c.query<{ datname: string }>(
        `SELECT datname FROM pg_database
          WHERE datname = ANY($1) AND has_database_privilege('public', datname, 'CONNECT')`,
        [SHARED_DATABASES],
      );
      const open = rows.map((r) => r.datname);
      try {
        for (const db of open) {
          // A non-superuser admin keeps its own way in before PUBLIC loses it.
          await c.query(`GRANT CONNECT ON DATABASE ${id(db)} TO CURRENT_USER`);
          await c.query(`REVOKE CONNECT ON DATABASE ${id(db)} FROM PUBLIC`);
        }
      } catch (err) {
        if (!(err instanceof pg.DatabaseError && err.code === '42501')) throw err;
        return `the postgres admin at ${this.where} may not revoke CONNECT on ${open.join(', ')} from PUBLIC, so apps' logins can connect there and list every add-on's database: run REVOKE CONNECT ON DATABASE <name> FROM PUBLIC as their owner`;
      }
      return undefined;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /** Creates (provision: the role must be new) or updates the login of `slot` with a new password. */
  private async setLogin(
    n: AddonNames,
    slot: LoginSlot,
    mode: 'create' | 'create-or-alter',
  ): Promise<AddonCredentials> {
    const login = n.logins[slot];
    const password = randomPassword();
    // NOINHERIT: on its own the login has no rights in the database; it works only as the
    // owner role (the SET role below), so every object it makes belongs to the owner.
    const attributes = `LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT ${ADDON_CONNECTIONS} PASSWORD ${lit(scramVerifier(password))}`;
    await this.admin(async (c) => {
      await c.query('BEGIN');
      try {
        if (!(await this.existingRoles(c, [n.owner])).length) throw missingAddon(n.resource);
        const exists = (await this.existingRoles(c, [login])).length > 0;
        if (exists && mode === 'create') {
          throw new Error(`role ${login} already exists on the server; drop it or pick another add-on name`);
        }
        await c.query(`${exists ? 'ALTER' : 'CREATE'} ROLE ${id(login)} ${attributes}`);
        await c.query(`GRANT ${id(n.owner)} TO ${id(login)}`);
        await c.query(`ALTER ROLE ${id(login)} SET role = ${lit(n.owner)}`);
        await c.query(`GRANT CONNECT ON DATABASE ${id(n.owner)} TO ${id(login)}`);
        // Add-ons made before the limit existed get it at their next rotation.
        await c.query(`ALTER DATABASE ${id(n.owner)} CONNECTION LIMIT ${ADDON_CONNECTIONS}`);
        await c.query('COMMIT');
      } catch (err) {
        // A failed ROLLBACK means a dead connection, which ends the transaction anyway;
        // the error worth reporting is the one that got us here.
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    return { user: login, password, database: n.owner };
  }

  /** Removes what a failed provision made, keeping the provision's error as the one thrown. */
  private async undoProvision(
    n: AddonNames,
    made: { owner: boolean; database: boolean },
    cause: unknown,
  ): Promise<void> {
    try {
      await this.admin(async (c) => {
        if (made.database) await c.query(`DROP DATABASE IF EXISTS ${id(n.owner)}`);
        if (made.owner) await c.query(`DROP ROLE IF EXISTS ${id(n.owner)}`);
      });
    } catch (undoErr) {
      // The server went away: the caller retries, and deprovision takes the rest.
      if (cause instanceof EngineUnavailableError) return;
      throw new Error(
        `${errorMessage(cause)}; removing the half-made add-on failed too (${errorMessage(undoErr)}): deprovision ${n.resource}`,
        { cause },
      );
    }
  }

  /** Ends the sessions of `roles` (and of every role on `database`), waiting until they are gone. */
  private async closeSessions(which: { roles: string[]; database?: string }): Promise<void> {
    const terminate = () =>
      this.admin(async (c) => {
        const { rows } = await c.query<{ n: number }>(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
            WHERE (usename = ANY($1) OR datname = $2) AND pid <> pg_backend_pid()`,
          [which.roles, which.database ?? null],
        );
        return rows[0]?.n ?? 0;
      });
    // The first pass outside `until`, so a server that is down is reported as such.
    if ((await terminate()) === 0) return;
    await until(async () => (await terminate()) === 0, {
      timeout: SESSIONS_CLOSE_TIMEOUT_MS,
      interval: 50,
      message: `the sessions of ${which.database ?? which.roles.join(', ')} to end`,
    });
  }

  private async dropRoles(roles: string[]): Promise<void> {
    const drop = () =>
      this.admin(async (c) => {
        const existing = await this.existingRoles(c, roles);
        // Logins before the owner role they are members of (the order of `roles`).
        for (const role of roles.filter((r) => existing.includes(r))) await c.query(`DROP ROLE ${id(role)}`);
      });
    try {
      await drop();
    } catch (err) {
      if (!(err instanceof pg.DatabaseError && err.code === '2BP01')) throw err;
      // The roles own objects or hold grants in another database (one where PUBLIC may
      // create objects): drop those there, then the roles.
      await this.dropOwnedEverywhere(roles);
      await drop();
    }
  }

  private async dropOwnedEverywhere(roles: string[]): Promise<void> {
    const { databases, existing } = await this.admin(async (c) => ({
      databases: (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datallowconn'))
        .rows,
      existing: await this.existingRoles(c, roles),
    }));
    if (!existing.length) return;
    for (const { datname } of databases) {
      await this.inDatabase(datname, (c) =>
        c.query(`DROP OWNED BY ${existing.map(id).join(', ')} CASCADE`),
      ).catch((err: unknown) => {
        // Dropped since the listing: nothing of the roles is left in it.
        if (!(err instanceof pg.DatabaseError && err.code === '3D000')) throw err;
      });
    }
  }

  /** SQL, run as admin in the add-on's database, that empties it as provision left it and then
   * becomes the owner role for the dump that follows. */
  private async wipeSql(c: pg.PoolClient, n: AddonNames): Promise<string> {
    const roles = await this.existingRoles(c, [n.owner, ...SLOTS.map((s) => n.logins[s])]);
    const logins = roles.filter((r) => r !== n.owner);
    // DROP OWNED also takes large objects, extensions and default privileges, which dropping
    // schemas alone would leave; it revokes the roles' grants on the database, given back below.
    return [
      "SET lock_timeout = '60s'",
      `DROP OWNED BY ${roles.map(id).join(', ')} CASCADE`,
      'DROP SCHEMA IF EXISTS public CASCADE',
      `CREATE SCHEMA public AUTHORIZATION ${id(n.owner)}`,
      `GRANT CONNECT, TEMPORARY ON DATABASE ${id(n.owner)} TO ${id(n.owner)}`,
      ...(logins.length ? [`GRANT CONNECT ON DATABASE ${id(n.owner)} TO ${logins.map(id).join(', ')}`] : []),
      `SET ROLE ${id(n.owner)}`,
    ].join(';\n');
  }

  private async requireAddon(n: AddonNames): Promise<void> {
    await this.admin(async (c) => {
      const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [n.owner]);
      if (!rowCount || !(await this.existingRoles(c, [n.owner])).length) throw missingAddon(n.resource);
    });
  }

  private async anyExists(c: pg.PoolClient, n: AddonNames): Promise<boolean> {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [n.owner]);
    return Boolean(rowCount) || (await this.existingRoles(c, [n.owner])).length > 0;
  }

  private async existingRoles(c: pg.ClientBase, roles: string[]): Promise<string[]> {
    const { rows } = await c.query<{ rolname: string }>(
      'SELECT rolname FROM pg_roles WHERE rolname = ANY($1)',
      [roles],
    );
    const found = new Set(rows.map((r) => r.rolname));
    return roles.filter((r) => found.has(r));
  }

  private async version(): Promise<number> {
    if (this.serverVersion === undefined) {
      const { rows } = await this.admin((c) => c.query<{ v: string }>('SHOW server_version_num'));
      this.serverVersion = Number(rows[0]?.v);
    }
    return this.serverVersion;
  }

  /** Runs `fn` on an admin connection; a server that cannot be reached becomes EngineUnavailableError. */
  private async admin<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.unavailable(err);
    }
    let broken = false;
    try {
      return await fn(client);
    } catch (err) {
      broken = isConnectionError(err);
      throw broken ? this.unavailable(err) : err;
    } finally {
      client.release(broken);
    }
  }

  /** Runs `fn` as admin in another database (a pool connection is bound to one database). */
  private async inDatabase<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client(clientConfig(this.target, database));
    // Errors of a dying connection surface through the failing query below.
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      if (err instanceof pg.DatabaseError && err.code === '3D000') throw err;
      throw this.unavailable(err);
    }
    try {
      return await fn(client);
    } catch (err) {
      throw isConnectionError(err) ? this.unavailable(err) : err;
    } finally {
      // Closing a connection that already broke fails too; the work above decided the outcome.
      await client.end().catch(() => {});
    }
  }

  private unavailable(err: unknown): EngineUnavailableError {
    if (err instanceof EngineUnavailableError) return err;
    // Node reports a refused connection to several addresses as an AggregateError without a message.
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const cause = err instanceof Error && err.message ? err : new Error(code ?? String(err));
    return new EngineUnavailableError('postgres', this.where, cause);
  }

  /** The environment of pg_dump and psql: the admin login travels here, never on argv (ps shows argv). */
  private clientEnv(database: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PGHOST: this.target.host,
      PGPORT: String(this.target.port),
      PGUSER: this.target.user,
      PGDATABASE: database,
      PGCONNECT_TIMEOUT: '5',
      PGAPPNAME: 'petri',
    };
    if (this.target.password) env.PGPASSWORD = this.target.password;
    return env;
  }
}

function parseAdminUrl(adminUrl: string): AdminTarget {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    throw new Error(
      'the postgres admin URL is not a URL: expected postgres://user:password@host:port/database',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new Error(`the postgres admin URL must start with postgres://, got ${url.protocol}//`);
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: url.port ? Number(url.port) : 5432,
    user: decodeURIComponent(url.username) || 'postgres',
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)) || 'postgres',
  };
}

function clientConfig(target: AdminTarget, database: string): pg.ClientConfig {
  return {
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password || undefined,
    database,
    // A server that does not answer within this is reported as down, not waited for.
    connectionTimeoutMillis: 3000,
    application_name: 'petri',
  };
}

function addonNames(resource: string): AddonNames {
  checkResource(resource, 'postgres');
  return { resource, owner: resource, logins: { a: `${resource}_a`, b: `${resource}_b` } };
}

function missingAddon(resource: string): Error {
  return new Error(`postgres add-on ${resource} does not exist on this server; provision it first`);
}

const NETWORK_ERRORS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);

/** True for errors that mean the server is gone (or going), not that a statement was wrong. */
function isConnectionError(err: unknown): boolean {
  if (err instanceof pg.DatabaseError) {
    // 08: connection exceptions; 57P01-03: shutting down, crashed, starting up.
    return /^(08|57P0[1-3])/.test(err.code ?? '');
  }
  if (!(err instanceof Error)) return false;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && NETWORK_ERRORS.has(code)) return true;
  return /Connection terminated|timeout/i.test(err.message);
}

/** The SCRAM-SHA-256 verifier PostgreSQL stores (RFC 5802/7677), computed here so the
 * password itself never reaches the server, nor its statement log. Our passwords are
 * ASCII, so SASLprep leaves them unchanged. */
function scramVerifier(password: string): string {
  const iterations = 4096;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const id = (name: string) => pg.escapeIdentifier(name);
const lit = (value: string) => pg.escapeLiteral(value);
