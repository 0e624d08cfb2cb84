// A Redis server Petri runs itself from the host's binary, as an unprivileged system user, in
// its own directory: state.json (port, admin password), redis.conf, data/ (append-only file
// and the aclfile of users), run/ (pid file) and server.log. It runs in its own session, so
// it outlives the control plane, and the next start adopts it.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, realpath, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../lib/errors.js';
import { processCommand, processCwd, processStartTime } from '../../lib/process.js';
import { until } from '../../lib/until.js';
import { REDIS_BUSY_THRESHOLD_MS, REDIS_MAX_MEMORY_MIB } from '../ceilings.js';
import {
  HOST,
  loadServerState,
  type ServerState,
  stopServerProcess,
  systemUserIds,
  type UserIds,
} from '../managed-host.js';
import type { Endpoint, ManagedServer, ManagedServerOptions } from '../provider.js';

const REDIS_SERVER = '/usr/bin/redis-server';
const ADMIN_USER = 'petri_admin';
/** Loading a large append-only file after a crash takes a while before logins work. */
const START_TIMEOUT_MS = 15_000;
/** On SIGTERM Redis flushes the append-only file and exits; that is quick. */
const STOP_TIMEOUT_MS = 15_000;
/** server.log is moved aside at start when bigger than this (it has no other rotation). */
const LOG_ROTATE_BYTES = 10 * 1024 * 1024;

interface ServerProcess {
  pid: number;
  startTime: number;
}

export class ManagedRedis implements ManagedServer {
  readonly type = 'redis' as const;
  private readonly dir: string;
  private readonly dataDir: string;
  private readonly runDir: string;
  private readonly confFile: string;
  private readonly aclFile: string;
  private readonly pidFile: string;
  private readonly logFile: string;
  private cachedState: ServerState | undefined;
  private cachedIds: Promise<UserIds> | undefined;

  constructor(private readonly opts: ManagedServerOptions) {
    this.dir = path.resolve(opts.dir);
    this.dataDir = path.join(this.dir, 'data');
    this.runDir = path.join(this.dir, 'run');
    this.confFile = path.join(this.dir, 'redis.conf');
    this.aclFile = path.join(this.dataDir, 'users.acl');
    this.pidFile = path.join(this.runDir, 'redis.pid');
    this.logFile = path.join(this.dir, 'server.log');
  }

  async endpoint(): Promise<Endpoint> {
    return { host: HOST, port: (await this.state()).port };
  }

  async start(): Promise<string> {
    const state = await this.state();
    const url = adminUrl(state);
    const running = await this.server();
    if (running) {
      const port = listeningPort(running.pid);
      if (port !== state.port) {
        throw new Error(
          `the redis server in ${this.dir} (pid ${running.pid}) listens on port ${port}, not ${state.port}: stop it, then start it again`,
        );
      }
      await this.waitForLogin(state, undefined);
      return url;
    }
    const ids = await this.userIds();
    await this.prepareDirectories(ids);
    await this.writeAclFile(state, ids);
    await this.writeServerFile(
      this.confFile,
      renderConfig(this.dataDir, this.pidFile, this.aclFile, state.port),
      ids,
    );
    await this.rotateLog();
    await this.waitForLogin(state, this.spawnServer(ids));
    return url;
  }

  async running(): Promise<boolean> {
    return (await this.server()) !== undefined;
  }

  /** The server and its transient children (an append-only file rewrite, a snapshot). */
  async pids(): Promise<number[]> {
    const server = await this.server();
    return server ? [server.pid, ...childrenOf(server.pid)] : [];
  }

  async stop(): Promise<void> {
    const server = await this.server();
    // SIGTERM is Redis's clean shutdown: it flushes the append-only file and removes the pid file.
    if (server) await stopServerProcess(server, 'SIGTERM', STOP_TIMEOUT_MS, `redis in ${this.dir}`);
  }

  private async state(): Promise<ServerState> {
    this.cachedState ??= await loadServerState(this.dir, this.opts.port);
    return this.cachedState;
  }

  private userIds(): Promise<UserIds> {
    this.cachedIds ??= systemUserIds(this.opts.user, 'redis').catch((err: unknown) => {
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

  /** The users live in data/users.acl, which the provider rewrites (ACL SAVE) after every
   * change. Here only its first two lines are set: the default user, and the admin user with
   * the password of state.json (as its SHA-256, the form ACL SAVE writes too). The add-ons'
   * users on the other lines are kept.
   *
   * The default user is off and has no password, so no connection is ever it and nobody can
   * log in as it; yet it keeps every right, because Redis 7.0 replays the append-only file as
   * the default user and checks its rights at each EXEC: without them, every MULTI/EXEC
   * (and every script, which is written as one) would be dropped when the server restarts. */
  private async writeAclFile(state: ServerState, ids: UserIds): Promise<void> {
    let existing = '';
    try {
      existing = await readFile(this.aclFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const ours = (line: string) => line.startsWith('user default ') || line.startsWith(`user ${ADMIN_USER} `);
    const others = existing.split('\n').filter((line) => line.trim() !== '' && !ours(line));
    const hash = createHash('sha256').update(state.adminPassword).digest('hex');
    const lines = [
      'user default off resetpass ~* &* +@all',
      `user ${ADMIN_USER} on #${hash} ~* &* +@all`,
      ...others,
    ];
    await this.writeServerFile(this.aclFile, lines, ids);
  }

  private async writeServerFile(file: string, lines: string[], ids: UserIds): Promise<void> {
    const partial = `${file}.partial`;
    await writeFile(partial, `${lines.join('\n')}\n`, { mode: 0o600 });
    await chown(partial, ids.uid, ids.gid);
    await rename(partial, file);
  }

  /** The running server of this directory, from its pid file, checked against /proc (a stale
   * pid file after a kill -9 may name a pid reused by something else, even another Redis). */
  private async server(): Promise<ServerProcess | undefined> {
    let pid: number;
    try {
      pid = Number((await readFile(this.pidFile, 'utf8')).trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const startTime = processStartTime(pid);
    if (startTime === undefined) return undefined;
    // Redis works in its `dir`, which tells ours from any other.
    const dataDir = await realpath(this.dataDir).catch(() => undefined);
    if (processCommand(pid) !== 'redis-server' || processCwd(pid) !== dataDir) return undefined;
    return { pid, startTime };
  }

  /** Starts redis-server in its own session with its output in server.log; the promise
   * resolves with a description if it exits (the caller races it against readiness). */
  private spawnServer(ids: UserIds): Promise<string> {
    const log = openSync(this.logFile, 'a', 0o600);
    try {
      // Not lib/exec: that runs a command to completion, and this one must outlive us.
      const child = spawn(REDIS_SERVER, [this.confFile], {
        ...ids,
        cwd: this.dataDir,
        env: serverEnv(),
        detached: true,
        stdio: ['ignore', log, log],
      });
      child.unref();
      return new Promise<string>((resolve) => {
        child.once('error', (err) => resolve(`could not be started: ${err.message}`));
        child.once('exit', (code, sig) => resolve(`exited (${sig ?? `code ${code}`}) while starting`));
      });
    } finally {
      closeSync(log);
    }
  }

  /** Resolves when the admin login works; fails fast with the log's tail if the server exits. */
  private async waitForLogin(state: ServerState, exited: Promise<string> | undefined): Promise<void> {
    let exit: string | undefined;
    void exited?.then((why) => {
      exit = why;
    });
    try {
      await until(
        async () => {
          if (exit !== undefined) return true;
          await tryLogin(state);
          return true;
        },
        {
          timeout: START_TIMEOUT_MS,
          interval: 50,
          message: `redis in ${this.dir} to accept the admin login`,
        },
      );
    } catch (err) {
      throw new Error(`${errorMessage(err)}; ${await this.logTail()}`, { cause: err });
    }
    if (exit !== undefined) throw new Error(`redis-server ${exit}; ${await this.logTail()}`);
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

/** redis.conf, rewritten at each start so a change of port or policy takes effect. */
export function renderConfig(dataDir: string, pidFile: string, aclFile: string, port: number): string[] {
  return [
    '# Written by Petri at each start; edits are overwritten.',
    `bind ${HOST}`,
    `port ${port}`,
    'protected-mode yes',
    'daemonize no',
    // The process title names the port, which start() checks when it adopts a server.
    'set-proc-title yes',
    'proc-title-template "{title} {listen-addr}"',
    // stdout is server.log, opened by start(): early errors (a bad config) land there too.
    'logfile ""',
    `pidfile ${confString(pidFile)}`,
    `dir ${confString(dataDir)}`,
    `aclfile ${confString(aclFile)}`,
    // Every write reaches the file before its reply (a kill -9 loses nothing), and the disk
    // within a second. Snapshots would only write the same data twice.
    'appendonly yes',
    'appendfsync everysec',
    'save ""',
    // Apps' data is not a cache: a full server refuses writes rather than dropping keys,
    // and it is full at a bound rather than when the host runs out of memory.
    `maxmemory ${REDIS_MAX_MEMORY_MIB}mb`,
    'maxmemory-policy noeviction',
    // A script running longer makes the server answer others BUSY, and the watchdog
    // (redis/watchdog.ts) kills it: one app's endless EVAL blocks every app for about this.
    `busy-reply-threshold ${REDIS_BUSY_THRESHOLD_MS}`,
    // Restores replay dumps that may come from elsewhere: a crafted payload must not crash it.
    'sanitize-dump-payload yes',
  ];
}

function adminUrl(state: ServerState): string {
  return `redis://${ADMIN_USER}:${encodeURIComponent(state.adminPassword)}@${HOST}:${state.port}`;
}

async function tryLogin(state: ServerState): Promise<void> {
  let lastError: unknown;
  // Loaded here, with the server's first start: a Petri without Redis add-ons never does.
  const { Redis } = await import('ioredis');
  const client = new Redis({
    host: HOST,
    port: state.port,
    username: ADMIN_USER,
    password: state.adminPassword,
    protocol: 2,
    lazyConnect: true,
    connectTimeout: 2000,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', (err: unknown) => {
    lastError = err;
  });
  try {
    await client.connect().catch((err: unknown) => {
      throw lastError ?? err;
    });
    // While it loads the append-only file, Redis answers LOADING.
    await client.ping();
  } finally {
    client.disconnect();
  }
}

/** The server's environment: nothing of ours (no secrets) leaks into it. */
function serverEnv(): NodeJS.ProcessEnv {
  return { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };
}

/** A string in redis.conf syntax (double quotes, backslash escapes). */
function confString(value: string): string {
  if (/[\x00-\x1f"\\]/.test(value)) {
    throw new Error(
      `redis paths cannot hold quotes, backslashes or control characters: ${JSON.stringify(value)}`,
    );
  }
  return `"${value}"`;
}

/** Redis names its process `redis-server 127.0.0.1:<port>`. */
function listeningPort(pid: number): number | undefined {
  try {
    const title = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    const port = /:(\d+)$/.exec(title)?.[1];
    return port === undefined ? undefined : Number(port);
  } catch {
    return undefined;
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter((s) => s !== '')
      .map(Number);
  } catch {
    return [];
  }
}
