// The PostgreSQL provider against the machine's own server and against one Petri manages
// itself, through the contract an app would notice, plus what is particular to PostgreSQL:
// half-made add-ons, a server that is down, standard dumps, crash and adoption of the server.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { postgresBinary } from '../../src/addons/postgres/binaries.js';
import { ManagedPostgres } from '../../src/addons/postgres/managed.js';
import { createPostgresProvider } from '../../src/addons/postgres/provider.js';
import {
  type AddonCredentials,
  type AddonProvider,
  type Endpoint,
  EngineUnavailableError,
} from '../../src/addons/provider.js';
import { exec, execOk } from '../../src/lib/exec.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { type AppClient, type AppSession, providerContract } from './contract.js';

const ADMIN_URL = 'postgres://root@127.0.0.1:5432/postgres';
const EXTERNAL: Endpoint = { host: '127.0.0.1', port: 5432 };
const SERVER_USER = 'petri-addons';
const PREFIX = `ct_${randomBytes(3).toString('hex')}`;

/** An app's session: one pg.Client on the URL it was given. */
class PgSession implements AppSession {
  private constructor(
    readonly client: pg.Client,
    private readonly url: string,
  ) {}

  static async connect(url: string): Promise<PgSession> {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    // A session the server ends emits an error; the next query reports it.
    client.on('error', () => {});
    await client.connect();
    return new PgSession(client, url);
  }

  async writeSample(): Promise<void> {
    await this.client.query(`
      CREATE SEQUENCE invoice_no START 1000;
      SELECT setval('invoice_no', 1041);
      CREATE TABLE sample (
        id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        serial_no serial,
        n integer,
        big bigint,
        price numeric(14, 4),
        name text,
        active boolean,
        at timestamptz,
        day date,
        doc jsonb,
        blob bytea,
        tags text[]
      );
      CREATE INDEX sample_name ON sample (name);
      CREATE VIEW active_sample AS SELECT id, name FROM sample WHERE active;
      INSERT INTO sample (n, big, price, name, active, at, day, doc, blob, tags) VALUES
        (1, 9007199254740993, 12345.6789, 'plain', true, '2024-02-29 12:34:56.789+00', '2024-02-29',
         '{"a": 1, "b": [true, null, "x"]}', '\\x00ff10', '{red,green}'),
        (-2147483648, -9223372036854775808, -0.0001, 'it''s "quoted" \\ ünïcödé 🐘', false,
         '1999-12-31 23:59:59+05', '1970-01-01', '{"nested": {"k": "v"}}', '\\x', '{}'),
        (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    `);
  }

  async readSample(): Promise<unknown> {
    const q = async (sql: string) => (await this.client.query(sql)).rows;
    const rows = await q(`
      SELECT id, serial_no, n, big::text AS big, price::text AS price, name, active, at, day::text AS day,
             doc, encode(blob, 'base64') AS blob, tags
        FROM sample ORDER BY id`);
    return {
      rows: rows.map((r) => ({ ...r, at: r.at instanceof Date ? r.at.toISOString() : r.at })),
      view: await q('SELECT id, name FROM active_sample ORDER BY id'),
      invoiceNo: await q('SELECT last_value::text, is_called FROM invoice_no'),
      identity: await q('SELECT last_value::text, is_called FROM sample_id_seq'),
      serial: await q('SELECT last_value::text, is_called FROM sample_serial_no_seq'),
      tables: await q("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"),
      indexes: await q("SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"),
    };
  }

  async mutate(): Promise<void> {
    await this.client.query(`
      UPDATE sample SET name = 'changed', doc = '{"changed": true}' WHERE id = 1;
      DELETE FROM sample WHERE id = 2;
      INSERT INTO sample (n, name, active) VALUES (99, 'new', true);
      SELECT nextval('invoice_no');
      CREATE TABLE extra (x integer);
      INSERT INTO extra VALUES (1);
    `);
  }

  async trespass(other: AddonCredentials, at: Endpoint): Promise<string[]> {
    const worked: string[] = [];
    const own = new URL(this.url);
    // Our own login on the other add-on's database, then its tables if that connected.
    const theirs = `postgres://${own.username}:${own.password}@${at.host}:${at.port}/${encodeURIComponent(other.database)}`;
    const session = await PgSession.connect(theirs).catch(() => undefined);
    if (session) {
      worked.push(`connected to ${other.database} with own login`);
      await session.client.query('SELECT * FROM sample').then(
        () => worked.push(`read ${other.database}.sample`),
        () => {},
      );
      await session.client.query("INSERT INTO sample (name) VALUES ('trespass')").then(
        () => worked.push(`wrote ${other.database}.sample`),
        () => {},
      );
      await session.close();
    }
    const attempts: [string, string, unknown[]?][] = [
      [
        `read ${other.database}.public.sample across databases`,
        `SELECT * FROM ${pg.escapeIdentifier(other.database)}.public.sample`,
      ],
      [`became ${other.user}`, `SET ROLE ${pg.escapeIdentifier(other.user)}`],
      [`became ${other.database}`, `SET ROLE ${pg.escapeIdentifier(other.database)}`],
    ];
    for (const [what, sql, params] of attempts) {
      if (await this.succeeds(sql, params)) worked.push(what);
    }
    await this.client.query('RESET ROLE');
    const killed = await this.client
      .query('SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE usename = $1', [other.user])
      .then(
        (r) => r.rows.some((row) => row.ok === true),
        () => false,
      );
    if (killed) worked.push(`terminated a session of ${other.user}`);
    const { rows } = await this.client.query<{ query: string | null }>(
      'SELECT query FROM pg_stat_activity WHERE usename = $1',
      [other.user],
    );
    if (rows.some((r) => r.query && r.query !== '<insufficient privilege>')) {
      worked.push(`read the queries of ${other.user}`);
    }
    return worked;
  }

  async escalate(): Promise<string[]> {
    const evil = `ct_evil_${randomBytes(3).toString('hex')}`;
    // Setup that is allowed (a temporary table of its own); the COPY into it is the attempt.
    await this.client.query('CREATE TEMP TABLE IF NOT EXISTS stolen (line text)');
    const attempts: [string, string][] = [
      ['CREATE ROLE', `CREATE ROLE ${evil} LOGIN`],
      ['CREATE DATABASE', `CREATE DATABASE ${evil}`],
      ['ALTER ROLE session_user SUPERUSER', 'ALTER ROLE SESSION_USER SUPERUSER'],
      ['ALTER ROLE current_user SUPERUSER', 'ALTER ROLE CURRENT_USER SUPERUSER'],
      ['ALTER ROLE session_user CREATEROLE', 'ALTER ROLE SESSION_USER CREATEROLE'],
      ['ALTER ROLE current_user CREATEDB', 'ALTER ROLE CURRENT_USER CREATEDB'],
      ['ALTER ROLE session_user BYPASSRLS', 'ALTER ROLE SESSION_USER BYPASSRLS'],
      ['ALTER ROLE session_user CONNECTION LIMIT -1', 'ALTER ROLE SESSION_USER CONNECTION LIMIT -1'],
      ['GRANT pg_read_server_files', 'GRANT pg_read_server_files TO CURRENT_USER'],
      ['GRANT pg_execute_server_program', 'GRANT pg_execute_server_program TO SESSION_USER'],
      ['GRANT pg_signal_backend', 'GRANT pg_signal_backend TO SESSION_USER'],
      ['GRANT postgres', 'GRANT postgres TO SESSION_USER'],
      ['SET ROLE postgres', 'SET ROLE postgres'],
      ['SET SESSION AUTHORIZATION postgres', 'SET SESSION AUTHORIZATION postgres'],
      ['COPY TO PROGRAM', "COPY (SELECT 1) TO PROGRAM 'true'"],
      ['COPY FROM a server file', "COPY stolen FROM '/etc/passwd'"],
      ['COPY TO a server file', `COPY (SELECT 1) TO '/tmp/${evil}'`],
      ['pg_read_file', "SELECT pg_read_file('/etc/passwd')"],
      ['pg_ls_dir', "SELECT pg_ls_dir('.')"],
      ['ALTER SYSTEM', "ALTER SYSTEM SET work_mem = '1MB'"],
      ['SET session_replication_role', 'SET session_replication_role = replica'],
      ['CREATE EXTENSION dblink', 'CREATE EXTENSION dblink'],
      ['CREATE EXTENSION postgres_fdw', 'CREATE EXTENSION postgres_fdw'],
      ['CREATE EXTENSION adminpack', 'CREATE EXTENSION adminpack'],
      ['CREATE EXTENSION file_fdw', 'CREATE EXTENSION file_fdw'],
      [
        'a C function from libc',
        `CREATE FUNCTION ${evil}(text) RETURNS integer AS '/lib/x86_64-linux-gnu/libc.so.6', 'system' LANGUAGE c`,
      ],
      ['LOAD a library', "LOAD 'dblink'"],
      ['UPDATE pg_authid', 'UPDATE pg_authid SET rolsuper = true WHERE rolname = SESSION_USER'],
    ];
    const worked: string[] = [];
    for (const [what, sql] of attempts) {
      if (await this.succeeds(sql)) worked.push(what);
    }
    return worked;
  }

  async ping(): Promise<void> {
    await this.client.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.client.end();
  }

  private async succeeds(sql: string, params?: unknown[]): Promise<boolean> {
    return this.client.query(sql, params).then(
      () => true,
      () => false,
    );
  }
}

const appClient: AppClient = { connect: (url) => PgSession.connect(url) };

/** One statement as another admin would run it, on its own connection. */
async function adminQuery<R extends pg.QueryResultRow>(
  url: string,
  sql: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

providerContract({
  name: 'postgres external',
  setUp: async () => ({ provider: createPostgresProvider(ADMIN_URL), endpoint: EXTERNAL }),
  client: appClient,
  prefix: PREFIX,
  sessions: { perLogin: 20, slotsShare: true },
});

{
  let dir: string | undefined;
  let server: ManagedPostgres | undefined;
  providerContract({
    name: 'postgres managed',
    setUp: async () => {
      dir = await mkdtemp(path.join(tmpdir(), 'petri-pg-contract-'));
      server = new ManagedPostgres({ dir, user: SERVER_USER });
      const url = await server.start();
      const endpoint = await server.endpoint();
      assert.notEqual(endpoint.port, 5432);
      return { provider: createPostgresProvider(url), endpoint };
    },
    tearDown: async () => {
      await server?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    client: appClient,
    prefix: PREFIX,
    sessions: { perLogin: 20, slotsShare: true },
  });
}

describe('postgres provider (external server)', () => {
  let provider: AddonProvider;
  const resources: string[] = [];
  const strayRoles: string[] = [];
  const strayDatabases: string[] = [];
  const sessions: PgSession[] = [];
  let dir: string;
  const resource = (n: string) => {
    const r = `${PREFIX}_${n}`;
    resources.push(r);
    return r;
  };
  const connect = async (creds: AddonCredentials) => {
    const s = await PgSession.connect(provider.url(creds, EXTERNAL));
    sessions.push(s);
    return s;
  };

  before(async () => {
    provider = createPostgresProvider(ADMIN_URL);
    dir = await mkdtemp(path.join(tmpdir(), 'petri-pg-test-'));
  });
  after(async () => {
    for (const s of sessions) await s.close().catch(() => {});
    for (const r of resources) await provider.deprovision(r).catch(() => {});
    for (const db of strayDatabases) {
      await adminQuery(ADMIN_URL, `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`).catch(
        () => {},
      );
    }
    for (const role of strayRoles) {
      await adminQuery(ADMIN_URL, `DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`).catch(() => {});
    }
    await provider.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a provision that fails half way leaves nothing behind', async () => {
    const r = resource('half');
    // A role in the way of the login: the database and owner role are made before it fails.
    strayRoles.push(`${r}_a`);
    await adminQuery(ADMIN_URL, `CREATE ROLE ${pg.escapeIdentifier(`${r}_a`)}`);
    await assert.rejects(provider.provision(r), /already exists/);
    assert.deepEqual(await adminQuery(ADMIN_URL, 'SELECT 1 FROM pg_database WHERE datname = $1', [r]), []);
    assert.deepEqual(await adminQuery(ADMIN_URL, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [r]), []);
    // The stranger's role was not ours to drop.
    assert.equal(
      (await adminQuery(ADMIN_URL, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [`${r}_a`])).length,
      1,
    );
  });

  test('provisioning a name that exists is refused, and leaves the add-on working', async () => {
    const r = resource('twice');
    const s = await connect(await provider.provision(r));
    await s.writeSample();
    await assert.rejects(provider.provision(r), /already exists/);
    await s.readSample();
  });

  test('logins are plain, password-hashed with SCRAM, and make objects owned by the owner role', async () => {
    const r = resource('owner');
    const a = await provider.provision(r);
    const b = await provider.createLogin(r, 'b');
    assert.match(a.password, /^[A-Za-z0-9_-]{24,}$/);
    const roles = await adminQuery<Record<string, unknown>>(
      ADMIN_URL,
      `SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit,
              rolcanlogin, rolconnlimit, left(rolpassword, 14) AS hash
         FROM pg_authid WHERE rolname = ANY($1) ORDER BY rolname`,
      [[a.user, b.user]],
    );
    assert.equal(roles.length, 2);
    for (const { rolname, ...attributes } of roles) {
      assert.deepEqual(
        attributes,
        {
          rolsuper: false,
          rolcreaterole: false,
          rolcreatedb: false,
          rolreplication: false,
          rolbypassrls: false,
          rolinherit: false,
          rolcanlogin: true,
          rolconnlimit: 20,
          hash: 'SCRAM-SHA-256$',
        },
        String(rolname),
      );
    }
    const sb = await connect(b);
    await sb.client.query('CREATE TABLE made_by_b (x integer); CREATE SCHEMA made_by_b');
    const sa = await connect(a);
    // Login a may alter and drop what b made: both act as the owner role.
    await sa.client.query('ALTER TABLE made_by_b ADD COLUMN y text; DROP SCHEMA made_by_b');
    const owners = await adminQuery<{ owner: string }>(
      ADMIN_URL,
      'SELECT pg_get_userbyid(datdba) AS owner FROM pg_database WHERE datname = $1',
      [r],
    );
    assert.deepEqual(owners, [{ owner: r }]);
    const { rows } = await sa.client.query("SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_b'");
    assert.deepEqual(rows, [{ tableowner: r }]);
  });

  test('deprovision also removes what the add-on made in another database open to everyone', async () => {
    const r = resource('spill');
    const elsewhere = `${PREFIX}_elsewhere`;
    strayDatabases.push(elsewhere);
    // A database as older servers made them: everyone may connect and create in public.
    await adminQuery(ADMIN_URL, `CREATE DATABASE ${pg.escapeIdentifier(elsewhere)}`);
    const elsewhereUrl = ADMIN_URL.replace(/\/postgres$/, `/${elsewhere}`);
    await adminQuery(elsewhereUrl, 'GRANT CREATE ON SCHEMA public TO PUBLIC');
    const creds = await provider.provision(r);
    const s = await connect({ ...creds, database: elsewhere });
    await s.client.query('CREATE TABLE spilled (x integer)');
    await provider.deprovision(r);
    assert.deepEqual(
      await adminQuery(elsewhereUrl, "SELECT 1 FROM pg_tables WHERE tablename = 'spilled'"),
      [],
    );
    assert.deepEqual(
      await adminQuery(ADMIN_URL, 'SELECT rolname FROM pg_roles WHERE rolname LIKE $1', [`${r}%`]),
      [],
    );
  });

  test('an unreachable server is reported as EngineUnavailableError naming host:port', async () => {
    const port = await freePort();
    const down = createPostgresProvider(`postgres://root@127.0.0.1:${port}/postgres`);
    try {
      const unavailable = (err: unknown) =>
        err instanceof EngineUnavailableError && err.message.includes(`127.0.0.1:${port}`);
      await assert.rejects(down.ping(), unavailable);
      await assert.rejects(down.provision(`${PREFIX}_down`), unavailable);
      await assert.rejects(down.usage(`${PREFIX}_down`), unavailable);
      await assert.rejects(down.backup(`${PREFIX}_down`, path.join(dir, 'down')), unavailable);
      await assert.rejects(down.deprovision(`${PREFIX}_down`), unavailable);
    } finally {
      await down.close();
    }
  });

  test('a backup is a standard pg_dump archive, and a failed one leaves no file', async () => {
    const r = resource('dump');
    const s = await connect(await provider.provision(r));
    await s.writeSample();
    const file = path.join(dir, 'dump');
    await provider.backup(r, file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const list = await execOk(postgresBinary('pg_restore'), ['--list', file]);
    assert.match(list.stdout, /TABLE public sample/);
    assert.ok(!existsSync(`${file}.partial`));

    const missing = path.join(dir, 'missing');
    await assert.rejects(provider.backup(`${PREFIX}_nosuch`, missing), /does not exist/);
    assert.ok(!existsSync(missing) && !existsSync(`${missing}.partial`));
  });

  test('a restore that fails leaves the data as it was', async () => {
    const from = resource('rfail_src');
    const to = resource('rfail_dst');
    await provider.provision(from);
    // An untrusted extension only an administrator could create: the dump names it, and
    // the owner role that restores may not create it.
    const fromUrl = ADMIN_URL.replace(/\/postgres$/, `/${from}`);
    await adminQuery(fromUrl, 'CREATE EXTENSION dblink');
    const file = path.join(dir, 'with-dblink');
    await provider.backup(from, file);

    const s = await connect(await provider.provision(to));
    await s.writeSample();
    const sample = await s.readSample();
    await assert.rejects(provider.restore(to, file), /data is unchanged.*dblink/s);
    const again = await connect(await provider.createLogin(to, 'b'));
    assert.deepEqual(await again.readSample(), sample);

    const garbage = path.join(dir, 'garbage');
    await execOk('sh', ['-c', 'echo not a dump > "$1"', 'sh', garbage]);
    await assert.rejects(provider.restore(to, garbage));
    assert.deepEqual(await again.readSample(), sample);
  });

  test('shellCommand runs psql with the URL from the environment variable', async () => {
    const r = resource('shell');
    const url = provider.url(await provider.provision(r), EXTERNAL);
    const argv = provider.shellCommand('PETRI_TEST_DATABASE_URL');
    const result = await exec(argv[0]!, argv.slice(1), {
      env: { PATH: process.env.PATH, PETRI_TEST_DATABASE_URL: url },
      input: 'select 41+1;\nselect current_user;\n',
      timeoutMs: 10_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\b42\b/);
    assert.match(result.stdout, new RegExp(`\\b${r}\\b`), 'the session acts as the owner role');
    assert.throws(() => provider.shellCommand('X; rm -rf /'), /must match/);
  });
});

describe('managed postgres server', () => {
  let dir: string;
  let server: ManagedPostgres;
  let url: string;
  const others: ManagedPostgres[] = [];

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'petri-pg-managed-'));
    server = new ManagedPostgres({ dir, user: SERVER_USER });
    url = await server.start();
  });
  after(async () => {
    await server?.stop();
    for (const o of others) await o.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('its directory is laid out and protected', async () => {
    const uid = Number(
      readFileSync('/etc/passwd', 'utf8').match(new RegExp(`^${SERVER_USER}:[^:]*:(\\d+):`, 'm'))?.[1],
    );
    assert.equal((await stat(dir)).mode & 0o777, 0o711);
    assert.equal((await stat(path.join(dir, 'state.json'))).mode & 0o777, 0o600);
    const data = await stat(path.join(dir, 'data'));
    assert.equal(data.mode & 0o777, 0o700);
    assert.equal(data.uid, uid);
    assert.equal((await stat(path.join(dir, 'run'))).uid, uid);
    const pids = await server.pids();
    assert.ok(pids.length >= 2, `the postmaster and its helpers: ${pids}`);
    for (const pid of pids) assert.equal(processUid(pid), uid, `process ${pid} runs as ${SERVER_USER}`);
    const wrong = url.replace(/:[0-9a-f]+@/, ':wrong@');
    await assert.rejects(adminQuery(wrong, 'SELECT 1'), /password authentication failed/);
  });

  test('after kill -9 of the postmaster, start() brings it back with the data', async () => {
    await adminQuery(url, 'CREATE TABLE kept (x integer); INSERT INTO kept VALUES (7)');
    const [postmaster] = await server.pids();
    process.kill(postmaster!, 'SIGKILL');
    await until(async () => !(await server.running()), { timeout: 5000, message: 'the postmaster to die' });
    // Two overlapping starts (a reconciler and a request, say) bring up one server.
    assert.deepEqual(await Promise.all([server.start(), server.start()]), [url, url]);
    const [restarted] = await server.pids();
    assert.notEqual(restarted, postmaster);
    assert.deepEqual(postmastersIn(path.join(dir, 'data')), [restarted]);
    assert.deepEqual(await adminQuery(url, 'SELECT x FROM kept'), [{ x: 7 }]);
  });

  test('a second object on the same directory adopts the running server', async () => {
    const before = await server.pids();
    const other = new ManagedPostgres({ dir, user: SERVER_USER });
    others.push(other);
    const t0 = Date.now();
    assert.equal(await other.start(), url);
    assert.ok(Date.now() - t0 < 3000, `adopting took ${Date.now() - t0} ms`);
    assert.equal((await other.pids())[0], before[0]);
    assert.deepEqual(postmastersIn(path.join(dir, 'data')), [before[0]]);
  });

  test("an app's login cannot connect to postgres or template1 to list every add-on's database", async () => {
    const provider = createPostgresProvider(url);
    try {
      const creds = await provider.provision(`${PREFIX}_cat`);
      const app = (database: string) =>
        provider.url({ ...creds, database }, { host: '127.0.0.1', port: Number(new URL(url).port) });
      // What Petri runs on each managed (and external) server; twice, as restarts do.
      assert.equal(await provider.secureServer(), undefined);
      assert.equal(await provider.secureServer(), undefined);
      for (const shared of ['postgres', 'template1']) {
        await assert.rejects(adminQuery(app(shared), 'SELECT datname FROM pg_database'), /permission denied/);
      }
      assert.deepEqual(await adminQuery(app(creds.database), 'SELECT 1 AS one'), [{ one: 1 }]);
      assert.deepEqual(await adminQuery(url, 'SELECT 1 AS one'), [{ one: 1 }], 'the admin still gets in');
      const limits = await adminQuery<{ setting: string }>(
        url,
        "SELECT setting FROM pg_settings WHERE name IN ('max_connections', 'superuser_reserved_connections') ORDER BY name",
      );
      assert.deepEqual(
        limits.map((r) => Number(r.setting)),
        [300, 10],
        "slots for apps, and the admin's reserve",
      );
      await provider.deprovision(`${PREFIX}_cat`);
    } finally {
      await provider.close();
    }
  });

  test('stop() ends the server and every process of it', async () => {
    await server.stop();
    assert.equal(await server.running(), false);
    assert.deepEqual(await server.pids(), []);
    assert.deepEqual(postmastersIn(path.join(dir, 'data')), []);
    await server.stop();
  });
});

function processUid(pid: number): number | undefined {
  const uid = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1];
  return uid === undefined ? undefined : Number(uid);
}

/** Postgres processes working in `dataDir` whose parent is not one of them: postmasters. */
function postmastersIn(dataDir: string): number[] {
  const inDir = new Map<number, number>();
  for (const name of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${name}/cwd`) !== dataDir) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state !== 'Z') inDir.set(Number(name), Number(ppid));
    } catch {
      // gone meanwhile
    }
  }
  return [...inDir].filter(([, ppid]) => !inDir.has(ppid)).map(([pid]) => pid);
}
