// MariaDB/MySQL add-ons: add-on r is database r, reached through two logins r_a and r_b (the
// rotation slots) granted on r alone; a restored dump's definers become login a, never the admin.
// Over 500 lines on purpose: one engine's provider, its SQL and the clients it drives, read as one unit.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { finished } from 'node:stream/promises';
import { createPool, escapeId, escape as escapeLiteral, type Pool, type RowDataPacket } from 'mysql2/promise';
import { errorMessage } from '../../lib/errors.js';
import { ExecError, execOk } from '../../lib/exec.js';
import { until } from '../../lib/until.js';
import { MARIADB_LOGIN_CONNECTIONS } from '../ceilings.js';
import { checkEnvVar, checkResource, randomPassword } from '../names.js';
import {
  type AddonCredentials,
  type AddonProvider,
  type AddonUsage,
  type Endpoint,
  EngineUnavailableError,
  type LoginSlot,
} from '../provider.js';

const CHARSET = 'utf8mb4';
const COLLATION = 'utf8mb4_unicode_ci';
/** Per login: an app's pool and a console; a runaway app cannot take the whole server. */
const MAX_USER_CONNECTIONS = MARIADB_LOGIN_CONNECTIONS;
/** A killed session leaves the process list within milliseconds unless the server is stuck. */
const SESSION_CLOSE_MS = 10_000;
/** Dumps and restores of a large database take long; only a hung client should hit this. */
const DUMP_TIMEOUT_MS = 60 * 60_000;
/** A fixed PATH for the clients, so the environment of the control plane does not leak in
 * (MYSQL_PWD or MYSQL_HOST there would silently change whom a dump talks to). */
const CLIENT_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };

/** Errors that mean the server cannot be reached or refuses the admin, not that a statement failed. */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_HOST_IS_BLOCKED',
  'ER_HOST_NOT_PRIVILEGED',
]);

interface Admin {
  host: string;
  port: number;
  user: string;
  password: string;
}

export function createMysqlProvider(adminUrl: string): AddonProvider {
  return new MysqlProvider(parseAdminUrl(adminUrl));
}

class MysqlProvider implements AddonProvider {
  readonly type = 'mysql' as const;
  private pool?: Pool;
  private readonly where: string;

  constructor(private readonly admin: Admin) {
    this.where = `${admin.host}:${admin.port}`;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async provision(resource: string): Promise<AddonCredentials> {
    const r = checkResource(resource, 'mysql');
    // Undo only what this call made: a database or login that was already there belongs to
    // someone else, and removing it would turn a refused provision into data loss.
    const undo: Array<() => Promise<void>> = [];
    try {
      await this.createDatabase(r);
      undo.push(() => this.run(`DROP DATABASE IF EXISTS ${escapeId(r)}`));
      const creds = login(r, 'a');
      await this.createUser(creds);
      undo.push(() => this.run(`DROP USER IF EXISTS ${account(creds.user)}`));
      await this.grant(r, creds.user);
      return creds;
    } catch (err) {
      await this.undoProvision(r, undo.reverse(), err);
      throw err;
    }
  }

  async createLogin(resource: string, slot: LoginSlot): Promise<AddonCredentials> {
    const r = checkResource(resource, 'mysql');
    await this.requireDatabase(r);
    const creds = login(r, checkSlot(slot));
    const user = account(creds.user);
    const limits = `WITH MAX_USER_CONNECTIONS ${MAX_USER_CONNECTIONS}`;
    await this.run(
      `CREATE USER IF NOT EXISTS ${user} IDENTIFIED BY ${escapeLiteral(creds.password)} ${limits}`,
    );
    // The login may exist from an earlier rotation (locked, with a password nobody knows).
    await this.run(
      `ALTER USER ${user} IDENTIFIED BY ${escapeLiteral(creds.password)} ${limits} ACCOUNT UNLOCK`,
    );
    await this.grant(r, creds.user);
    return creds;
  }

  async revokeLogin(resource: string, slot: LoginSlot): Promise<void> {
    const r = checkResource(resource, 'mysql');
    const user = loginName(r, checkSlot(slot));
    // Locked rather than dropped: views, triggers and routines the login created have it as
    // DEFINER and stop working once it is gone, while a locked definer still runs them.
    await this.run(
      `ALTER USER IF EXISTS ${account(user)} IDENTIFIED BY ${escapeLiteral(randomPassword())} ACCOUNT LOCK`,
    );
    await this.closeSessions([user]);
  }

  async deprovision(resource: string): Promise<void> {
    const r = checkResource(resource, 'mysql');
    const users = [loginName(r, 'a'), loginName(r, 'b')];
    // Lock first so nothing reconnects between the kill and the drop; DROP USER alone
    // leaves open sessions running.
    for (const user of users) await this.run(`ALTER USER IF EXISTS ${account(user)} ACCOUNT LOCK`);
    await this.closeSessions(users, r);
    await this.run(`DROP DATABASE IF EXISTS ${escapeId(r)}`);
    await this.run(`DROP USER IF EXISTS ${users.map(account).join(', ')}`);
  }

  async backup(resource: string, file: string): Promise<void> {
    const r = checkResource(resource, 'mysql');
    await this.requireDatabase(r);
    const partial = `${file}.partial`;
    await this.withOptionFile(async (options) => {
      try {
        // Without --databases the dump has no CREATE DATABASE or USE, so it restores into
        // any database. --single-transaction gives a consistent InnoDB snapshot without
        // locking the app out (and turns --lock-tables off).
        await execOk(
          'mariadb-dump',
          [
            `--defaults-extra-file=${options}`,
            '--single-transaction',
            '--routines',
            '--triggers',
            '--events',
            '--hex-blob',
            `--default-character-set=${CHARSET}`,
            `--result-file=${partial}`,
            r,
          ],
          { env: CLIENT_ENV, timeoutMs: DUMP_TIMEOUT_MS },
        );
      } catch (err) {
        await rm(partial, { force: true });
        throw this.clientError(`mariadb-dump of ${r}`, err);
      }
    });
    await rename(partial, file);
  }

  async restore(resource: string, file: string): Promise<void> {
    const r = checkResource(resource, 'mysql');
    await stat(file).catch((err: unknown) => {
      throw new Error(`cannot restore ${r}: no dump at ${file} (${errorMessage(err)})`);
    });
    const work = await mkdtemp(path.join(tmpdir(), 'petri-mysql-restore-'));
    try {
      // Rewritten before anything is dropped, so a dump that cannot be read costs nothing.
      const sql = path.join(work, 'restore.sql');
      await retargetDump(file, sql, r);
      const options = await writeOptionFile(work, this.admin);
      // An app still connected would hold metadata locks that make DROP DATABASE wait
      // forever, and it would see half a restore anyway.
      await this.closeSessions([loginName(r, 'a'), loginName(r, 'b')], r);
      await this.run(`DROP DATABASE IF EXISTS ${escapeId(r)}`);
      await this.createDatabase(r);
      // Grants on `r`.* name the database, so the logins' rights survive the drop.
      await this.feed(options, r, sql);
      await this.refuseForeignDefiners(r);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async usage(resource: string): Promise<AddonUsage> {
    const r = checkResource(resource, 'mysql');
    const [size] = await this.query(
      'SELECT COALESCE(SUM(DATA_LENGTH + INDEX_LENGTH), 0) AS bytes FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [r],
    );
    const [sessions] = await this.query(
      'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER IN (?)',
      [[loginName(r, 'a'), loginName(r, 'b')]],
    );
    return { bytes: Number(size?.bytes ?? 0), connections: Number(sessions?.n ?? 0) };
  }

  url(credentials: AddonCredentials, at: Endpoint): string {
    const host = at.host.includes(':') ? `[${at.host}]` : at.host;
    const user = encodeURIComponent(credentials.user);
    const password = encodeURIComponent(credentials.password);
    return `mysql://${user}:${password}@${host}:${at.port}/${encodeURIComponent(credentials.database)}`;
  }

  shellCommand(envVar: string): string[] {
    checkEnvVar(envVar);
    return ['/bin/sh', '-c', clientScript(envVar)];
  }

  /** Nothing to take back: a new login can reach nothing but what it is granted. */
  async secureServer(): Promise<string | undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.end();
  }

  private connection(): Pool {
    // Small: the provider does admin work one step at a time; connectTimeout keeps a dead
    // server from stalling a reconcile pass.
    this.pool ??= createPool({
      host: this.admin.host,
      port: this.admin.port,
      user: this.admin.user,
      password: this.admin.password,
      connectionLimit: 3,
      maxIdle: 1,
      connectTimeout: 3000,
      multipleStatements: false,
      charset: 'utf8mb4_unicode_ci',
    });
    return this.pool;
  }

  private async query(sql: string, values: unknown[] = []): Promise<RowDataPacket[]> {
    try {
      const [rows] = await this.connection().query<RowDataPacket[]>(sql, values);
      return rows;
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private async run(sql: string, values: unknown[] = []): Promise<void> {
    try {
      await this.connection().query(sql, values);
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private unavailable(err: unknown): unknown {
    redactStatement(err);
    const code = sqlCode(err);
    return code !== undefined && UNREACHABLE.has(code)
      ? new EngineUnavailableError('mysql', this.where, err)
      : err;
  }

  private async createDatabase(r: string): Promise<void> {
    try {
      await this.run(`CREATE DATABASE ${escapeId(r)} CHARACTER SET ${CHARSET} COLLATE ${COLLATION}`);
    } catch (err) {
      if (sqlCode(err) !== 'ER_DB_CREATE_EXISTS') throw err;
      throw new Error(
        `database ${r} already exists on the MariaDB server at ${this.where}: add-on names are unique, so it is left over from something else; deprovision ${r} or drop it by hand`,
      );
    }
  }

  private async createUser(creds: AddonCredentials): Promise<void> {
    try {
      // No IF NOT EXISTS: a login of that name that is already there is not ours to reuse.
      await this.run(
        `CREATE USER ${account(creds.user)} IDENTIFIED BY ${escapeLiteral(creds.password)} WITH MAX_USER_CONNECTIONS ${MAX_USER_CONNECTIONS}`,
      );
    } catch (err) {
      if (sqlCode(err) !== 'ER_CANNOT_USER') throw err;
      throw new Error(
        `login ${creds.user} already exists on the MariaDB server at ${this.where}: it is left over from something else; drop it (DROP USER '${creds.user}'@'%') or deprovision ${creds.database}`,
      );
    }
  }

  private async grant(r: string, user: string): Promise<void> {
    // Everything on its own database and nothing else: no GRANT OPTION, no global rights.
    await this.run(`GRANT ALL PRIVILEGES ON ${grantScope(r)} TO ${account(user)}`);
  }

  private async requireDatabase(r: string): Promise<void> {
    const rows = await this.query(
      'SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?',
      [r],
    );
    if (rows.length === 0) {
      throw new Error(`no database ${r} on the MariaDB server at ${this.where}: provision the add-on first`);
    }
  }

  private async undoProvision(r: string, undo: Array<() => Promise<void>>, cause: unknown): Promise<void> {
    for (const step of undo) {
      try {
        await step();
      } catch (err) {
        const both = new Error(
          `provisioning ${r} failed (${errorMessage(cause)}), and removing what it made failed too (${errorMessage(err)}): run deprovision for ${r} once the server answers`,
          { cause },
        );
        // Still "unavailable" when that is why, so the caller knows to retry later.
        throw cause instanceof EngineUnavailableError
          ? new EngineUnavailableError('mysql', this.where, both)
          : both;
      }
    }
  }

  /** Kills every session of `users` (and any on database `db`) and waits until they are gone. */
  private async closeSessions(users: string[], db?: string): Promise<void> {
    const sweep = async (): Promise<{ done: boolean } | { error: unknown }> => {
      try {
        const rows = await this.query(
          'SELECT ID FROM information_schema.PROCESSLIST WHERE (USER IN (?) OR DB = ?) AND ID <> CONNECTION_ID()',
          [users, db ?? null],
        );
        for (const row of rows) await this.kill(Number(row.ID));
        return { done: rows.length === 0 };
      } catch (error) {
        return { error };
      }
    };
    // A failing query ends the wait at once rather than after the deadline.
    const outcome = await until(
      async () => {
        const result = await sweep();
        return 'error' in result || result.done ? result : false;
      },
      { timeout: SESSION_CLOSE_MS, message: `the sessions of ${users.join(', ')} to close` },
    );
    if ('error' in outcome) throw outcome.error;
  }

  private async kill(id: number): Promise<void> {
    try {
      await this.run('KILL CONNECTION ?', [id]);
    } catch (err) {
      // Ended on its own between the listing and the kill.
      if (sqlCode(err) !== 'ER_NO_SUCH_THREAD') throw err;
    }
  }

  private async withOptionFile<T>(use: (file: string) => Promise<T>): Promise<T> {
    const dir = await mkdtemp(path.join(tmpdir(), 'petri-mysql-'));
    try {
      return await use(await writeOptionFile(dir, this.admin));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async feed(options: string, r: string, sql: string): Promise<void> {
    // The script is constant; the paths and the name arrive as positional parameters, so
    // nothing from input is parsed by the shell. The shell only opens the file as stdin.
    // --binary-mode keeps the client from reading backslash commands in data (DELIMITER
    // still works, and the dump's own sandbox line turns the rest off).
    const script =
      'exec mariadb --defaults-extra-file="$1" --binary-mode --default-character-set=utf8mb4 --database="$2" < "$3"';
    try {
      await execOk('/bin/sh', ['-c', script, 'petri-restore', options, r, sql], {
        env: CLIENT_ENV,
        timeoutMs: DUMP_TIMEOUT_MS,
      });
    } catch (err) {
      throw this.clientError(`restoring ${r}`, err);
    }
  }

  /** The dump was rewritten so every definer is the add-on's login; check, because an object
   * running as another add-on's login would hand this one that add-on's data. */
  private async refuseForeignDefiners(r: string): Promise<void> {
    const own = new Set([`${loginName(r, 'a')}@%`, `${loginName(r, 'b')}@%`]);
    const sources = [
      ['ROUTINES', 'ROUTINE_SCHEMA', 'ROUTINE_NAME'],
      ['TRIGGERS', 'TRIGGER_SCHEMA', 'TRIGGER_NAME'],
      ['VIEWS', 'TABLE_SCHEMA', 'TABLE_NAME'],
      ['EVENTS', 'EVENT_SCHEMA', 'EVENT_NAME'],
    ] as const;
    const foreign: string[] = [];
    for (const [table, schema, name] of sources) {
      const rows = await this.query(
        `SELECT ${name} AS name, DEFINER AS definer FROM information_schema.${table} WHERE ${schema} = ?`,
        [r],
      );
      for (const row of rows) {
        if (!own.has(String(row.definer))) foreign.push(`${String(row.name)} (${String(row.definer)})`);
      }
    }
    if (foreign.length === 0) return;
    await this.run(`DROP DATABASE IF EXISTS ${escapeId(r)}`);
    await this.createDatabase(r);
    throw new Error(
      `restore of ${r} refused: ${foreign.join(', ')} would run as another login; the database was left empty. Restore a dump written by Petri's backup`,
    );
  }

  /** A client that could not reach the server is the engine being down, not a bad dump. */
  private clientError(what: string, err: unknown): unknown {
    if (err instanceof ExecError && /\b(2002|2003|2013)\b|Can't connect/.test(err.result.stderr)) {
      return new EngineUnavailableError('mysql', this.where, err.result.stderr.trim());
    }
    return new Error(`${what} failed: ${errorMessage(err)}`, { cause: err });
  }
}

function parseAdminUrl(adminUrl: string): Admin {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    // The URL holds a password: not repeated in the message.
    throw new Error('the MariaDB admin URL is not a URL: use mysql://user:password@host:port/');
  }
  if (url.protocol !== 'mysql:' && url.protocol !== 'mariadb:') {
    throw new Error(`the MariaDB admin URL must start with mysql://, got ${url.protocol}//`);
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username) || 'root',
    password: decodeURIComponent(url.password),
  };
}

function checkSlot(slot: LoginSlot): LoginSlot {
  if (slot !== 'a' && slot !== 'b') throw new Error(`login slot must be 'a' or 'b', got '${String(slot)}'`);
  return slot;
}

function loginName(resource: string, slot: LoginSlot): string {
  return `${resource}_${slot}`;
}

function login(resource: string, slot: LoginSlot): AddonCredentials {
  return { user: loginName(resource, slot), password: randomPassword(), database: resource };
}

function account(user: string): string {
  return `${escapeLiteral(user)}@'%'`;
}

/** `r`.* with _ and % escaped: in GRANT they are wildcards, so a plain grant on petri_1_a
 * would also cover a database petriX1Xa the app could create, or another add-on's. */
function grantScope(resource: string): string {
  return `${escapeId(resource.replace(/[\\_%]/g, '\\$&'))}.*`;
}

/** mysql2 puts the failed statement on its errors (`err.sql`), and a logger serialising the
 * error would write out the password of a CREATE or ALTER USER. */
function redactStatement(err: unknown): void {
  const failed = err as { sql?: unknown } | null;
  if (failed && typeof failed.sql === 'string') {
    failed.sql = failed.sql.replace(/IDENTIFIED BY '(?:[^'\\]|\\.)*'/g, "IDENTIFIED BY '<redacted>'");
  }
}

function sqlCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A [client] option file (mode 0600) with the admin login, for --defaults-extra-file. */
async function writeOptionFile(dir: string, admin: Admin): Promise<string> {
  const file = path.join(dir, 'admin.cnf');
  const lines = ['[client]', `user=${optionValue(admin.user)}`, `host=${optionValue(admin.host)}`];
  lines.push(`port=${admin.port}`, 'protocol=TCP');
  // An empty password is left out: `password=` alone would be read as "ask for it".
  if (admin.password) lines.push(`password=${optionValue(admin.password)}`);
  await writeFile(file, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  return file;
}

function optionValue(value: string): string {
  if (/[\x00-\x1f]/.test(value))
    throw new Error('the MariaDB admin user, host and password must not contain control characters');
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

// Statement shapes in a mariadb-dump that name a definer or the dumped database, each at the
// start of a line. Row data never starts a line with them: every row line starts with '('.
const DEFINER_LINE =
  /^(CREATE |\/\*!50013 |\/\*!50003 CREATE\*\/ \/\*!50017 |\/\*!50106 CREATE\*\/ \/\*!50117 )DEFINER=(?:`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?|CURRENT_USER(?:\(\))?)/;
const ALTER_DATABASE_LINE = /^ALTER DATABASE `(?:[^`]|``)*`/;

/** One line of a dump of any add-on, made to restore into `resource`: definers become its
 * login a (never the admin, which would let the app run code with the admin's rights, nor
 * the source's login), and the collation switches around routines name its database. */
export function retargetDumpLine(line: string, resource: string): string {
  return line
    .replace(DEFINER_LINE, (_, head: string) => `${head}DEFINER=${escapeId(loginName(resource, 'a'))}@\`%\``)
    .replace(ALTER_DATABASE_LINE, `ALTER DATABASE ${escapeId(resource)}`);
}

async function retargetDump(from: string, to: string, resource: string): Promise<void> {
  // latin1 maps bytes one to one, so whatever the dump's encoding, every byte survives.
  const input = createReadStream(from, { encoding: 'latin1' });
  const output = createWriteStream(to, { encoding: 'latin1', mode: 0o600 });
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (!output.write(`${retargetDumpLine(line, resource)}\n`)) {
      await new Promise<void>((resolve) => output.once('drain', () => resolve()));
    }
  }
  output.end();
  await finished(output);
}

/** The mariadb client takes no URL: split mysql://user:password@host:port/database with
 * parameter expansion (the user and password are URL-safe alphanumerics and underscores,
 * so there is nothing to decode) and pass the password in MYSQL_PWD, not on argv. */
function clientScript(envVar: string): string {
  // biome-ignore-start lint/suspicious/noTemplateCurlyInString: these are shell expansions
  const lines = [
    `url="\${${envVar}:-}"`,
    `[ -n "$url" ] || { echo "${envVar} is not set" >&2; exit 2; }`,
    'url="${url#*://}"',
    'userinfo="${url%%@*}"',
    'rest="${url#*@}"',
    'hostport="${rest%%/*}"',
    'db="${rest#*/}"',
    'db="${db%%\\?*}"',
    'host="${hostport%:*}"',
    'host="${host#\\[}"',
    'host="${host%\\]}"',
    'MYSQL_PWD="${userinfo#*:}"',
    'export MYSQL_PWD',
    'exec mariadb --protocol=TCP --default-character-set=utf8mb4 --user="${userinfo%%:*}" --host="$host" --port="${hostport##*:}" --database="$db"',
  ];
  // biome-ignore-end lint/suspicious/noTemplateCurlyInString: these are shell expansions
  return lines.join('\n');
}
