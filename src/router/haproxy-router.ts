// The Router backed by HAProxy. apply() computes the config and pages, writes them once HAProxy
// has validated them, then makes the running HAProxy match: through the runtime API when only
// app servers changed, through a hitless master-CLI reload when anything else did.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { until } from '../lib/until.js';
import { fingerprintOf, type RenderOptions, renderHaproxyConfig } from './config.js';
import { gateMapEntries, parseShowMap, planMapChanges, renderGateMap } from './gate-map.js';
import { renderPages } from './pages.js';
import { type RouterPaths, routerPaths } from './paths.js';
import {
  findRunningHaproxy,
  type HaproxyProcess,
  isAlive,
  launchHaproxy,
  stopHaproxy,
  validateConfig,
} from './process.js';
import type { Router, RouteSpec } from './router.js';
import { appOfBackend, groupRoutes } from './routes.js';
import {
  parseCurrentSessions,
  parseLastSessions,
  parseServersState,
  parseShowInfo,
  parseShowProc,
  sendCommand,
} from './runtime-api.js';
import { planServerChanges } from './server-plan.js';

export interface HaproxyRouterOptions extends RenderOptions {
  /** Router state dir (config, sockets, pidfile, pages); created if missing. */
  dir: string;
  httpPort: number;
  /** Default 127.0.0.1. */
  bindAddress?: string;
  /** Routed to the control plane API, e.g. 'petri.localhost'. */
  apiHost: string;
  apiServer: { address: string; port: number };
  /** Used in the texts of the pages. */
  domain: string;
  statsPort?: number;
  /** Default 'haproxy'. */
  haproxyBin?: string;
  /** How long stop() lets requests in flight finish before SIGTERM. Default 10 s. */
  stopGraceMs?: number;
  logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

// A reload forks a new worker that parses the config; seconds, even with many apps.
const RELOAD_TIMEOUT_MS = 20_000;
// Servers that still had connections when removed are retried this often.
const DELETE_RETRY_MS = 2_000;

export class HaproxyRouter implements Router {
  private readonly paths: RouterPaths;
  private readonly bin: string;
  private proc: HaproxyProcess | undefined;
  /** apply() calls run one at a time, in order: each computes from what HAProxy runs now. */
  private queue: Promise<unknown> = Promise.resolve();
  private lastRoutes: RouteSpec[] | undefined;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: HaproxyRouterOptions) {
    this.paths = routerPaths(opts.dir);
    this.bin = opts.haproxyBin ?? 'haproxy';
  }

  /** The pid of the HAProxy master, once started or adopted. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  start(): Promise<void> {
    return this.serialize(async () => {
      await mkdir(this.paths.pagesDir, { recursive: true, mode: 0o700 });
      const persisted = await this.readPersistedRoutes();
      const running = findRunningHaproxy(this.paths);
      if (running !== undefined) {
        // Left by an earlier control plane: adopt it; it kept serving while we were away.
        this.proc = running;
        await until(() => this.loadedFingerprint(), {
          timeout: 10_000,
          message: 'the adopted HAProxy to answer',
        });
        this.log('info', { pid: running.pid }, 'adopted running HAProxy');
        if (persisted !== undefined) await this.converge(persisted);
        return;
      }
      const routes = persisted ?? [];
      await this.writeConfig(routes);
      this.proc = await launchHaproxy(this.bin, this.paths);
      const expected = fingerprintOf(renderHaproxyConfig(this.opts, routes));
      await until(async () => (await this.loadedFingerprint()) === expected, {
        timeout: 10_000,
        message: 'the new HAProxy worker to answer',
      });
      this.lastRoutes = routes;
      this.log('info', { pid: this.proc.pid }, 'started HAProxy');
    });
  }

  apply(routes: RouteSpec[]): Promise<void> {
    const copy = structuredClone(routes);
    return this.serialize(() => this.converge(copy));
  }

  /** Seconds since each app backend's last request (-1: none since the worker started). */
  async lastRequests(): Promise<Map<string, number>> {
    const byBackend = parseLastSessions(await sendCommand(this.paths.adminSocket, 'show stat -1 2 -1'));
    const byApp = new Map<string, number>();
    for (const [backend, seconds] of byBackend) {
      const app = appOfBackend(backend);
      if (app !== undefined) byApp.set(app, seconds);
    }
    return byApp;
  }

  async drained(serverId: string): Promise<boolean> {
    if (this.lastRoutes?.some((r) => r.servers.some((s) => s.id === serverId))) return false;
    // Removed servers stay in maintenance while their connections finish (del server
    // refuses them until then): drained when none of its sessions remains.
    const sessions = parseCurrentSessions(await sendCommand(this.paths.adminSocket, 'show stat -1 4 -1'));
    return (sessions.get(serverId) ?? 0) === 0;
  }

  async stop(): Promise<void> {
    await this.serialize(async () => {
      this.cancelRetry();
      const proc = this.proc ?? findRunningHaproxy(this.paths);
      if (proc === undefined) return;
      await stopHaproxy(proc, this.opts.stopGraceMs ?? 10_000);
      this.proc = undefined;
      this.log('info', { pid: proc.pid }, 'stopped HAProxy');
    });
  }

  private async converge(routes: RouteSpec[]): Promise<void> {
    const proc = this.proc;
    if (proc === undefined || !isAlive(proc)) throw new Error('HAProxy is not running: call start() first');
    this.cancelRetry();
    const config = renderHaproxyConfig(this.opts, routes);
    const wanted = fingerprintOf(config);
    await this.writeConfig(routes, config);
    const loaded = await this.loadedFingerprint();
    let retry = false;
    if (loaded !== wanted) {
      await this.reload(wanted);
    } else {
      retry = await this.applyServerChanges(routes);
      await this.applyGateChanges(routes);
    }
    await this.removeStalePages(routes);
    await this.persistRoutes(routes);
    this.lastRoutes = routes;
    if (retry) this.scheduleRetry();
  }

  /** Writes pages, the gate map and the config, the config only once HAProxy has validated
   * it. Unchanged files are left alone, so an idempotent apply touches nothing. */
  private async writeConfig(
    routes: RouteSpec[],
    config = renderHaproxyConfig(this.opts, routes),
  ): Promise<void> {
    const apps = groupRoutes(routes, this.opts.apiHost);
    const pages = renderPages(this.opts, apps);
    for (const [name, content] of pages) {
      await writeIfChanged(path.join(this.paths.pagesDir, name), content);
    }
    // Before any reload or restart can read it: the map on disk is what a new worker loads.
    await writeIfChanged(this.paths.gateMap, renderGateMap(gateMapEntries(apps)));
    if ((await readOrUndefined(this.paths.config)) === config) return;
    await writeFile(this.paths.nextConfig, config, { mode: 0o600 });
    try {
      await validateConfig(this.bin, this.paths.nextConfig);
    } catch (err) {
      await rm(this.paths.nextConfig, { force: true });
      throw err;
    }
    // rename: a reload by anyone (or a crash now) sees the old or the new file, never half.
    await rename(this.paths.nextConfig, this.paths.config);
  }

  /** Hitless reload: the master forks a worker on the new config, which takes the listening
   * sockets over; the old worker finishes its requests in flight, then exits. */
  private async reload(wanted: string | undefined): Promise<void> {
    const before = parseShowProc(await sendCommand(this.paths.masterSocket, 'show proc'));
    // HAProxy 2.6 answers nothing to `reload` (the master re-executes itself): watch for the
    // new worker on the runtime API instead.
    await sendCommand(this.paths.masterSocket, 'reload');
    let failed = false;
    await until(
      async () => {
        const procs = parseShowProc(await sendCommand(this.paths.masterSocket, 'show proc'));
        if (procs.failedReloads > before.failedReloads) {
          failed = true;
          return true;
        }
        const info = parseShowInfo(await sendCommand(this.paths.adminSocket, 'show info'));
        const pid = Number(info.get('Pid'));
        return !before.workers.includes(pid) && fingerprintOf(info.get('description') ?? '') === wanted;
      },
      { timeout: RELOAD_TIMEOUT_MS, interval: 25, message: 'the reloaded HAProxy worker to serve' },
    );
    if (failed) {
      throw new Error('HAProxy could not load the new configuration; the previous one keeps serving');
    }
    this.log('info', { fingerprint: wanted }, 'reloaded HAProxy');
  }

  /** Returns true when some removed server still had connections and must be retried. */
  private async applyServerChanges(routes: RouteSpec[]): Promise<boolean> {
    const apps = groupRoutes(routes, this.opts.apiHost);
    const running = parseServersState(await sendCommand(this.paths.adminSocket, 'show servers state'));
    const commands = planServerChanges(apps, running);
    let retry = false;
    for (const { command, ok, retryLater } of commands) {
      const answer = (await sendCommand(this.paths.adminSocket, command)).trim();
      if (ok.test(answer)) continue;
      if (retryLater?.test(answer)) {
        retry = true;
        continue;
      }
      throw new Error(`HAProxy runtime API refused '${command}': ${answer}`);
    }
    if (commands.length > 0)
      this.log('info', { commands: commands.map((c) => c.command) }, 'changed servers');
    return retry;
  }

  /** Makes the running worker's gate map equal the wanted one: hosts gated or made public,
   * keys rotated, each in effect from the next request, with no reload. */
  private async applyGateChanges(routes: RouteSpec[]): Promise<void> {
    const wanted = gateMapEntries(groupRoutes(routes, this.opts.apiHost));
    const running = parseShowMap(await sendCommand(this.paths.adminSocket, `show map ${this.paths.gateMap}`));
    const commands = planMapChanges(this.paths.gateMap, wanted, running);
    for (const { command, ok } of commands) {
      const answer = (await sendCommand(this.paths.adminSocket, command)).trim();
      // The command names a key: never logged, nor put in an error.
      if (!ok.test(answer)) throw new Error(`HAProxy runtime API refused a gate map change: ${answer}`);
    }
    if (commands.length > 0) this.log('info', { changes: commands.length }, 'changed the gate map');
  }

  private async loadedFingerprint(): Promise<string | undefined> {
    const info = parseShowInfo(await sendCommand(this.paths.adminSocket, 'show info'));
    return fingerprintOf(info.get('description') ?? '');
  }

  private scheduleRetry(): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const routes = this.lastRoutes;
      if (routes === undefined) return;
      this.serialize(() => this.converge(routes)).catch((err: unknown) =>
        this.log('warn', { err: String(err) }, 'retrying server removal failed'),
      );
    }, DELETE_RETRY_MS);
    // A pending retry must not keep the control plane (or a test) alive.
    this.retryTimer.unref();
  }

  private cancelRetry(): void {
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private async removeStalePages(routes: RouteSpec[]): Promise<void> {
    const keep = new Set(renderPages(this.opts, groupRoutes(routes, this.opts.apiHost)).keys());
    for (const name of await readdir(this.paths.pagesDir)) {
      if (!keep.has(name)) await rm(path.join(this.paths.pagesDir, name), { force: true });
    }
  }

  private async persistRoutes(routes: RouteSpec[]): Promise<void> {
    await writeIfChanged(this.paths.routesFile, `${JSON.stringify(routes, null, 2)}\n`);
  }

  private async readPersistedRoutes(): Promise<RouteSpec[] | undefined> {
    const text = await readOrUndefined(this.paths.routesFile);
    return text === undefined ? undefined : (JSON.parse(text) as RouteSpec[]);
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private log(level: 'info' | 'warn', o: object, msg: string): void {
    this.opts.logger?.[level](o, msg);
  }
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Atomic (write aside, rename) and skipped when the content is already there. */
async function writeIfChanged(file: string, content: string): Promise<void> {
  if ((await readOrUndefined(file)) === content) return;
  const tmp = `${file}.tmp`;
  await writeFile(tmp, content, { mode: 0o600 });
  await rename(tmp, file);
}
