// The MariaDB provider against the machine's own server and against one Petri manages itself,
// through the contract an app would notice, plus what is particular to MariaDB: half-made
// add-ons, a server that is down, grants, definers in dumps, plain SQL dumps, the shell
// command, and a managed server that survives kill -9 and is adopted by the next start.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { type Connection, createConnection, escapeId, type RowDataPacket } from 'mysql2/promise';
import { ManagedMysql } from '../../src/addons/mysql/managed.js';
import { createMysqlProvider, retargetDumpLine } from '../../src/addons/mysql/provider.js';
import {
  type AddonCredentials,
  type AddonProvider,
  type Endpoint,
  EngineUnavailableError,
} from '../../src/addons/provider.js';
import { exec, execOk } from '../../src/lib/exec.js';
import { freePort } from '../../src/lib/ports.js';
import { processStartTime } from '../../src/lib/process.js';
import { until } from '../../src/lib/until.js';
import { type AppClient, type AppSession, providerContract } from './contract.js';

const ADMIN_URL = 'mysql://root@127.0.0.1:3306/';
const EXTERNAL: Endpoint = { host: '127.0.0.1', port: 3306 };
const SERVER_USER = 'petri-addons';
const PREFIX = `ct_${randomBytes(3).toString('hex')}`;
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

type Row = Record<string, unknown>;

const SAMPLE_SCHEMA = [
  `CREATE TABLE kinds (
     id INT AUTO_INCREMENT PRIMARY KEY,
     n INT, big BIGINT, price DECIMAL(14, 4), name VARCHAR(100), body TEXT, flag BOOLEAN,
     at DATETIME(3), day DATE, doc JSON, bin VARBINARY(16), data BLOB,
     INDEX kinds_name (name)
   ) ENGINE=InnoDB`,
  'CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, kind_id INT NOT NULL, note VARCHAR(40) NOT NULL)',
  `CREATE TRIGGER kinds_audit AFTER INSERT ON kinds FOR EACH ROW
     INSERT INTO audit (kind_id, note) VALUES (NEW.id, 'inserted')`,
  'CREATE VIEW named_kinds AS SELECT id, name FROM kinds WHERE name IS NOT NULL',
  'CREATE PROCEDURE count_kinds(OUT total INT) SELECT COUNT(*) INTO total FROM kinds',
];

const KIND_COLUMNS = ['n', 'big', 'price', 'name', 'body', 'flag', 'at', 'day', 'doc', 'bin', 'data'];
const SAMPLE_ROWS: unknown[][] = [
  [
    42,
    '9007199254740993',
    '12345678.9012',
    `Zoë «quoted» 'single' "double" \\ back 🎉`,
    'line one\nline two\ttab',
    true,
    '2024-02-29 13:14:15.678',
    '2024-02-29',
    '{"a": [1, 2.5, "ü"], "b": null}',
    Buffer.from([0, 1, 2, 255]),
    Buffer.from('\u0000blob\u00ff', 'latin1'),
  ],
  [-1, '-9223372036854775808', '-0.0001', '', '', false, '1970-01-01 00:00:00.000', '1000-01-01', '[]'],
  [null, null, null, null, null, null, null, null, null, null, null],
  [7, '7', '7', 'deleted', null, null, null, null, null, null, null],
];

/** Binary values as base64, so the sample compares with deepEqual. */
function canonical(rows: Row[]): Row[] {
  return rows.map((row) =>
    Object.fromEntries(
      Object.entries(row).map(([k, v]) => [k, Buffer.isBuffer(v) ? `base64:${v.toString('base64')}` : v]),
    ),
  );
}

/** An app's session: one mysql2 connection on the URL it was given. */
class MysqlSession implements AppSession {
  private constructor(
    private readonly conn: Connection,
    private readonly url: string,
  ) {}

  static async connect(url: string): Promise<MysqlSession> {
    const conn = await createConnection({
      uri: url,
      multipleStatements: false,
      dateStrings: true,
      supportBigNumbers: true,
      bigNumberStrings: true,
      connectTimeout: 3000,
    });
    // A session the server kills emits an error; the next query reports it.
    conn.on('error', () => {});
    return new MysqlSession(conn, url);
  }

  async rows(sql: string, values: unknown[] = []): Promise<Row[]> {
    const [rows] = await this.conn.query<RowDataPacket[]>(sql, values);
    return rows;
  }

  async writeSample(): Promise<void> {
    for (const sql of SAMPLE_SCHEMA) await this.conn.query(sql);
    for (const row of SAMPLE_ROWS) {
      await this.conn.query(
        `INSERT INTO kinds (${KIND_COLUMNS.slice(0, row.length).join(', ')}) VALUES (?)`,
        [row],
      );
    }
    // The next AUTO_INCREMENT value (5) is then more than MAX(id) + 1: a dump must keep it.
    await this.conn.query('DELETE FROM kinds WHERE id = 4');
  }

  async readSample(): Promise<unknown> {
    await this.conn.query('CALL count_kinds(@total)');
    return {
      kinds: canonical(await this.rows('SELECT * FROM kinds ORDER BY id')),
      audit: await this.rows('SELECT * FROM audit ORDER BY id'),
      view: await this.rows('SELECT * FROM named_kinds ORDER BY id'),
      procedure: await this.rows('SELECT @total AS total'),
      tables: [await this.rows('SHOW CREATE TABLE kinds'), await this.rows('SHOW CREATE TABLE audit')],
      triggers: await this.rows(
        `SELECT TRIGGER_NAME, EVENT_MANIPULATION, ACTION_TIMING, ACTION_STATEMENT
           FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY TRIGGER_NAME`,
      ),
      routines: await this.rows(
        `SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES
           WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_NAME`,
      ),
    };
  }

  async mutate(): Promise<void> {
    await this.conn.query("UPDATE kinds SET name = 'changed', n = n + 1 WHERE id = 1");
    await this.conn.query('DELETE FROM kinds WHERE id = 2');
    await this.conn.query("INSERT INTO kinds (name, doc) VALUES ('added', '{}')");
    await this.conn.query('CREATE TABLE extra (id INT PRIMARY KEY, note TEXT)');
    await this.conn.query("INSERT INTO extra VALUES (1, 'new')");
  }

  async trespass(other: AddonCredentials, _at: Endpoint): Promise<string[]> {
    const db = escapeId(other.database);
    const worked: string[] = [];
    const attempt = async (
      what: string,
      sql: string,
      values: unknown[] = [],
      shows?: (rows: Row[]) => boolean,
    ) => {
      try {
        const rows = await this.rows(sql, values);
        if (!shows || shows(rows)) worked.push(what);
      } catch {
        // refused: the pass
      }
    };
    await attempt('USE the other database', `USE ${db}`);
    // Back home, should it have worked: the other attempts and escalate() start from there.
    await this.rows(`USE ${escapeId(this.database())}`);
    await attempt("read the other's table", `SELECT * FROM ${db}.kinds LIMIT 1`);
    await attempt("write the other's table", `INSERT INTO ${db}.kinds (name) VALUES ('trespass')`);
    await attempt("call the other's procedure", `CALL ${db}.count_kinds(@n)`);
    await attempt("read the other's view", `SELECT * FROM ${db}.named_kinds LIMIT 1`);
    await attempt('SHOW DATABASES lists the other database', 'SHOW DATABASES', [], (rows) =>
      rows.some((row) => Object.values(row).includes(other.database)),
    );
    await attempt(
      "information_schema lists the other's tables",
      'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?',
      [other.database],
      (rows) => rows.length > 0,
    );
    await attempt(
      "the process list shows the other's sessions",
      'SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?',
      [other.user],
      (rows) => rows.length > 0,
    );
    const own = new URL(this.url);
    own.pathname = `/${encodeURIComponent(other.database)}`;
    try {
      const session = await MysqlSession.connect(own.toString());
      await session.close();
      worked.push('connect with its own login to the other database');
    } catch {
      // refused: the pass
    }
    return worked;
  }

  async escalate(): Promise<string[]> {
    const own = this.database();
    const worked: string[] = [];
    const attempt = async (what: string, sql: string, shows?: (rows: Row[]) => boolean, undo?: string) => {
      try {
        const rows = await this.rows(sql);
        if (shows && !shows(rows)) return;
        worked.push(what);
        // Should never run; if it must, the shared server is left as it was.
        if (undo) await this.conn.query(undo).catch(() => {});
      } catch {
        // refused: the pass
      }
    };
    const evil = `${own}_evil`;
    const twin = own.replace(/_/g, 'x');
    await attempt(
      'CREATE USER',
      `CREATE USER '${evil}'@'%' IDENTIFIED BY 'x'`,
      undefined,
      `DROP USER '${evil}'@'%'`,
    );
    await attempt('GRANT ALL ON *.* to itself', 'GRANT ALL PRIVILEGES ON *.* TO CURRENT_USER');
    await attempt('GRANT on the mysql schema to itself', 'GRANT SELECT ON mysql.* TO CURRENT_USER');
    await attempt(
      'grant its rights on to another login',
      `GRANT SELECT ON ${escapeId(own)}.* TO 'root'@'127.0.0.1'`,
    );
    await attempt('SET GLOBAL', 'SET GLOBAL max_connections = 1000');
    await attempt('read a server file with LOAD_FILE', "SELECT LOAD_FILE('/etc/passwd') AS f", (rows) =>
      Boolean(rows[0]?.f),
    );
    const outfile = path.join(tmpdir(), `petri-escalate-${randomBytes(4).toString('hex')}`);
    await attempt('write a server file with INTO OUTFILE', `SELECT 1 INTO OUTFILE '${outfile}'`);
    await rm(outfile, { force: true });
    await this.conn.query('CREATE TEMPORARY TABLE escalate_probe (line TEXT)');
    await attempt(
      'read a server file with LOAD DATA INFILE',
      "LOAD DATA INFILE '/etc/passwd' INTO TABLE escalate_probe",
    );
    await attempt(
      'CREATE DATABASE',
      `CREATE DATABASE ${escapeId(evil)}`,
      undefined,
      `DROP DATABASE ${escapeId(evil)}`,
    );
    await attempt(
      'CREATE DATABASE matching its grant with _ as a wildcard',
      `CREATE DATABASE ${escapeId(twin)}`,
      undefined,
      `DROP DATABASE ${escapeId(twin)}`,
    );
    await attempt('read mysql.user', 'SELECT * FROM mysql.user LIMIT 1');
    await attempt('read mysql.global_priv', 'SELECT * FROM mysql.global_priv LIMIT 1');
    await attempt('FLUSH PRIVILEGES', 'FLUSH PRIVILEGES');
    await attempt(
      'a view defined as root',
      "CREATE DEFINER='root'@'localhost' VIEW evil_view AS SELECT 1 AS x",
    );
    await attempt('SHOW PROCESSLIST of other logins', 'SHOW FULL PROCESSLIST', (rows) =>
      rows.some((row) => !String(row.User).startsWith(own)),
    );
    await attempt('SHUTDOWN', 'SHUTDOWN');
    return worked;
  }

  /** The session's own database, from its URL (USE may have moved it). */
  private database(): string {
    return decodeURIComponent(new URL(this.url).pathname.slice(1));
  }

  async ping(): Promise<void> {
    await this.conn.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.conn.end();
  }
}

const client: AppClient = { connect: (url) => MysqlSession.connect(url) };

/** An admin connection to the machine's own server, for checks behind the provider's back. */
function externalAdmin(): Promise<Connection> {
  return createConnection({ host: '127.0.0.1', port: 3306, user: 'root', multipleStatements: false });
}

async function adminRows(admin: Connection, sql: string, values: unknown[] = []): Promise<Row[]> {
  const [rows] = await admin.query<RowDataPacket[]>(sql, values);
  return rows;
}

async function databaseExists(admin: Connection, name: string): Promise<boolean> {
  const rows = await adminRows(admin, 'SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [
    name,
  ]);
  return rows.length > 0;
}

async function userExists(admin: Connection, name: string): Promise<boolean> {
  return (await adminRows(admin, 'SELECT 1 FROM mysql.user WHERE User = ?', [name])).length > 0;
}

// One managed server for the whole file (mariadb-install-db and a first start take seconds):
// its own tests first, then the contract, whose tearDown stops and removes it.
let managedDir: string | undefined;
let managedStart: Promise<{ server: ManagedMysql; url: string }> | undefined;

function managed(): Promise<{ server: ManagedMysql; url: string }> {
  managedStart ??= (async () => {
    managedDir = await mkdtemp(path.join(tmpdir(), 'petri-mysql-managed-'));
    const server = new ManagedMysql({ dir: managedDir, user: SERVER_USER });
    return { server, url: await server.start() };
  })();
  return managedStart;
}

async function removeManaged(): Promise<void> {
  const started = managedStart;
  managedStart = undefined;
  if (started) await (await started.catch(() => undefined))?.server.stop();
  if (managedDir) await rm(managedDir, { recursive: true, force: true });
  managedDir = undefined;
}

after(removeManaged);

providerContract({
  name: 'mysql external',
  prefix: `${PREFIX}_x`,
  client,
  sessions: { perLogin: 10, slotsShare: false },
  async setUp() {
    return { provider: createMysqlProvider(ADMIN_URL), endpoint: EXTERNAL };
  },
});

describe('MariaDB provider specifics (the machine’s server)', () => {
  let provider: AddonProvider;
  let admin: Connection;
  let dir: string;
  const resources: string[] = [];
  const sessions: MysqlSession[] = [];
  const resource = (n: string) => {
    const r = `${PREFIX}_${n}`;
    resources.push(r);
    return r;
  };
  const connect = async (creds: AddonCredentials) => {
    const s = await MysqlSession.connect(provider.url(creds, EXTERNAL));
    sessions.push(s);
    return s;
  };

  before(async () => {
    provider = createMysqlProvider(ADMIN_URL);
    admin = await externalAdmin();
    dir = await mkdtemp(path.join(tmpdir(), 'petri-mysql-test-'));
  });
  after(async () => {
    for (const s of sessions) await s.close().catch(() => {});
    for (const r of resources) await provider.deprovision(r).catch(() => {});
    await provider.close();
    await admin?.end();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a provision that fails half way leaves nothing behind, and keeps the login it did not make', async () => {
    const r = resource('half');
    await admin.query(`CREATE USER ${admin.escape(`${r}_a`)}@'%' IDENTIFIED BY 'not-petris'`);
    try {
      await assert.rejects(provider.provision(r), /login ct_\w+_half_a already exists/);
      assert.equal(await databaseExists(admin, r), false, 'the database made before the failure is gone');
      assert.equal(await userExists(admin, `${r}_a`), true, 'the login that was there is kept');
    } finally {
      await admin.query(`DROP USER IF EXISTS ${admin.escape(`${r}_a`)}@'%'`);
    }
  });

  test('a database that already exists is refused and kept', async () => {
    const r = resource('taken');
    await admin.query(`CREATE DATABASE ${escapeId(r)}`);
    try {
      await assert.rejects(provider.provision(r), /database ct_\w+_taken already exists/);
      assert.equal(await databaseExists(admin, r), true);
      assert.equal(await userExists(admin, `${r}_a`), false);
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS ${escapeId(r)}`);
    }
  });

  test('a server that does not answer gives EngineUnavailableError naming host:port', async () => {
    const port = await freePort();
    const down = createMysqlProvider(`mysql://root@127.0.0.1:${port}/`);
    try {
      const unavailable = (err: unknown) =>
        err instanceof EngineUnavailableError && err.message.includes(`127.0.0.1:${port}`);
      await assert.rejects(down.ping(), unavailable);
      await assert.rejects(down.provision(`${PREFIX}_down`), unavailable);
      await assert.rejects(down.deprovision(`${PREFIX}_down`), unavailable);
      await assert.rejects(down.backup(`${PREFIX}_down`, path.join(dir, 'down')), unavailable);
    } finally {
      await down.close();
    }
    const refused = createMysqlProvider('mysql://root:not-the-password@127.0.0.1:3306/');
    try {
      await assert.rejects(
        refused.ping(),
        EngineUnavailableError,
        'an admin login refused is unavailable too',
      );
    } finally {
      await refused.close();
    }
  });

  test('names are checked before they reach SQL or a shell', async () => {
    await assert.rejects(provider.provision('Robert"); DROP'), /must match \^\[a-z\]/);
    await assert.rejects(provider.deprovision('a`b'), /must match/);
    assert.throws(() => provider.shellCommand('URL; rm -rf /'), /must match/);
  });

  test('a login has all rights on its own database and nothing else', async () => {
    const r = resource('grants');
    const creds = await provider.provision(r);
    assert.match(creds.password, /^[A-Za-z0-9]{24,}$/);
    const grants = (await adminRows(admin, `SHOW GRANTS FOR ${admin.escape(creds.user)}@'%'`)).map((row) =>
      String(Object.values(row)[0]),
    );
    assert.equal(grants.length, 2, grants.join('\n'));
    assert.match(grants[0] ?? '', /^GRANT USAGE ON \*\.\* TO .* WITH MAX_USER_CONNECTIONS 10$/);
    // _ escaped: a wildcard in a grant would also cover databases the app could create.
    assert.equal(
      grants[1],
      `GRANT ALL PRIVILEGES ON \`${r.replace(/_/g, '\\_')}\`.* TO \`${creds.user}\`@\`%\``,
    );
  });

  test("after a rotation, the revoked login's trigger, view and procedure still work for the new one", async () => {
    const r = resource('definer');
    const s1 = await connect(await provider.provision(r));
    await s1.writeSample();
    const s2 = await connect(await provider.createLogin(r, 'b'));
    await provider.revokeLogin(r, 'a');
    await s2.rows("INSERT INTO kinds (name) VALUES ('after rotation')");
    const audit = await s2.rows('SELECT note FROM audit ORDER BY id DESC LIMIT 1');
    assert.deepEqual(audit, [{ note: 'inserted' }], 'the trigger defined by the locked login ran');
    assert.ok((await s2.rows('SELECT * FROM named_kinds')).length > 0, 'the view answers');
    await s2.rows('CALL count_kinds(@total)');
    assert.deepEqual(await s2.rows('SELECT @total AS total'), [{ total: '4' }]);
  });

  test("a restored dump runs as the add-on's own login, whoever wrote it", async () => {
    const from = resource('def_from');
    const to = resource('def_to');
    const s = await connect(await provider.provision(from));
    await s.writeSample();
    const file = path.join(dir, 'definers.sql');
    await provider.backup(from, file);
    await provider.provision(to);
    await provider.restore(to, file);
    const definers = [
      ...(await adminRows(admin, 'SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?', [
        to,
      ])),
      ...(await adminRows(admin, 'SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?', [
        to,
      ])),
      ...(await adminRows(admin, 'SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ?', [
        to,
      ])),
    ].map((row) => row.DEFINER);
    assert.deepEqual(definers, [`${to}_a@%`, `${to}_a@%`, `${to}_a@%`]);
  });

  test('a dump whose definer cannot be rewritten is refused, and leaves the database empty', async () => {
    const r = resource('foreign');
    await provider.provision(r);
    const file = path.join(dir, 'foreign.sql');
    // DEFINER on a line of its own is no shape mariadb-dump writes, so it is not rewritten.
    await writeFile(
      file,
      'CREATE TABLE t (id INT);\nCREATE\nDEFINER=`root`@`127.0.0.1` VIEW v AS SELECT 1 AS x;\n',
    );
    await assert.rejects(provider.restore(r, file), /would run as another login/);
    assert.deepEqual(
      await adminRows(admin, 'SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?', [r]),
      [],
    );
  });

  test('definers and the database name are rewritten only where mariadb-dump writes them', () => {
    const cases: Array<[string, string]> = [
      ['CREATE DEFINER=`x_a`@`%` PROCEDURE `p`()', 'CREATE DEFINER=`r_a`@`%` PROCEDURE `p`()'],
      [
        '/*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */',
        '/*!50013 DEFINER=`r_a`@`%` SQL SECURITY DEFINER */',
      ],
      [
        '/*!50003 CREATE*/ /*!50017 DEFINER=`we``ird`@`%`*/ /*!50003 trigger t after insert on k for each row set @x = 1',
        '/*!50003 CREATE*/ /*!50017 DEFINER=`r_a`@`%`*/ /*!50003 trigger t after insert on k for each row set @x = 1',
      ],
      [
        '/*!50106 CREATE*/ /*!50117 DEFINER=`x_b`@`%`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY',
        '/*!50106 CREATE*/ /*!50117 DEFINER=`r_a`@`%`*/ /*!50106 EVENT `e` ON SCHEDULE EVERY 1 DAY',
      ],
      ['ALTER DATABASE `x` CHARACTER SET latin1 ;', 'ALTER DATABASE `r` CHARACTER SET latin1 ;'],
      // Row data keeps whatever text it holds.
      ["(1,'CREATE DEFINER=`root`@`%` x'),", "(1,'CREATE DEFINER=`root`@`%` x'),"],
      ['INSERT INTO `t` VALUES', 'INSERT INTO `t` VALUES'],
    ];
    for (const [line, expected] of cases) assert.equal(retargetDumpLine(line, 'r'), expected);
  });

  test('the dump is plain SQL that the mariadb client restores into any database', async () => {
    const r = resource('plain');
    const s = await connect(await provider.provision(r));
    await s.writeSample();
    const file = path.join(dir, 'plain.sql');
    await provider.backup(r, file);
    const sql = await readFile(file, 'utf8');
    assert.doesNotMatch(sql, /^(CREATE DATABASE|USE) /m, 'the dump names no database');
    await assert.rejects(stat(`${file}.partial`), 'no partial file is left');
    const fresh = resource('plain_copy');
    await admin.query(`CREATE DATABASE ${escapeId(fresh)}`);
    const options = path.join(dir, 'root.cnf');
    await writeFile(options, '[client]\nuser=root\nhost=127.0.0.1\nport=3306\nprotocol=TCP\n', {
      mode: 0o600,
    });
    await execOk('/bin/sh', [
      '-c',
      'mariadb --defaults-extra-file="$1" "$2" < "$3"',
      'sh',
      options,
      fresh,
      file,
    ]);
    const rows = await adminRows(admin, `SELECT id, name FROM ${escapeId(fresh)}.kinds ORDER BY id`);
    assert.deepEqual(rows, [
      { id: 1, name: SAMPLE_ROWS[0]?.[3] },
      { id: 2, name: '' },
      { id: 3, name: null },
    ]);
  });

  test('shellCommand runs the mariadb client with the URL from the environment', async () => {
    const r = resource('shell');
    const creds = await provider.provision(r);
    const argv = provider.shellCommand('DATABASE_URL');
    assert.ok(!argv.join(' ').includes(creds.password));
    const [file, ...args] = argv;
    const result = await exec(file ?? '', args, {
      env: { PATH: PATH_ENV, DATABASE_URL: provider.url(creds, EXTERNAL) },
      input: 'select 41+1; select database();\n',
      timeoutMs: 10_000,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\b42\b/);
    assert.match(result.stdout, new RegExp(`\\b${r}\\b`));
  });
});

describe('ManagedMysql', () => {
  let provider: AddonProvider;
  const resources: string[] = [];

  before(async () => {
    provider = createMysqlProvider((await managed()).url);
  });
  after(async () => {
    for (const r of resources) await provider.deprovision(r).catch(() => {});
    await provider.close();
  });

  test('runs as the server user, with its files private and no password-less root', async () => {
    const { server } = await managed();
    const [pid] = await server.pids();
    assert.ok(pid, 'a pid');
    const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    const { stdout } = await execOk('id', ['-u', SERVER_USER]);
    assert.equal(uid, stdout.trim());
    const dir = managedDir ?? '';
    assert.equal((await stat(dir)).mode & 0o777, 0o711);
    assert.equal((await stat(path.join(dir, 'state.json'))).mode & 0o777, 0o600);
    const data = await stat(path.join(dir, 'data'));
    assert.equal(data.mode & 0o777, 0o700);
    assert.equal(String(data.uid), stdout.trim());
    await assert.rejects(stat(path.join(dir, 'run', 'init.sql')), 'the init file with the password is gone');
    const { port } = await server.endpoint();
    assert.notEqual(port, 3306);
    await assert.rejects(
      createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 3000 }),
      /Access denied/,
    );
  });

  test('has room for several owners at their login limits (four add-ons once filled 151)', async () => {
    const admin = await createConnection((await managed()).url);
    try {
      const [row] = await adminRows(admin, 'SELECT @@max_connections AS n');
      assert.equal(Number(row?.n), 300);
    } finally {
      await admin.end();
    }
  });

  test('a second ManagedMysql on the same directory adopts the running server', async () => {
    const { server, url } = await managed();
    const [pid] = await server.pids();
    const again = new ManagedMysql({ dir: managedDir ?? '', user: SERVER_USER });
    const t0 = Date.now();
    assert.equal(await again.start(), url);
    assert.ok(Date.now() - t0 < 3000, `adopting took ${Date.now() - t0} ms`);
    assert.deepEqual(await again.pids(), [pid]);
    assert.equal(await again.running(), true);
  });

  test('after kill -9, start() brings the server back with its data', async () => {
    const { server, url } = await managed();
    const r = `${PREFIX}_crash`;
    resources.push(r);
    const creds = await provider.provision(r);
    const endpoint = await server.endpoint();
    const s = await MysqlSession.connect(provider.url(creds, endpoint));
    await s.writeSample();
    const sample = await s.readSample();
    const [pid] = await server.pids();
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await until(() => processStartTime(pid) === undefined, { timeout: 10_000, message: 'mariadbd to die' });
    assert.equal(await server.running(), false);
    await s.close().catch(() => {});
    assert.equal(await server.start(), url);
    const [restarted] = await server.pids();
    assert.ok(restarted && restarted !== pid);
    const again = await MysqlSession.connect(provider.url(creds, endpoint));
    try {
      assert.deepEqual(await again.readSample(), sample);
    } finally {
      await again.close();
    }
  });

  test('stop() ends the server; start() runs it again', async () => {
    const { server, url } = await managed();
    const [pid] = await server.pids();
    assert.ok(pid);
    await server.stop();
    assert.equal(processStartTime(pid), undefined);
    assert.equal(await server.running(), false);
    assert.deepEqual(await server.pids(), []);
    assert.equal(await server.start(), url);
    await provider.ping();
  });
});

providerContract({
  name: 'mysql managed',
  prefix: `${PREFIX}_m`,
  client,
  sessions: { perLogin: 10, slotsShare: false },
  async setUp() {
    const { server, url } = await managed();
    return { provider: createMysqlProvider(url), endpoint: await server.endpoint() };
  },
  tearDown: removeManaged,
});
