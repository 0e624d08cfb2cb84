// A MariaDB server Petri runs itself from the host's binaries, as an unprivileged system user,
// in its own directory: state.json (port and admin password, root only), data/, run/ (socket
// and pid file) and server.log. It runs in its own session so it outlives the control plane,
// and the next start() adopts it through the pid file.
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { execOk } from '../../lib/exec.js';
import { freePort } from '../../lib/ports.js';
import { processStartTime, sendSignal } from '../../lib/process.js';
import { until } from '../../lib/until.js';
import { MANAGED_MAX_CONNECTIONS } from '../ceilings.js';
import { systemUserIds, type UserIds } from '../managed-host.js';
import { randomPassword } from '../names.js';
import type { Endpoint, ManagedServer, ManagedServerOptions } from '../provider.js';

const MARIADBD = '/usr/sbin/mariadbd';
const INSTALL_DB = 'mariadb-install-db';
const HOST = '127.0.0.1';
const ADMIN_USER = 'petri_admin';
const SERVER_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8' };
/** Crash recovery after a kill -9 is part of a start; 30 s covers it for add-on sized data. */
const START_TIMEOUT_MS = 30_000;
/** A fast shutdown flushes the buffer pool (16 MB): seconds at most, unless the server hangs. */
const STOP_TIMEOUT_MS = 30_000;
const INSTALL_TIMEOUT_MS = 120_000;

/** Small on purpose: the server holds a few apps' small databases, and every megabyte it
 * reserves is taken from the apps on the same host (about 50 MB resident instead of 200). */
const SMALL_MEMORY = [
  '--innodb-buffer-pool-size=16M',
  '--innodb-log-file-size=8M',
  '--innodb-log-buffer-size=1M',
  '--innodb-read-io-threads=1',
  '--innodb-write-io-threads=1',
  '--key-buffer-size=1M',
  '--aria-pagecache-buffer-size=1M',
  '--query-cache-size=0',
  '--table-open-cache=200',
  '--table-definition-cache=400',
  '--thread-cache-size=4',
  '--performance-schema=OFF',
];

interface State {
  port: number;
  adminPassword: string;
  /** True once the admin login worked the first time: until then the data dir is disposable. */
  initialized: boolean;
}

type Owner = UserIds;

export class ManagedMysql implements ManagedServer {
  readonly type = 'mysql' as const;
  private readonly dir: string;
  private readonly dataDir: string;
  private readonly runDir: string;
  private readonly stateFile: string;
  private readonly logFile: string;
  private readonly pidFile: string;
  private readonly socket: string;
  private readonly initFile: string;
  private owner?: Owner;
  private state?: State;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ManagedServerOptions) {
    this.dir = path.resolve(opts.dir);
    this.dataDir = path.join(this.dir, 'data');
    this.runDir = path.join(this.dir, 'run');
    this.stateFile = path.join(this.dir, 'state.json');
    this.logFile = path.join(this.dir, 'server.log');
    this.pidFile = path.join(this.runDir, 'mariadbd.pid');
    this.socket = path.join(this.runDir, 'mariadbd.sock');
    this.initFile = path.join(this.runDir, 'init.sql');
  }

  async endpoint(): Promise<Endpoint> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    return { host: HOST, port: (await this.loadState()).port };
  }

  start(): Promise<string> {
    return this.serialized(() => this.startNow());
  }

  stop(): Promise<void> {
    return this.serialized(() => this.stopNow());
  }

  async running(): Promise<boolean> {
    return (await this.serverPid()) !== undefined;
  }

  async pids(): Promise<number[]> {
    const pid = await this.serverPid();
    return pid === undefined ? [] : [pid];
  }

  /** One start or stop at a time per object: two starts racing would launch two servers. */
  private serialized<T>(step: () => Promise<T>): Promise<T> {
    const next = this.queue.then(step, step);
    // The caller gets the error through `next`; the queue only needs to move on.
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async startNow(): Promise<string> {
    await this.prepareDirs();
    const state = await this.loadState();
    const running = await this.serverPid();
    if (running !== undefined && state.initialized) {
      await this.waitReady(state, running);
      return adminUrl(state);
    }
    // A first start that never finished: its data dir holds nothing anyone was given.
    if (running !== undefined) await this.stopNow();
    const first = !state.initialized;
    if (first) await this.initialise(state);
    const pid = await this.launch(state, first);
    try {
      await this.waitReady(state, pid);
    } catch (err) {
      // A first start that failed leaves nothing worth a clean shutdown.
      if (first) await terminate(pid, 0);
      throw err;
    } finally {
      if (first) await rm(this.initFile, { force: true });
    }
    if (first) await this.saveState({ ...state, initialized: true });
    return adminUrl(state);
  }

  private async stopNow(): Promise<void> {
    const pid = await this.serverPid();
    if (pid !== undefined) await terminate(pid, STOP_TIMEOUT_MS);
  }

  /** The running server's pid, or undefined. A pid file survives kill -9 and its number may
   * since belong to anything, even the host's own MariaDB: ours runs on our data dir. */
  private async serverPid(): Promise<number | undefined> {
    const pid = Number((await readFile(this.pidFile, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0 || processStartTime(pid) === undefined) return undefined;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    const ours = argv[0]?.endsWith('mariadbd') && argv.includes(`--datadir=${this.dataDir}`);
    return ours ? pid : undefined;
  }

  private async prepareDirs(): Promise<void> {
    // The server user must traverse dir to reach data/ and run/, but not list or read it:
    // state.json holds the admin password.
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await chmod(this.dir, 0o711);
    for (const dir of [this.dataDir, this.runDir]) {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await this.giveToOwner(dir, 0o700);
    }
    // mariadbd cannot create files in dir itself, so its log is made for it.
    await (await open(this.logFile, 'a', 0o600)).close();
    await this.giveToOwner(this.logFile, 0o600);
  }

  private async initialise(state: State): Promise<void> {
    await rm(this.dataDir, { recursive: true, force: true });
    await mkdir(this.dataDir, { mode: 0o700 });
    await this.giveToOwner(this.dataDir, 0o700);
    await execOk(
      INSTALL_DB,
      [
        '--no-defaults',
        `--datadir=${this.dataDir}`,
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
        '--innodb-log-file-size=8M',
      ],
      { ...(await this.asOwner()), cwd: this.dir, env: SERVER_ENV, timeoutMs: INSTALL_TIMEOUT_MS },
    );
    const { escape: escapeLiteral } = await import('mysql2/promise');
    await writeFile(this.initFile, initSql(state.adminPassword, escapeLiteral), { mode: 0o600 });
    await this.giveToOwner(this.initFile, 0o600);
  }

  /** Starts mariadbd detached and returns its pid. */
  private async launch(state: State, withInitFile: boolean): Promise<number> {
    // Left by a server killed with -9: mariadbd refuses a socket whose lock names a live pid,
    // and a stale pid file would make the next start adopt whatever now has that number.
    for (const stale of [this.pidFile, this.socket, `${this.socket}.lock`]) await rm(stale, { force: true });
    const args = [
      '--no-defaults',
      `--datadir=${this.dataDir}`,
      `--socket=${this.socket}`,
      `--pid-file=${this.pidFile}`,
      `--port=${state.port}`,
      `--bind-address=${HOST}`,
      '--skip-name-resolve',
      `--log-error=${this.logFile}`,
      '--character-set-server=utf8mb4',
      '--collation-server=utf8mb4_unicode_ci',
      ...SMALL_MEMORY,
      // Room for several owners' add-ons at their login limits (the admin has SUPER, and
      // MariaDB keeps one connection beyond max_connections for it).
      `--max-connections=${MANAGED_MAX_CONNECTIONS}`,
    ];
    if (withInitFile) args.push(`--init-file=${this.initFile}`);
    // spawn, not lib/exec: the server must outlive this process (own session, no pipes to
    // us), while exec waits for its command to end. Its output goes to server.log.
    const child = spawn(MARIADBD, args, {
      ...(await this.asOwner()),
      cwd: this.dir,
      env: SERVER_ENV,
      detached: true,
      stdio: 'ignore',
    });
    if (child.pid === undefined) {
      const err = await new Promise<Error>((resolve) => child.once('error', resolve));
      throw new Error(`cannot start ${MARIADBD}: ${err.message}; is mariadb-server installed?`);
    }
    // After a successful spawn 'error' only reports failed kill()/send() calls, which are not
    // used here; without a listener it would crash the control plane.
    child.on('error', () => {});
    child.unref();
    return child.pid;
  }

  /** Resolves when the admin login works; fails at once, with the log, if the server exits. */
  private async waitReady(state: State, pid: number): Promise<void> {
    let outcome: 'ready' | 'exited';
    try {
      outcome = await until(
        async () => {
          if (processStartTime(pid) === undefined) return 'exited';
          return (await adminAnswers(state)) ? 'ready' : false;
        },
        {
          timeout: START_TIMEOUT_MS,
          interval: 100,
          message: `MariaDB in ${this.dir} to accept the admin login`,
        },
      );
    } catch (err) {
      throw new Error(`${errorMessage(err)}; ${this.logFile} ends with:\n${await this.logTail()}`);
    }
    if (outcome === 'exited') {
      throw new Error(
        `MariaDB in ${this.dir} exited while starting; ${this.logFile} ends with:\n${await this.logTail()}`,
      );
    }
  }

  private async logTail(): Promise<string> {
    const log = await readFile(this.logFile, 'utf8').catch(() => '');
    return log.slice(-2000).trim() || '(empty)';
  }

  private async loadState(): Promise<State> {
    if (this.state) return this.state;
    const text = await readFile(this.stateFile, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const saved = text === undefined ? undefined : this.parseState(text);
    const state: State = saved ?? {
      port: this.opts.port ?? (await freePort(HOST)),
      adminPassword: randomPassword(),
      initialized: false,
    };
    if (this.opts.port !== undefined) state.port = this.opts.port;
    if (saved === undefined || saved.port !== state.port) await this.saveState(state);
    this.state = state;
    return state;
  }

  private parseState(text: string): State {
    const damaged = (why: string) =>
      new Error(
        `${this.stateFile} is damaged (${why}): restore it from a backup, or remove ${this.dir} to start afresh`,
      );
    let value: Partial<State>;
    try {
      value = JSON.parse(text) as Partial<State>;
    } catch (err) {
      throw damaged(errorMessage(err));
    }
    if (!Number.isInteger(value.port) || typeof value.adminPassword !== 'string')
      throw damaged('no port or password');
    return {
      port: Number(value.port),
      adminPassword: value.adminPassword,
      initialized: value.initialized === true,
    };
  }

  private async saveState(state: State): Promise<void> {
    const tmp = `${this.stateFile}.tmp`;
    await writeFile(tmp, JSON.stringify(state), { mode: 0o600 });
    await rename(tmp, this.stateFile);
    this.state = state;
  }

  /** uid and gid of opts.user, looked up once. */
  private async ownerIds(): Promise<Owner> {
    this.owner ??= await systemUserIds(this.opts.user, 'mysql');
    return this.owner;
  }

  /** spawn options that run a command as the server user (nothing when we already are it). */
  private async asOwner(): Promise<Partial<Owner>> {
    const owner = await this.ownerIds();
    return process.getuid?.() === owner.uid ? {} : owner;
  }

  private async giveToOwner(file: string, mode: number): Promise<void> {
    const owner = await this.ownerIds();
    if (process.getuid?.() !== owner.uid) await chown(file, owner.uid, owner.gid);
    await chmod(file, mode);
  }
}

function adminUrl(state: State): string {
  return `mysql://${ADMIN_USER}:${encodeURIComponent(state.adminPassword)}@${HOST}:${state.port}/`;
}

async function adminAnswers(state: State): Promise<boolean> {
  // Loaded here, with the server's first start: a Petri without MariaDB add-ons never does.
  const { createConnection } = await import('mysql2/promise');
  const conn = await createConnection({
    host: HOST,
    port: state.port,
    user: ADMIN_USER,
    password: state.adminPassword,
    connectTimeout: 1000,
  });
  try {
    await conn.query('SELECT 1');
    return true;
  } finally {
    await conn.end();
  }
}

/** Run once, on the first start, before the server accepts connections: mariadb-install-db
 * leaves root logins without a password (reachable by any local process over TCP), which
 * are replaced by petri_admin. One statement per line, as --init-file wants. */
function initSql(password: string, escapeLiteral: (value: string) => string): string {
  const admins = [`'${ADMIN_USER}'@'127.0.0.1'`, `'${ADMIN_USER}'@'localhost'`];
  const host = escapeLiteral(hostname());
  return [
    `DROP USER IF EXISTS 'root'@'localhost', 'root'@'127.0.0.1', 'root'@'::1', 'root'@${host}, ''@'localhost', ''@${host};`,
    // Whatever spelling of the host name install-db used that the line above missed.
    `DELETE FROM mysql.global_priv WHERE User IN ('root', '');`,
    'FLUSH PRIVILEGES;',
    ...admins.map((admin) => `CREATE USER ${admin} IDENTIFIED BY ${escapeLiteral(password)};`),
    ...admins.map((admin) => `GRANT ALL PRIVILEGES ON *.* TO ${admin} WITH GRANT OPTION;`),
    '',
  ].join('\n');
}

/** SIGTERM (a fast shutdown for mariadbd), then SIGKILL after `grace` ms; resolves when the
 * process is gone. A shutdown that hangs is worth less than the server being gone. */
async function terminate(pid: number, grace: number): Promise<void> {
  const started = processStartTime(pid);
  if (started === undefined) return;
  const gone = () => processStartTime(pid) !== started;
  sendSignal(pid, grace > 0 ? 'SIGTERM' : 'SIGKILL');
  const stopped = await until(gone, { timeout: grace }).then(
    () => true,
    () => false,
  );
  if (stopped) return;
  sendSignal(pid, 'SIGKILL');
  await until(gone, { timeout: 5000, message: `MariaDB (pid ${pid}) to die after SIGKILL` });
}
