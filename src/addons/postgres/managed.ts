// A PostgreSQL server Petri runs itself from the host's binaries, as an unprivileged system
// user, in its own directory: state.json (port, admin password), data/ (PGDATA), run/ (the
// socket) and server.log. It runs in its own session, so it outlives the control plane.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import {
  chmod,
  chown,
  mkdir,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { execOk } from '../../lib/exec.js';
import { processCommand, processCwd, processStartTime, sendSignal } from '../../lib/process.js';
import { until } from '../../lib/until.js';
import { MANAGED_MAX_CONNECTIONS, SUPERUSER_RESERVED } from '../ceilings.js';
import {
  HOST,
  loadServerState,
  type ServerState,
  stopServerProcess,
  systemUserIds,
  type UserIds,
} from '../managed-host.js';
import type { Endpoint, ManagedServer, ManagedServerOptions } from '../provider.js';
import { postgresBinary } from './binaries.js';

const ADMIN_USER = 'petri_admin';
/** Crash recovery after a kill -9 replays WAL before the server accepts logins. */
const START_TIMEOUT_MS = 30_000;
/** A fast shutdown aborts transactions and checkpoints; a busy server may take a while. */
const STOP_TIMEOUT_MS = 30_000;
/** Backends of a killed postmaster notice within a second or so and exit on their own. */
const ORPHANS_TIMEOUT_MS = 10_000;
/** server.log is moved aside at start when bigger than this (it has no other rotation). */
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

export class ManagedPostgres implements ManagedServer {
  readonly type = 'postgres' as const;
  private readonly dir: string;
  private readonly dataDir: string;
  private readonly runDir: string;
  private readonly logFile: string;
  private cachedState: ServerState | undefined;
  private cachedIds: Promise<UserIds> | undefined;
  private starting: Promise<string> | undefined;

  constructor(private readonly opts: ManagedServerOptions) {
    this.dir = path.resolve(opts.dir);
    this.dataDir = path.join(this.dir, 'data');
    this.runDir = path.join(this.dir, 'run');
    this.logFile = path.join(this.dir, 'server.log');
  }

  async endpoint(): Promise<Endpoint> {
    return { host: HOST, port: (await this.state()).port };
  }

  async start(): Promise<string> {
    // Two overlapping starts of one object would spawn two postmasters; the loser would
    // exit on the pid file and report a failure although the server runs.
    this.starting ??= this.startOnce().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async startOnce(): Promise<string> {
    const state = await this.state();
    const ids = await this.userIds();
    await this.prepareDirectories(ids);
    if (!existsSync(path.join(this.dataDir, 'PG_VERSION'))) await this.initdb(state, ids);
    await this.writeConfig(state, ids);
    let exited: Promise<never> | undefined;
    if ((await this.postmaster()) === undefined) {
      // After a kill -9 the old backends hold the shared memory until they notice; a new
      // postmaster refuses to start while they do.
      await this.waitForOrphans();
      await this.rotateLog();
      exited = this.spawnPostmaster(ids);
    }
    const url = adminUrl(state);
    try {
      await this.waitForLogin(url, exited);
    } catch (err) {
      // Another process started it first (ours then exits on the pid file): adopt that one.
      if (!(err instanceof PostmasterExitedError) || !(await this.postmaster())) throw err;
      await this.waitForLogin(url, undefined);
    }
    return url;
  }

  async running(): Promise<boolean> {
    return (await this.postmaster()) !== undefined;
  }

  async pids(): Promise<number[]> {
    const postmaster = await this.postmaster();
    if (!postmaster) return [];
    return [postmaster.pid, ...descendants(postmaster.pid)];
  }

  async stop(): Promise<void> {
    const postmaster = await this.postmaster();
    // SIGINT is PostgreSQL's fast shutdown: sessions are ended, data is checkpointed.
    if (postmaster) await stopServerProcess(postmaster, 'SIGINT', STOP_TIMEOUT_MS, `postgres in ${this.dir}`);
    await this.waitForOrphans();
  }

  private async state(): Promise<ServerState> {
    this.cachedState ??= await loadServerState(this.dir, this.opts.port);
    return this.cachedState;
  }

  private userIds(): Promise<UserIds> {
    this.cachedIds ??= systemUserIds(this.opts.user, 'postgres').catch((err: unknown) => {
      this.cachedIds = undefined;
      throw err;
    });
    return this.cachedIds;
  }

  /** dir is traversable but not listable by the server's user; data and run are its own. */
  private async prepareDirectories(ids: UserIds): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await chmod(this.dir, 0o711);
    for (const d of [this.dataDir, this.runDir]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chown(d, ids.uid, ids.gid);
      await chmod(d, 0o700);
    }
  }

  private async initdb(state: ServerState, ids: UserIds): Promise<void> {
    // No PG_VERSION means initdb never finished here (it writes that file early, but a
    // half-written directory is useless either way) and initdb refuses a non-empty one.
    for (const entry of await readdir(this.dataDir)) {
      await rm(path.join(this.dataDir, entry), { recursive: true, force: true });
    }
    // The password file must be readable by the server's user, and by nobody else.
    const pwfile = path.join(this.dir, `initdb-${randomBytes(6).toString('hex')}.pw`);
    await writeFile(pwfile, `${state.adminPassword}\n`, { mode: 0o600 });
    try {
      await chown(pwfile, ids.uid, ids.gid);
      await execOk(
        postgresBinary('initdb'),
        [
          `--pgdata=${this.dataDir}`,
          `--username=${ADMIN_USER}`,
          '--auth=scram-sha-256',
          `--pwfile=${pwfile}`,
          '--encoding=UTF8',
          // Unicode-aware case mapping, and it exists on every current glibc.
          '--locale=C.UTF-8',
        ],
        { ...ids, cwd: this.dir, env: serverEnv(), timeoutMs: 120_000 },
      );
    } catch (err) {
      throw new Error(
        `initdb in ${this.dataDir} as ${this.opts.user} failed (every directory above ${this.dir} must be traversable by that user): ${errorMessage(err)}`,
        { cause: err },
      );
    } finally {
      await rm(pwfile, { force: true });
    }
  }

  /** Settings in petri.conf (included from postgresql.conf) and pg_hba.conf, rewritten at
   * each start so a change of port or policy takes effect. */
  private async writeConfig(state: ServerState, ids: UserIds): Promise<void> {
    const mainConf = path.join(this.dataDir, 'postgresql.conf');
    const include = "include = 'petri.conf'";
    const main = await readFile(mainConf, 'utf8');
    if (!main.split('\n').includes(include)) {
      await writeFile(mainConf, `${main}\n# Petri's settings, rewritten at each start.\n${include}\n`);
    }
    const settings = [
      `listen_addresses = '${HOST}'`,
      `port = ${state.port}`,
      `unix_socket_directories = ${confString(this.runDir)}`,
      // Room for every add-on's CONNECTION LIMIT of several owners, and slots no app login
      // can take, so the admin (a superuser) always gets in.
      `max_connections = ${MANAGED_MAX_CONNECTIONS}`,
      `superuser_reserved_connections = ${SUPERUSER_RESERVED}`,
      'shared_buffers = 16MB',
      'fsync = on',
      "password_encryption = 'scram-sha-256'",
      // stderr is server.log, opened by start(); no collector process needed.
      "log_destination = 'stderr'",
      'logging_collector = off',
    ];
    // Apps arrive through NAT from their sandboxes' addresses, so every address, always
    // with a password.
    const hba = [
      'local all all scram-sha-256',
      'host all all 0.0.0.0/0 scram-sha-256',
      'host all all ::/0 scram-sha-256',
    ];
    await this.writeServerFile('petri.conf', settings, ids);
    await this.writeServerFile('pg_hba.conf', hba, ids);
  }

  private async writeServerFile(name: string, lines: string[], ids: UserIds): Promise<void> {
    const file = path.join(this.dataDir, name);
    await writeFile(file, `# Written by Petri at each start; edits are overwritten.\n${lines.join('\n')}\n`, {
      mode: 0o600,
    });
    await chown(file, ids.uid, ids.gid);
  }

  /** The running postmaster of this directory, from its pid file, checked against /proc
   * (a stale pid file after a kill -9 may name a pid reused by something else). */
  private async postmaster(): Promise<{ pid: number; startTime: number } | undefined> {
    let pid: number;
    try {
      pid = Number((await readFile(path.join(this.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const startTime = processStartTime(pid);
    if (startTime === undefined) return undefined;
    const dataDir = await realpath(this.dataDir).catch(() => undefined);
    if (processCommand(pid) !== 'postgres' || processCwd(pid) !== dataDir) return undefined;
    return { pid, startTime };
  }

  /** Starts the postmaster in its own session with its output in server.log; the promise
   * rejects if it exits (it never resolves: the caller races it against readiness). */
  private spawnPostmaster(ids: UserIds): Promise<never> {
    const log = openSync(this.logFile, 'a', 0o600);
    try {
      // Not lib/exec: that runs a command to completion, and this one must outlive us.
      const child = spawn(postgresBinary('postgres'), ['-D', this.dataDir], {
        ...ids,
        cwd: this.dir,
        env: serverEnv(),
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      const exited = new Promise<never>((_, reject) => {
        child.once('error', (err) => reject(new Error(`postgres could not be started: ${err.message}`)));
        child.once('exit', (code, signal) => {
          void this.logTail().then((tail) =>
            reject(
              new PostmasterExitedError(
                `postgres exited (${signal ?? `code ${code}`}) while starting; ${tail}`,
              ),
            ),
          );
        });
      });
      // Once started, a later exit is stop()'s business, not an unhandled rejection.
      exited.catch(() => {});
      return exited;
    } finally {
      closeSync(log);
    }
  }

  private async waitForLogin(url: string, exited: Promise<never> | undefined): Promise<void> {
    let abandoned = false;
    const ready = until(
      async () => {
        if (abandoned) return true;
        await tryLogin(url);
        return true;
      },
      {
        timeout: START_TIMEOUT_MS,
        interval: 100,
        message: `postgres in ${this.dir} to accept the admin login`,
      },
    );
    try {
      await (exited ? Promise.race([ready, exited]) : ready);
    } catch (err) {
      abandoned = true;
      ready.catch(() => {});
      if (err instanceof PostmasterExitedError) throw err;
      throw new Error(`${errorMessage(err)}; ${await this.logTail()}`, { cause: err });
    }
  }

  /** Waits until no process of a previous postmaster is left in the data directory,
   * killing the ones that linger. */
  private async waitForOrphans(): Promise<void> {
    const dataDir = await realpath(this.dataDir).catch(() => undefined);
    if (!dataDir) return;
    const none = () => processesIn(dataDir).length === 0;
    try {
      await until(none, {
        timeout: ORPHANS_TIMEOUT_MS,
        message: `old postgres processes in ${dataDir} to exit`,
      });
    } catch {
      for (const pid of processesIn(dataDir)) sendSignal(pid, 'SIGKILL');
      await until(none, { timeout: 5000, message: `old postgres processes in ${dataDir} to die` });
    }
  }

  private async rotateLog(): Promise<void> {
    const size = await stat(this.logFile).then(
      (s) => s.size,
      () => 0,
    );
    if (size > LOG_ROTATE_BYTES) await rename(this.logFile, `${this.logFile}.1`);
  }

  private async logTail(): Promise<string> {
    try {
      const text = await readFile(this.logFile, 'utf8');
      return `last lines of ${this.logFile}:\n${text.trimEnd().split('\n').slice(-15).join('\n')}`;
    } catch {
      return `${this.logFile} is missing`;
    }
  }
}

function adminUrl(state: ServerState): string {
  return `postgres://${ADMIN_USER}:${encodeURIComponent(state.adminPassword)}@${HOST}:${state.port}/postgres`;
}

async function tryLogin(url: string): Promise<void> {
  // Loaded here, with the server's first start: a Petri without PostgreSQL add-ons never does.
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    // The login either worked or threw above; a failing close changes nothing.
    await client.end().catch(() => {});
  }
}

/** The server's environment: nothing of ours (no secrets, no PG* variables) leaks into it. */
function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };
}

/** A string value in postgresql.conf syntax. */
function confString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The live postgres processes working in `dir` (a shell someone left there is not one). */
function processesIn(dir: string): number[] {
  return allPids().filter(
    (pid) =>
      processCwd(pid) === dir && processCommand(pid) === 'postgres' && processStartTime(pid) !== undefined,
  );
}

class PostmasterExitedError extends Error {}

function parentPid(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After the command name (which may hold spaces and parentheses): state, then ppid.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of allPids()) {
    const parent = parentPid(pid);
    if (parent === undefined) continue;
    children.set(parent, [...(children.get(parent) ?? []), pid]);
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
}
