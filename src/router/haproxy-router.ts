// The Router backed by HAProxy. apply() computes the config and pages, writes them once HAProxy
// has validated them, then makes the running HAProxy match: through the runtime API when only
// app servers changed, through a hitless master-CLI reload when anything else did.
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { until } from '../lib/until.js';
import {
  assertCertName,
  certFile,
  certNames,
  DEFAULT_CERT,
  normalizeCertificatePem,
  parseShowSslCert,
  renderCrtList,
} from './certificates.js';
import { fingerprintOf, type RenderOptions, renderHaproxyConfig, routerThreads } from './config.js';
import { gateMapEntries, parseShowMap, planMapChanges, renderGateMap } from './gate-map.js';
import { renderPages } from './pages.js';
import { type RouterPaths, routerPaths } from './paths.js';
import {
  assignPool,
  hostMapEntries,
  idleBackends,
  POOL_PREFIX,
  type Pool,
  parseMapFile,
  placeApps,
  renderMap,
  slotsFromHostMap,
} from './pool.js';
import {
  findRunningHaproxy,
  type HaproxyProcess,
  isAlive,
  launchHaproxy,
  stopHaproxy,
  validateConfig,
} from './process.js';
import type { Router, RouteSpec } from './router.js';
import { type AppRoute, appOfBackend, groupRoutes } from './routes.js';
import {
  parseCurrentSessions,
  parseLastSessions,
  parseServersState,
  parseShowInfo,
  parseShowProc,
  type RuntimeCommand,
  sendCommand,
} from './runtime-api.js';
import { planServerChanges } from './server-plan.js';
import { assertWellKnown, parseWellKnownMap, planWellKnown, renderWellKnownMap } from './well-known.js';

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
  /** With `https`: the certificate served when no host's own matches (chain then key, PEM),
   * in place before HAProxy starts. */
  defaultCertificate?: string;
  /** Default 'haproxy'. */
  haproxyBin?: string;
  /** How long stop() lets requests in flight finish before SIGTERM. Default 10 s. */
  stopGraceMs?: number;
  logger?: { info(o: object, msg?: string): void; warn(o: object, msg?: string): void };
}

// A reload forks a new worker that parses the config; seconds, even with many apps.
const RELOAD_TIMEOUT_MS = 20_000;
// The well-known map file is written at most this often: the thousands of tokens set again at
// a control plane's start cost one write, not one each (every reload and stop writes first).
const WELL_KNOWN_WRITE_MS = 250;
// Servers that still had connections when removed are retried this often.
const DELETE_RETRY_MS = 2_000;

export class HaproxyRouter implements Router {
  private readonly paths: RouterPaths;
  private readonly bin: string;
  private proc: HaproxyProcess | undefined;
  /** apply() calls run one at a time, in order: each computes from what HAProxy runs now. */
  private queue: Promise<unknown> = Promise.resolve();
  private lastRoutes: RouteSpec[] | undefined;
  /** Which app holds which pool backend, as the last apply left it. */
  private pool: Pool | undefined;
  /** Since when each pool backend has its holder (0: since before this router object). A
   * backend's last request from before may be its previous holder's. */
  private readonly heldSince = new Map<string, { app: string; at: number }>();
  private retryTimer: NodeJS.Timeout | undefined;
  /** What the running worker's well-known map holds (the file once written): loaded once,
   * from the worker when adopted, so a change is one runtime command and no map is read. */
  private wellKnown: Map<string, string> | undefined;
  private wellKnownUnwritten = false;
  private wellKnownTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: HaproxyRouterOptions) {
    this.opts = { ...opts, threads: opts.threads ?? routerThreads() };
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
      await mkdir(this.paths.certsDir, { recursive: true, mode: 0o700 });
      // Before any config is checked or loaded: its crt-list names the default certificate.
      const defaultPem = this.opts.https ? this.defaultCertificatePem() : undefined;
      if (defaultPem !== undefined) await this.writeCertificate(DEFAULT_CERT, defaultPem);
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
        // With HTTPS newly on, the worker's config has no crt-list yet: converge reloads it
        // (a worker started by an earlier control plane that never applied routes has none).
        if (persisted !== undefined || defaultPem !== undefined) await this.converge(persisted ?? []);
        await this.adoptWellKnown();
        // The default certificate may have changed while no control plane ran (a new
        // wildcard pair): the running one is made the one on disk.
        if (defaultPem !== undefined) await this.installCertificate(DEFAULT_CERT, defaultPem, true);
        return;
      }
      // Changes asked before start() are in memory only: the new worker loads the file.
      await this.writeWellKnown();
      const routes = persisted ?? [];
      const pool = await this.planPool(routes);
      const config = renderHaproxyConfig(this.opts, routes, pool);
      await this.writeConfig(routes, pool, config);
      this.proc = await launchHaproxy(this.bin, this.paths);
      const expected = fingerprintOf(config);
      await until(async () => (await this.loadedFingerprint()) === expected, {
        timeout: 10_000,
        message: 'the new HAProxy worker to answer',
      });
      this.lastRoutes = routes;
      this.setPool(pool);
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
    const now = Date.now();
    for (const [backend, seconds] of byBackend) {
      if (!backend.startsWith(POOL_PREFIX)) {
        const app = appOfBackend(backend);
        if (app !== undefined) byApp.set(app, seconds);
        continue;
      }
      const held = this.heldSince.get(backend);
      if (held === undefined) continue;
      // A request older than the holder was its predecessor's: none yet for this app (a new
      // app must not go to sleep for another app's quiet hours).
      const before = seconds >= 0 && now - seconds * 1000 < held.at - 1000;
      byApp.set(held.app, before ? -1 : seconds);
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

  async setCertificate(name: string, pem: string): Promise<void> {
    assertCertName(name);
    const normalized = normalizeCertificatePem(pem);
    return this.serialize(() => this.installCertificate(name, normalized, false));
  }

  /** The certificates served (the files, kept equal to what runs), by name. */
  async installedCertificates(): Promise<Map<string, string>> {
    const names = certNames(await readdir(this.paths.certsDir).catch(() => []));
    const pems = new Map<string, string>();
    for (const name of names) {
      const pem = await readOrUndefined(certFile(this.paths.certsDir, name));
      if (pem !== undefined) pems.set(name, pem);
    }
    return pems;
  }

  /**
   * Staples an OCSP response (DER, checked by the caller) to the certificate `name` while it is
   * still `pem`, or stops stapling one (undefined). The file NAME.pem.ocsp beside the
   * certificate is what a reload or a restart loads. HAProxy 2.6 takes `set ssl ocsp-response`
   * only for a certificate loaded with a response; any other gets it through a certificate
   * transaction (set ssl cert NAME.pem.ocsp, commit), which also makes it take the next ones.
   * Setting the certificate again drops its response. False when the certificate changed.
   */
  async setOcspResponse(name: string, pem: string, der: Uint8Array | undefined): Promise<boolean> {
    assertCertName(name);
    const normalized = normalizeCertificatePem(pem);
    return this.serialize(async () => {
      const file = certFile(this.paths.certsDir, name);
      if ((await readOrUndefined(file)) !== normalized) return false;
      const ocspFile = `${file}.ocsp`;
      const running = await this.runningCertificates();
      if (der === undefined) {
        const had = (await readOrUndefined(ocspFile)) !== undefined;
        await rm(ocspFile, { force: true });
        if (had && running?.has(file)) await this.installCertificate(name, normalized, true);
        return true;
      }
      await writeIfChanged(ocspFile, Buffer.from(der));
      if (!running?.has(file)) return true;
      const base64 = ocspPayload(der);
      const set = (await sendCommand(this.paths.adminSocket, 'set ssl ocsp-response', 5000, base64)).trim();
      if (/^OCSP Response updated/.test(set)) return true;
      // Loaded without a response: a transaction of the certificate with one.
      const tx = (await sendCommand(this.paths.adminSocket, `set ssl cert ${ocspFile}`, 5000, base64)).trim();
      if (!/^Transaction (created|updated) for certificate/.test(tx)) {
        await this.abortCertificate(file, false);
        throw new Error(
          `HAProxy refused the OCSP response for ${name}: ${set.split('\n')[0]} / ${tx.split('\n')[0]}`,
        );
      }
      const commit = (await sendCommand(this.paths.adminSocket, `commit ssl cert ${file}`)).trim();
      if (!/Success!$/.test(commit)) {
        await this.abortCertificate(file, false);
        throw new Error(
          `HAProxy could not commit the OCSP response for ${name}: ${commit.replace(/\s+/g, ' ')}`,
        );
      }
      return true;
    });
  }

  async removeCertificate(name: string): Promise<void> {
    assertCertName(name);
    if (name === DEFAULT_CERT) throw new Error('the default certificate is replaced, never removed');
    return this.serialize(() => this.uninstallCertificate(name));
  }

  async setWellKnown(urlPath: string, body: string): Promise<void> {
    assertWellKnown(urlPath, body);
    return this.serialize(() => this.changeWellKnown(urlPath, body));
  }

  async deleteWellKnown(urlPath: string): Promise<void> {
    assertWellKnown(urlPath);
    return this.serialize(() => this.changeWellKnown(urlPath, undefined));
  }

  async stop(): Promise<void> {
    await this.serialize(async () => {
      this.cancelRetry();
      await this.writeWellKnown();
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
    const pool = await this.planPool(routes);
    const config = renderHaproxyConfig(this.opts, routes, pool);
    const wanted = fingerprintOf(config);
    await this.writeConfig(routes, pool, config);
    const loaded = await this.loadedFingerprint();
    let retry = false;
    if (loaded !== wanted) {
      // The new worker loads the well-known map from its file: it must have every answer.
      await this.writeWellKnown();
      await this.reload(wanted);
    } else {
      retry = await this.applyRuntimeChanges(routes, pool);
    }
    await this.removeStalePages(routes);
    await this.persistRoutes(routes);
    this.lastRoutes = routes;
    this.setPool(pool);
    if (retry) this.scheduleRetry();
  }

  private defaultCertificatePem(): string {
    if (this.opts.defaultCertificate === undefined) {
      throw new Error('HTTPS needs a default certificate (HaproxyRouterOptions.defaultCertificate)');
    }
    return normalizeCertificatePem(this.opts.defaultCertificate);
  }

  /** The running worker's certificates (their files), or undefined when none can have any:
   * HAProxy not started yet, or no HTTPS (the files are then only kept for later). */
  private async runningCertificates(): Promise<Set<string> | undefined> {
    if (this.opts.https === undefined || this.proc === undefined || !isAlive(this.proc)) return undefined;
    return parseShowSslCert(await sendCommand(this.paths.adminSocket, 'show ssl cert'));
  }

  /**
   * A new certificate: an empty store, filled, committed, then added to the crt-list with its
   * host as SNI filter. A replacement: filled and committed, which HAProxy swaps in atomically
   * (connections in flight keep the old one). The file on disk follows what runs. `force`: set
   * it even when the file on disk already says so (a running worker adopted from before).
   */
  private async installCertificate(name: string, pem: string, force: boolean): Promise<void> {
    const file = certFile(this.paths.certsDir, name);
    const running = await this.runningCertificates();
    if (running === undefined) {
      await this.writeCertificate(name, pem);
      return;
    }
    const loaded = running.has(file);
    if (loaded && !force && (await readOrUndefined(file)) === pem) return;
    if (!loaded) {
      if (name === DEFAULT_CERT) throw new Error('the running HAProxy has no default certificate');
      await this.run([{ command: `new ssl cert ${file}`, ok: /^New empty certificate store/ }]);
    }
    // The payload is a key: never in a log or an error.
    const set = (await sendCommand(this.paths.adminSocket, `set ssl cert ${file}`, 5000, pem)).trim();
    if (!/^Transaction (created|updated) for certificate/.test(set)) {
      await this.abortCertificate(file, !loaded);
      throw new Error(`HAProxy refused the certificate for ${name}: ${set.split('\n')[0]}`);
    }
    // The same certificate again (an adopted worker, at start): a transaction drops its OCSP
    // response, so the one beside it goes along (tls/ocsp.ts refreshes it).
    const ocsp = loaded ? await readFile(`${file}.ocsp`).catch(() => undefined) : undefined;
    if (ocsp !== undefined && (await readOrUndefined(file)) === pem) {
      const kept = (
        await sendCommand(this.paths.adminSocket, `set ssl cert ${file}.ocsp`, 5000, ocspPayload(ocsp))
      ).trim();
      if (!/^Transaction updated for certificate/.test(kept)) {
        await this.abortCertificate(file, false);
        throw new Error(`HAProxy refused the OCSP response kept for ${name}: ${kept.split('\n')[0]}`);
      }
    }
    const commit = (await sendCommand(this.paths.adminSocket, `commit ssl cert ${file}`)).trim();
    if (!/Success!$/.test(commit)) {
      await this.abortCertificate(file, !loaded);
      throw new Error(`HAProxy could not commit the certificate for ${name}: ${commit.replace(/\s+/g, ' ')}`);
    }
    if (!loaded) {
      const answer = (
        await sendCommand(
          this.paths.adminSocket,
          `add ssl crt-list ${this.paths.crtList}`,
          5000,
          `${file} ${name}`,
        )
      ).trim();
      if (!/Success!$/.test(answer)) {
        await this.abortCertificate(file, true);
        throw new Error(
          `HAProxy could not add the certificate for ${name} to its list: ${answer.replace(/\s+/g, ' ')}`,
        );
      }
    }
    await this.writeCertificate(name, pem);
    this.log('info', { certificate: name, new: !loaded }, 'certificate swapped in');
  }

  /** Leaves no transaction open (a later `set` would build on it), nor an empty store. */
  private async abortCertificate(file: string, drop: boolean): Promise<void> {
    await sendCommand(this.paths.adminSocket, `abort ssl cert ${file}`).catch(() => undefined);
    if (drop) await sendCommand(this.paths.adminSocket, `del ssl cert ${file}`).catch(() => undefined);
  }

  private async uninstallCertificate(name: string): Promise<void> {
    const file = certFile(this.paths.certsDir, name);
    const running = await this.runningCertificates();
    if (running?.has(file)) {
      // Out of the list first: a certificate still listed cannot be deleted.
      await this.run([
        { command: `del ssl crt-list ${this.paths.crtList} ${file}`, ok: /deleted in crtlist/ },
        { command: `del ssl cert ${file}`, ok: /deleted!$/ },
      ]);
      this.log('info', { certificate: name }, 'certificate removed');
    }
    await rm(file, { force: true });
    await rm(`${file}.ocsp`, { force: true });
    await this.writeCrtList();
  }

  /** The certificate file (atomic, mode 600), then the crt-list that names it. */
  private async writeCertificate(name: string, pem: string): Promise<void> {
    await mkdir(this.paths.certsDir, { recursive: true, mode: 0o700 });
    const file = certFile(this.paths.certsDir, name);
    // Another certificate's OCSP response is not this one's (HAProxy would ignore it, warning).
    if ((await readOrUndefined(file)) !== pem) await rm(`${file}.ocsp`, { force: true });
    await writeIfChanged(file, pem);
    await this.writeCrtList();
  }

  private async writeCrtList(): Promise<void> {
    const names = certNames(await readdir(this.paths.certsDir));
    await writeIfChanged(this.paths.crtList, renderCrtList(this.paths.certsDir, names));
  }

  /** One runtime command at most (none when the answer is already given); the file follows
   * within WELL_KNOWN_WRITE_MS. */
  private async changeWellKnown(urlPath: string, body: string | undefined): Promise<void> {
    this.wellKnown ??= parseWellKnownMap((await readOrUndefined(this.paths.wellKnownMap)) ?? '');
    const entries = this.wellKnown;
    const current = entries.get(urlPath);
    if (current === body) return;
    if (this.proc !== undefined && isAlive(this.proc)) {
      await this.run(planWellKnown(this.paths.wellKnownMap, urlPath, body, current));
    }
    if (body === undefined) entries.delete(urlPath);
    else entries.set(urlPath, body);
    this.wellKnownUnwritten = true;
    this.wellKnownTimer ??= setTimeout(() => {
      this.wellKnownTimer = undefined;
      this.serialize(() => this.writeWellKnown()).catch((err: unknown) =>
        this.log('warn', { err: String(err) }, 'writing the well-known map failed'),
      );
    }, WELL_KNOWN_WRITE_MS).unref();
  }

  /** The map file made what the running map holds: before anything loads it (a reload, a
   * start), at stop, and in batches after changes. */
  private async writeWellKnown(): Promise<void> {
    clearTimeout(this.wellKnownTimer);
    this.wellKnownTimer = undefined;
    if (!this.wellKnownUnwritten || this.wellKnown === undefined) return;
    this.wellKnownUnwritten = false;
    try {
      await writeIfChanged(this.paths.wellKnownMap, renderWellKnownMap(this.wellKnown));
    } catch (err) {
      this.wellKnownUnwritten = true;
      throw err;
    }
  }

  /** An adopted worker's map is the truth (its file may lag it by a batch, if the control plane
   * before died); changes asked before start() are then made on it. */
  private async adoptWellKnown(): Promise<void> {
    const file = this.paths.wellKnownMap;
    const running = parseShowMap(await sendCommand(this.paths.adminSocket, `show map ${file}`));
    const asked = this.wellKnown;
    this.wellKnown = running;
    if (asked !== undefined) {
      for (const urlPath of new Set([...asked.keys(), ...running.keys()])) {
        await this.run(planWellKnown(file, urlPath, asked.get(urlPath), running.get(urlPath)));
      }
      this.wellKnown = asked;
    }
    this.wellKnownUnwritten = true;
    await this.writeWellKnown();
  }

  private setPool(pool: Pool): void {
    const first = this.pool === undefined;
    for (const [app, backend] of pool.slots) {
      const held = this.heldSince.get(backend);
      if (held?.app === app) continue;
      // On the first apply, a holder found in the host map may have held it for long.
      this.heldSince.set(backend, { app, at: first && held === undefined ? 0 : Date.now() });
    }
    const held = new Set(pool.slots.values());
    for (const backend of this.heldSince.keys()) if (!held.has(backend)) this.heldSince.delete(backend);
    this.pool = pool;
  }

  /** The pool backends: each app keeps the one the host map on disk gives it (the running
   * one: the file is written before every change), new apps take free ones, and the pool
   * grows only when it runs low (pool.ts). */
  private async planPool(routes: RouteSpec[]): Promise<Pool> {
    const apps = groupRoutes(routes, this.opts.apiHost);
    const onDisk = parseMapFile((await readOrUndefined(this.paths.hostMap)) ?? '');
    const config = (await readOrUndefined(this.paths.config)) ?? '';
    const size = [...config.matchAll(/^backend pool_(\d+)$/gm)].reduce(
      (n, m) => Math.max(n, Number(m[1])),
      0,
    );
    return assignPool(apps, slotsFromHostMap(apps, onDisk), size);
  }

  /** Writes pages, the maps and the config, the config only once HAProxy has validated it.
   * Unchanged files are left alone, so an idempotent apply touches nothing. */
  private async writeConfig(routes: RouteSpec[], pool: Pool, config: string): Promise<void> {
    const apps = groupRoutes(routes, this.opts.apiHost);
    const pages = renderPages(this.opts, apps);
    for (const [name, content] of pages) {
      await writeIfChanged(path.join(this.paths.pagesDir, name), content);
    }
    // Before any reload or restart can read them: the maps on disk are what a new worker loads.
    await writeIfChanged(this.paths.gateMap, renderGateMap(gateMapEntries(apps)));
    // Changed by setWellKnown only; there (empty at first) for the config to load.
    if ((await readOrUndefined(this.paths.wellKnownMap)) === undefined) {
      await writeIfChanged(this.paths.wellKnownMap, renderWellKnownMap(new Map()));
    }
    await writeIfChanged(
      this.paths.hostMap,
      renderMap('host, then its backend', hostMapEntries(placeApps(apps, pool))),
    );
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

  /**
   * Makes the running worker match with no reload, in an order that never lets a request
   * reach what it must not: hosts that go are unrouted first; then the gate map (a new app's
   * hosts are gated before they are routed; keys rotated, apps made public or gated: each in
   * effect from the next request); then servers (adds before removes, so a swap never leaves
   * a backend empty); last, new hosts are routed. A pool backend that changes hands lost
   * its old hosts in the first step, and its old servers are in maintenance before the new
   * hosts arrive. Returns true when a removed server still had connections (retried later).
   */
  private async applyRuntimeChanges(routes: RouteSpec[], pool: Pool): Promise<boolean> {
    const apps = placeApps(groupRoutes(routes, this.opts.apiHost), pool);
    const socket = this.paths.adminSocket;
    const hosts = planMapChanges(
      this.paths.hostMap,
      hostMapEntries(apps),
      parseShowMap(await sendCommand(socket, `show map ${this.paths.hostMap}`)),
    );
    const gate = planMapChanges(
      this.paths.gateMap,
      gateMapEntries(apps),
      parseShowMap(await sendCommand(socket, `show map ${this.paths.gateMap}`)),
    );
    await this.run(hosts.filter((c) => c.command.startsWith('del ')));
    // The command names a key: never logged, nor put in an error.
    await this.run(gate, 'a gate map change');
    const retry = await this.applyServerChanges([...apps, ...idleBackends(pool)]);
    await this.run(hosts.filter((c) => !c.command.startsWith('del ')));
    if (hosts.length > 0 || gate.length > 0) {
      this.log('info', { hosts: hosts.length, gates: gate.length }, 'changed the host and gate maps');
    }
    return retry;
  }

  private async run(commands: RuntimeCommand[], secret?: string): Promise<void> {
    for (const { command, ok } of commands) {
      const answer = (await sendCommand(this.paths.adminSocket, command)).trim();
      if (!ok.test(answer)) {
        throw new Error(`HAProxy runtime API refused ${secret ?? `'${command}'`}: ${answer}`);
      }
    }
  }

  /** Returns true when some removed server still had connections and must be retried. */
  private async applyServerChanges(apps: AppRoute[]): Promise<boolean> {
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

/** An OCSP response as HAProxy's runtime API takes it: base64 in lines of 64 (no blank line). */
function ocspPayload(der: Uint8Array): string {
  return (
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? []
  ).join('\n');
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** Atomic (write aside, sync, rename) and skipped when the content is already there: a
 * reload, or a restart after a crash, reads the old file or the new one, never half. */
async function writeIfChanged(file: string, content: string | Buffer): Promise<void> {
  if (typeof content === 'string' && (await readOrUndefined(file)) === content) return;
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}
