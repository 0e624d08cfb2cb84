// The metrics collector (issue 18): listens for HAProxy's request log on a loopback UDP port
// (one datagram per request: `petri1 HOST STATUS Ta BYTES`), counts per app into the current
// minute and into prom-client's counters, and once a minute makes one pass: the finished
// minutes go to the store (one transaction), every awake app is probed through the router,
// its instances' memory and CPU are read from their cgroups (driver.status) and summed per app
// and per process type (against the limits), restarts are
// counted from the store, the router and the control plane's liveness become incidents, and
// alert episodes open and close. Nothing scrapes an app; no query runs per app.
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { readFile, stat, utimes, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { listCertificates } from '../domain/certificates.js';
import { verifiedDomainApps } from '../domain/domains.js';
import {
  addonTypesInUse,
  addRequest,
  addTypeCounters,
  allAppNames,
  appIdsByName,
  appsByState,
  appsOver5xx,
  type Counters,
  closeIncident,
  egressTotals,
  emptyCounters,
  emptyTypeCounters,
  endAlert,
  getMetricState,
  instancesForMetrics,
  LATENCY_BOUNDS_MS,
  type MetricsInstance,
  type MinuteRow,
  mailSentBetween,
  openAlerts,
  openIncident,
  pruneMetrics,
  recordIncident,
  recordMinutes,
  setMetricState,
  startAlert,
  type TypeCounters,
  type TypeMinuteRow,
  typeRowName,
  typesOfHour,
  unixHour,
  unixMinute,
  wakesSince,
} from '../domain/metrics.js';
import type { LineLogger } from '../lib/log-dedupe.js';
import { Loop } from '../lib/loop.js';
import type { RuntimeDriver } from '../runtime/driver.js';
import type { Store } from '../store/db.js';

export interface CollectorOptions {
  db: Store;
  driver: Pick<RuntimeDriver, 'status'>;
  /** The router's HTTP address and port: probes go through it, as visitors' requests do. */
  routerAddress: string;
  routerPort: number;
  /** Apps are NAME.<domain>; the API host's requests count as the control plane's. */
  domain: string;
  apiHost: string;
  /** Time between passes (60 s; tests use less). */
  passMs: number;
  /** A wake that takes longer than this failed (config wakeTimeoutMs). */
  wakeTimeoutMs: number;
  /** The add-on servers to check each pass (a TCP connect): down is an incident. Those of
   * engines no ready add-on uses are left out (a managed one starts with its first add-on). */
  addonServers?: () => { name: string; host: string; port: number }[];
  logger: LineLogger & { warn(o: object, msg: string): void };
  now?: () => number;
  /** A file whose modification time the heartbeat sets every HEARTBEAT_MS (one utimes call;
   * the store gets it each pass and at a stop). Without it, the store every HEARTBEAT_MS. */
  heartbeatFile?: string;
  /** Tests: HEARTBEAT_MS otherwise. */
  heartbeatMs?: number;
}

/** A 5xx share above this for ALERT_MINUTES is an alert episode. */
const ALERT_5XX_SHARE = 0.2;
const ALERT_MINUTES = 10;
/** This many restarts within ALERT_MINUTES is a crash loop. */
const CRASH_LOOP_RESTARTS = 3;
/** This many kills by the memory limit within a day. */
const MEMORY_KILLS = 3;
const PROBE_TIMEOUT_MS = 5000;
/** Managed add-on servers start in the background: not checked in the first minute. */
const ADDON_GRACE_MS = 60_000;
const PROBE_CONCURRENCY = 8;
/** The control plane's last sign of life, every HEARTBEAT_MS (a file's modification time,
 * or one small upsert): a start after a crash records the time since as an incident,
 * accurate to this interval. */
const HEARTBEAT_KEY = 'heartbeat';
const HEARTBEAT_MS = 10_000;
/** How often Prometheus label values of destroyed apps are dropped (memory stays bounded). */
const FORGET_MS = 3_600_000;
const PORT_KEY = 'request_log_port';
/** The tag of the router's log lines: kept with the port, so an adopted router needs no reload. */
const TAG_KEY = 'request_log_tag';
/** Names of apps not yet known counted per minute at most (a new app's first requests, before
 * the next pass learns its name): beyond, made-up hosts are dropped. */
const UNKNOWN_PER_MINUTE = 100;
/** Lines held while the names are read again. */
const WAITING_MAX = 10_000;
const BOOT_KEY = 'boot_id';

/** Where the router sends its request log, and the tag its lines carry (the router's
 * RequestLog, src/router/config.ts). */
export interface RequestLogTarget {
  address: string;
  port: number;
  tag: string;
}

export class MetricsCollector {
  /** Told of each alert episode as it begins (the mail relay mails the owner), once per
   * episode. Set after construction: the relay starts after the collector. */
  onAlert?: (appId: number, message: string) => Promise<void>;

  readonly registry = new Registry();
  private socket: dgram.Socket | undefined;
  /** Unix minute → app name → what was counted: the minutes not yet in the store. */
  private readonly pending = new Map<number, Map<string, Counters>>();
  /** Unix minute → app name → process type row → its memory and CPU: the same, per type. */
  private readonly pendingTypes = new Map<number, Map<string, Map<string, TypeCounters>>>();
  /** App name → the process type rows it has in the hour namedHour (typeRowName's bound). */
  private namedTypes = new Map<string, Set<string>>();
  private namedHour = -1;
  /** `app type` of the type series set since the last forget: the others are dropped then. */
  private typesSeen = new Set<string>();
  private readonly loop: Loop;
  private readonly now: () => number;
  private readonly suffix: string;
  /** Instance id → CPU seconds at the last pass and when (to turn totals into per-minute use,
   * and the time measured into the CPU time its limit allowed). */
  private lastCpu = new Map<string, { seconds: number; at: number }>();
  private lastRestarts = new Map<string, number>();
  /** Restarts and memory kills per app over the alert windows: app id → [minute, n][]. */
  private readonly restartLog = new Map<number, [number, number][]>();
  private readonly oomLog = new Map<number, [number, number][]>();
  private lastPrune = 0;
  private lastForget = 0;
  /** The apps that exist (refreshed each pass): only they get Prometheus series. */
  private known = new Set<string>();
  /** Verified custom domains, host -> app (issue 20): read at each pass. */
  private customHosts = new Map<string, string>();
  /** What the router's lines must carry; set by listen(). */
  private tag: string | undefined;
  /** Lines of names not known when they came, until the names are read again. */
  private waiting: string[] = [];
  private refreshing = false;
  private lastRefresh = 0;
  /** Unknown names counted in the current minute, and that minute. */
  private unknown = { minute: 0, names: new Set<string>() };
  /** App name → the wake (its woke_at) already counted: each wake is counted once. */
  private countedWakes = new Map<string, string>();
  private heartbeat: NodeJS.Timeout | undefined;

  private readonly appRequests: Counter<'app' | 'class'>;
  private readonly appLatency: Histogram<'app'>;
  private readonly appMemory: Gauge<'app'>;
  private readonly appCpu: Counter<'app'>;
  private readonly typeMemory: Gauge<'app' | 'type'>;
  private readonly typeCpu: Counter<'app' | 'type'>;
  private readonly appRestarts: Counter<'app'>;
  private readonly appUp: Gauge<'app'>;
  private readonly appWakes: Counter<'app'>;
  private readonly appWakeSeconds: Counter<'app'>;
  private readonly appMail: Counter<'app'>;
  private readonly apiRequests: Counter<'route' | 'method' | 'status'>;
  private readonly apiLatency: Histogram<'route'>;
  private readonly apps: Gauge<'state'>;
  private readonly passSeconds: Histogram<never>;
  private readonly routerUp: Gauge<never>;
  private readonly appEgress: Gauge<'app' | 'allowed'>;
  private readonly addonUp: Gauge<'addon'>;
  private readonly startedAt: number;
  private mailCountedTo: string | undefined;

  constructor(private readonly opts: CollectorOptions) {
    this.now = opts.now ?? Date.now;
    this.suffix = `.${opts.domain}`;
    const r = this.registry;
    // The event loop's lag is sampled once a second: prom-client's default (every 10 ms) woke
    // the control plane 100 times a second at rest, most of its idle CPU (issue 16).
    collectDefaultMetrics({ register: r, prefix: 'petri_', eventLoopMonitoringPrecision: 1000 });
    const seconds = LATENCY_BOUNDS_MS.map((ms) => ms / 1000);
    this.appRequests = new Counter({
      name: 'petri_app_requests_total',
      help: 'Requests to the app through the router, by status class',
      labelNames: ['app', 'class'],
      registers: [r],
    });
    this.appLatency = new Histogram({
      name: 'petri_app_request_duration_seconds',
      help: "Total time of the app's requests as the router saw it (HAProxy %Ta)",
      labelNames: ['app'],
      buckets: seconds,
      registers: [r],
    });
    this.appMemory = new Gauge({
      name: 'petri_app_memory_bytes',
      help: "Memory of the app's running processes (cgroup memory.current), at the last pass",
      labelNames: ['app'],
      registers: [r],
    });
    this.appCpu = new Counter({
      name: 'petri_app_cpu_seconds_total',
      help: "CPU time of the app's processes (cgroup cpu usage) since this control plane started",
      labelNames: ['app'],
      registers: [r],
    });
    // Per process type: new names beside the app's, which stay as they were (a `type` label on
    // those would split every existing query's series). At most 11 types per app (typeRowName).
    this.typeMemory = new Gauge({
      name: 'petri_app_process_memory_bytes',
      help: "Memory of the app's running processes of one type together (cgroup memory.current), at the last pass",
      labelNames: ['app', 'type'],
      registers: [r],
    });
    this.typeCpu = new Counter({
      name: 'petri_app_process_cpu_seconds_total',
      help: "CPU time of the app's processes of one type since this control plane started",
      labelNames: ['app', 'type'],
      registers: [r],
    });
    this.appRestarts = new Counter({
      name: 'petri_app_restarts_total',
      help: "Restarts of the app's instances (crashes) seen since this control plane started",
      labelNames: ['app'],
      registers: [r],
    });
    this.appUp = new Gauge({
      name: 'petri_app_probe_up',
      help: "1 when the last probe of the app's health path through the router answered below 500",
      labelNames: ['app'],
      registers: [r],
    });
    this.appWakes = new Counter({
      name: 'petri_app_wakes_total',
      help: 'Wakes of a sleeping app',
      labelNames: ['app'],
      registers: [r],
    });
    this.appWakeSeconds = new Counter({
      name: 'petri_app_wake_seconds_total',
      help: 'Time spent waking the app',
      labelNames: ['app'],
      registers: [r],
    });
    this.appMail = new Counter({
      name: 'petri_app_mail_sent_total',
      help: 'Messages the app sent through the mail relay',
      labelNames: ['app'],
      registers: [r],
    });
    this.apiRequests = new Counter({
      name: 'petri_api_requests_total',
      help: 'Requests to the control plane API, by route',
      labelNames: ['route', 'method', 'status'],
      registers: [r],
    });
    this.apiLatency = new Histogram({
      name: 'petri_api_request_duration_seconds',
      help: 'Time the control plane API took to answer, by route',
      labelNames: ['route'],
      buckets: seconds,
      registers: [r],
    });
    this.apps = new Gauge({
      name: 'petri_apps',
      help: 'Apps by state (awake, sleeping)',
      labelNames: ['state'],
      registers: [r],
    });
    this.passSeconds = new Histogram({
      name: 'petri_metrics_pass_seconds',
      help: "Duration of the metrics collector's pass (store, probes, cgroups)",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers: [r],
    });
    this.routerUp = new Gauge({
      name: 'petri_router_up',
      help: '1 when the router answered at the last pass',
      registers: [r],
    });
    this.appEgress = new Gauge({
      name: 'petri_app_egress_attempts',
      help: "The app's attempts through the egress proxy, allowed or refused, as recorded in the store",
      labelNames: ['app', 'allowed'],
      registers: [r],
    });
    this.addonUp = new Gauge({
      name: 'petri_addon_server_up',
      help: '1 when the add-on server answered at the last pass',
      labelNames: ['addon'],
      registers: [r],
    });
    // Read at each scrape: one small query, and the figure is never a pass old.
    const db = opts.db;
    new Gauge({
      name: 'petri_certificate_expiry_days',
      help: "Days until the router's certificate for the host expires (negative once it has)",
      labelNames: ['host'],
      registers: [r],
      async collect() {
        this.reset();
        const now = Date.now();
        for (const c of await listCertificates(db))
          if (c.not_after !== null) this.set({ host: c.host }, (Date.parse(c.not_after) - now) / 86_400_000);
      },
    });
    this.startedAt = this.now();
    this.loop = new Loop({
      what: 'collecting metrics',
      pass: () => this.pass(),
      intervalMs: () => opts.passMs,
      logger: opts.logger,
    });
  }

  /** Where HAProxy sends its request log; set once listening. */
  requestLog: RequestLogTarget | undefined;

  /** Binds the UDP port (the one of the last start when it is free, so an adopted router
   * needs no reload for it) and records the time the control plane was down, if it was. */
  async listen(): Promise<RequestLogTarget> {
    const { db } = this.opts;
    const last = Number((await getMetricState(db, PORT_KEY)) ?? 0);
    let socket: dgram.Socket;
    try {
      socket = await bindUdp(last);
    } catch {
      socket = await bindUdp(0);
    }
    this.socket = socket;
    socket.on('message', (msg) => this.ingest(msg.toString('latin1')));
    const port = socket.address().port;
    if (port !== last) await setMetricState(db, PORT_KEY, String(port));
    const heartbeat = latestIso(await getMetricState(db, HEARTBEAT_KEY), await this.fileHeartbeat());
    const nowIso = new Date(this.now()).toISOString();
    if (heartbeat !== undefined) await recordIncident(db, 'control-plane', 'restart', heartbeat, nowIso);
    // A new boot id: the host rebooted meanwhile (the router and every app were down too).
    const bootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8').then(
      (text) => text.trim(),
      () => undefined,
    );
    const lastBoot = await getMetricState(db, BOOT_KEY);
    if (bootId !== undefined && bootId !== lastBoot) {
      if (lastBoot !== undefined && heartbeat !== undefined)
        await recordIncident(db, 'host-reboot', 'host rebooted', heartbeat, nowIso);
      await setMetricState(db, BOOT_KEY, bootId);
    }
    if ((await getMetricState(db, 'since')) === undefined) await setMetricState(db, 'since', nowIso);
    await setMetricState(db, HEARTBEAT_KEY, nowIso);
    // Lines that lack it are not the router's: any local process can send UDP to loopback.
    let tag = await getMetricState(db, TAG_KEY);
    if (tag === undefined || !/^[0-9a-f]{32}$/.test(tag)) {
      tag = randomBytes(16).toString('hex');
      await setMetricState(db, TAG_KEY, tag);
    }
    this.tag = tag;
    this.known = new Set(await allAppNames(db));
    this.requestLog = { address: '127.0.0.1', port, tag };
    return this.requestLog;
  }

  start(): void {
    this.loop.start();
    this.heartbeat = setInterval(() => {
      this.beat().catch((err: unknown) =>
        this.opts.logger.warn({ err: String(err) }, 'writing the heartbeat failed'),
      );
    }, this.opts.heartbeatMs ?? HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  private async beat(): Promise<void> {
    const file = this.opts.heartbeatFile;
    const at = new Date(this.now());
    if (file === undefined) return setMetricState(this.opts.db, HEARTBEAT_KEY, at.toISOString());
    await utimes(file, at, at).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await writeFile(file, '', { mode: 0o600 });
      await utimes(file, at, at);
    });
  }

  /** The heartbeat file's time, if there is one. */
  private async fileHeartbeat(): Promise<string | undefined> {
    const file = this.opts.heartbeatFile;
    if (file === undefined) return undefined;
    return stat(file).then(
      (s) => s.mtime.toISOString(),
      () => undefined,
    );
  }

  /** Flushes what was counted and leaves the heartbeat at the time of the stop, so the
   * restart's incident lasts as long as the control plane was away. */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.loop.stop();
    this.socket?.close();
    this.socket = undefined;
    await this.flush(Number.POSITIVE_INFINITY).catch(() => undefined);
    await setMetricState(this.opts.db, HEARTBEAT_KEY, new Date(this.now()).toISOString());
  }

  /** One datagram of the router's log. The syslog header before `petri1` is skipped. */
  ingest(text: string, settled = false): void {
    if (this.tag === undefined) return;
    const prefix = `petri1 ${this.tag} `;
    const at = text.indexOf(prefix);
    if (at === -1) return;
    const fields = text
      .slice(at + prefix.length)
      .trim()
      .split(' ');
    if (fields.length !== 4) return;
    const [host, status, ta, bytes] = fields as [string, string, string, string];
    const code = Number(status);
    if (!Number.isInteger(code)) return;
    const app = this.appOfHost(host);
    if (app === undefined) return;
    if (!this.known.has(app) && !settled) {
      // Perhaps an app made since the names were read: they are read again (at most once a
      // second), and the line is counted then.
      if (this.waiting.length < WAITING_MAX) this.waiting.push(text);
      this.refreshKnown();
      return;
    }
    if (!this.known.has(app)) {
      // A made-up host (or an app destroyed meanwhile): its store rows are dropped at the
      // flush, which resolves names; here it must not pile up counters: a few a minute.
      const minute = unixMinute(this.now());
      if (this.unknown.minute !== minute) this.unknown = { minute, names: new Set() };
      if (!this.unknown.names.has(app) && this.unknown.names.size >= UNKNOWN_PER_MINUTE) return;
      this.unknown.names.add(app);
      addRequest(this.bucket(app), code, Number(ta), Number(bytes));
      return;
    }
    const ms = Number(ta);
    const size = Number(bytes);
    addRequest(this.bucket(app), code, Number.isFinite(ms) ? ms : -1, Number.isFinite(size) ? size : 0);
    const cls = code >= 100 && code < 600 ? `${Math.floor(code / 100)}xx` : 'other';
    this.appRequests.inc({ app, class: cls });
    if (Number.isFinite(ms) && ms >= 0) this.appLatency.observe({ app }, ms / 1000);
  }

  /** Reads the apps' names again (at most once a second) and counts the lines that waited. */
  private refreshKnown(): void {
    if (this.refreshing) return;
    this.refreshing = true;
    const wait = Math.max(0, this.lastRefresh + 1000 - Date.now());
    setTimeout(() => {
      allAppNames(this.opts.db)
        .then((names) => {
          this.known = new Set(names);
        })
        .catch((err: unknown) => this.opts.logger.warn({ err: String(err) }, 'reading app names failed'))
        .finally(() => {
          this.lastRefresh = Date.now();
          this.refreshing = false;
          const lines = this.waiting;
          this.waiting = [];
          for (const line of lines) this.ingest(line, true);
        });
    }, wait).unref();
  }

  /** An app's counters not yet in the store (the current minute, and any not flushed). */
  live(app: string): { minute: number; counters: Counters }[] {
    const out: { minute: number; counters: Counters }[] = [];
    for (const [minute, apps] of this.pending) {
      const c = apps.get(app);
      if (c) out.push({ minute, counters: { ...c } });
    }
    return out;
  }

  /** An app's memory and CPU per process type not yet in the store, by unix minute. */
  liveTypes(app: string): { minute: number; type: string; counters: TypeCounters }[] {
    const out: { minute: number; type: string; counters: TypeCounters }[] = [];
    for (const [minute, apps] of this.pendingTypes)
      for (const [type, c] of apps.get(app) ?? []) out.push({ minute, type, counters: { ...c } });
    return out;
  }

  /** A finished API request (the API's onResponse hook). */
  observeApi(route: string, method: string, status: number, seconds: number): void {
    this.apiRequests.inc({ route, method, status: String(status) });
    this.apiLatency.observe({ route }, seconds);
  }

  /** A wake of a sleeping app and how long it took (the waker's hook). */
  countWake(app: string, ms: number): void {
    const c = this.bucket(app);
    c.wakes++;
    c.wake_ms += Math.round(ms);
    this.appWakes.inc({ app });
    this.appWakeSeconds.inc({ app }, ms / 1000);
  }

  /** Messages an app sent through the mail relay (the relay's hook). */
  countMailSent(app: string, n = 1): void {
    this.appMail.inc({ app }, n);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** One pass now (tests, the bench). */
  runNow(): Promise<void> {
    return this.loop.runNow();
  }

  private appOfHost(host: string): string | undefined {
    const custom = this.customHosts.get(host);
    if (custom !== undefined) return custom;
    if (host === this.opts.apiHost || !host.endsWith(this.suffix)) return undefined;
    const name = host.slice(0, -this.suffix.length);
    return /^[a-z0-9][a-z0-9-]{0,62}$/.test(name) ? name : undefined;
  }

  private bucket(app: string, minute = unixMinute(this.now())): Counters {
    let apps = this.pending.get(minute);
    if (!apps) {
      apps = new Map();
      this.pending.set(minute, apps);
    }
    let c = apps.get(app);
    if (!c) {
      c = emptyCounters();
      apps.set(app, c);
    }
    return c;
  }

  private async pass(): Promise<void> {
    const started = performance.now();
    const now = this.now();
    const nowIso = new Date(now).toISOString();
    const { db } = this.opts;
    await setMetricState(db, HEARTBEAT_KEY, nowIso);
    this.known = new Set(await allAppNames(db));
    this.customHosts = await verifiedDomainApps(db);
    await this.checkRouter(nowIso);
    await this.checkAddonServers(now, nowIso);
    const instances = await instancesForMetrics(db);
    const up = instances.filter((i) => i.state === 'up');
    // Never an app put to sleep: its instances may be up a moment longer, but the router may
    // already send it to the waker, and the probe would wake it (as after a restart of the
    // control plane that found it asleep with its instance not yet stopped).
    const awake = up.filter((i) => !i.sleeping);
    await Promise.all([this.probe(awake), this.readResources(up)]);
    this.countRestarts(instances);
    await this.countWakes(now);
    await this.countMail(nowIso);
    await this.flush(unixMinute(now));
    await this.alert(now, nowIso);
    const states = await appsByState(db);
    this.apps.set({ state: 'awake' }, states.awake);
    this.apps.set({ state: 'sleeping' }, states.sleeping);
    for (const e of await egressTotals(db))
      this.appEgress.set({ app: e.app, allowed: e.allowed ? 'true' : 'false' }, e.count);
    if (now - this.lastForget > FORGET_MS) {
      await this.forgetGoneApps();
      this.lastForget = now;
    }
    if (now - this.lastPrune > 3_600_000) {
      await pruneMetrics(db, now);
      this.lastPrune = now;
    }
    this.passSeconds.observe((performance.now() - started) / 1000);
  }

  /** Drops the series of apps that no longer exist, so a platform where apps come and go
   * keeps as many series as it has apps. */
  private async forgetGoneApps(): Promise<void> {
    const live = new Set(await allAppNames(this.opts.db));
    const perApp = [
      this.appRequests,
      this.appLatency,
      this.appMemory,
      this.appCpu,
      this.appRestarts,
      this.appUp,
      this.appWakes,
      this.appWakeSeconds,
      this.appMail,
      this.appEgress,
      this.typeCpu,
    ] as const;
    for (const metric of perApp) {
      const values = (await metric.get()).values;
      for (const v of values) {
        const app = v.labels.app;
        if (typeof app === 'string' && !live.has(app)) (metric as Counter<string>).remove(v.labels as never);
      }
    }
    // A process type no longer run (a new Procfile): its CPU counter goes too.
    for (const v of (await this.typeCpu.get()).values) {
      if (!this.typesSeen.has(`${v.labels.app} ${v.labels.type}`)) this.typeCpu.remove(v.labels as never);
    }
    this.typesSeen = new Set();
  }

  /** Writes every pending minute before `beforeMinute` to the store (one transaction). */
  async flush(beforeMinute: number): Promise<void> {
    const minutes = [...new Set([...this.pending.keys(), ...this.pendingTypes.keys()])].filter(
      (m) => m < beforeMinute,
    );
    if (minutes.length === 0) return;
    const names = new Set<string>();
    for (const m of minutes) for (const app of this.pending.get(m)?.keys() ?? []) names.add(app);
    for (const m of minutes) for (const app of this.pendingTypes.get(m)?.keys() ?? []) names.add(app);
    const ids = await appIdsByName(this.opts.db, [...names]);
    const rows: MinuteRow[] = [];
    const typeRows: TypeMinuteRow[] = [];
    for (const minute of minutes) {
      for (const [app, counters] of this.pending.get(minute) ?? []) {
        const appId = ids.get(app);
        if (appId !== undefined) rows.push({ appId, minute, counters });
      }
      for (const [app, types] of this.pendingTypes.get(minute) ?? []) {
        const appId = ids.get(app);
        if (appId !== undefined)
          for (const [type, counters] of types) typeRows.push({ appId, minute, type, counters });
      }
    }
    await recordMinutes(this.opts.db, rows, typeRows);
    for (const m of minutes) {
      this.pending.delete(m);
      this.pendingTypes.delete(m);
    }
  }

  /** The router answers a host nobody has with its own 404: any answer means it serves. */
  private async checkRouter(nowIso: string): Promise<void> {
    const status = await httpStatus(
      this.opts.routerAddress,
      this.opts.routerPort,
      'petri-router-check.invalid',
      '/',
    );
    const up = status !== undefined;
    this.routerUp.set(up ? 1 : 0);
    if (up) await closeIncident(this.opts.db, 'router', 'not answering', nowIso);
    else await openIncident(this.opts.db, 'router', 'not answering', nowIso);
  }

  /** Each add-on server answers a TCP connect, or it is down: an incident until it does.
   * Not in the first minute after a start, while managed servers are still starting. */
  private async checkAddonServers(now: number, nowIso: string): Promise<void> {
    if (now - this.startedAt < ADDON_GRACE_MS) return;
    const servers = this.opts.addonServers?.() ?? [];
    if (servers.length === 0) return;
    const used = await addonTypesInUse(this.opts.db);
    for (const server of servers.filter((s) => used.has(s.name))) {
      const up = await tcpAnswers(server.host, server.port);
      this.addonUp.set({ addon: server.name }, up ? 1 : 0);
      if (up) await closeIncident(this.opts.db, 'addon-server', server.name, nowIso);
      else await openIncident(this.opts.db, 'addon-server', server.name, nowIso);
    }
  }

  /** One request per awake app to its web process's health path (or /), through the router,
   * a few at a time. Below 500 is up. */
  private async probe(instances: readonly { app: string; healthPath: string | null }[]): Promise<void> {
    const paths = new Map<string, string>();
    for (const i of instances) if (!paths.has(i.app) || i.healthPath) paths.set(i.app, i.healthPath ?? '/');
    const queue = [...paths];
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        const [app, path] = next;
        const status = await httpStatus(
          this.opts.routerAddress,
          this.opts.routerPort,
          `${app}${this.suffix}`,
          path,
        );
        const up = status !== undefined && status < 500;
        const c = this.bucket(app);
        if (up) c.probes_ok++;
        else c.probes_failed++;
        this.appUp.set({ app }, up ? 1 : 0);
      }
    };
    await Promise.all(Array.from({ length: PROBE_CONCURRENCY }, worker));
  }

  /** Wakes since the last passes, from the store (apps.woke_at, the first instance ready
   * after it): counted once each, with their duration. One not ready within the wake
   * timeout is a failed wake, which counts against the app's availability as a failed probe. */
  private async countWakes(now: number): Promise<void> {
    const windowMs = Math.max(10 * 60_000, 3 * this.opts.wakeTimeoutMs);
    const next = new Map<string, string>();
    for (const w of await wakesSince(this.opts.db, new Date(now - windowMs).toISOString())) {
      const done = this.countedWakes.get(w.app) === w.wokeAt;
      next.set(w.app, done ? w.wokeAt : '');
      if (done) continue;
      const took = w.readyAt === null ? undefined : Date.parse(w.readyAt) - Date.parse(w.wokeAt);
      if (took !== undefined) {
        this.countWake(w.app, took);
        if (took > this.opts.wakeTimeoutMs) this.bucket(w.app).probes_failed++;
        next.set(w.app, w.wokeAt);
      } else if (now - Date.parse(w.wokeAt) > this.opts.wakeTimeoutMs && w.awake) {
        const c = this.bucket(w.app);
        c.wakes++;
        c.probes_failed++;
        this.appWakes.inc({ app: w.app });
        next.set(w.app, w.wokeAt);
      }
    }
    for (const [app, wokeAt] of next) if (wokeAt === '') next.delete(app);
    this.countedWakes = next;
  }

  /** Messages handed to the mail relay since the last pass, from the store (one query). */
  private async countMail(nowIso: string): Promise<void> {
    const from = this.mailCountedTo ?? new Date(this.startedAt).toISOString();
    for (const { app, n } of await mailSentBetween(this.opts.db, from, nowIso)) this.countMailSent(app, n);
    this.mailCountedTo = nowIso;
  }

  /** Crashes from the store: an instance's restart count went up since the last pass (or
   * back to 1, the supervisor's count after a stable run). Its exit reason tells a kill by
   * the memory limit. */
  private countRestarts(instances: readonly MetricsInstance[]): void {
    const next = new Map<string, number>();
    const minute = unixMinute(this.now());
    for (const i of instances) {
      next.set(i.instanceId, i.restarts);
      const before = this.lastRestarts.get(i.instanceId);
      if (before === undefined || i.restarts === before || i.restarts === 0) continue;
      const n = i.restarts > before ? i.restarts - before : i.restarts;
      this.bucket(i.app).restarts += n;
      this.appRestarts.inc({ app: i.app }, n);
      pushWindow(this.restartLog, i.appId, minute, n);
      if (i.exitReason?.startsWith('killed: memory limit')) {
        this.bucket(i.app).oom_kills += n;
        pushWindow(this.oomLog, i.appId, minute, n);
      }
    }
    // Only instances that exist now are remembered: the map stays as large as what runs.
    this.lastRestarts = next;
  }

  /** Memory and CPU of every running instance from its cgroup: per app (all its processes
   * together) and per process type, each type against the limits (the most memory of one
   * instance beside the per-instance limit; CPU time beside the time the CPU limit allowed). */
  private async readResources(instances: readonly MetricsInstance[]): Promise<void> {
    const now = this.now();
    const hour = unixHour(now);
    if (hour !== this.namedHour) {
      // A new hour (or a start within one): the names its rows already have, from the store.
      this.namedTypes = await typesOfHour(this.opts.db, hour);
      this.namedHour = hour;
    }
    const memory = new Map<string, number>();
    const cpu = new Map<string, number>();
    const nextCpu = new Map<string, { seconds: number; at: number }>();
    /** `app type` → this pass's figures of the type, its memory together and CPU seconds. */
    const types = new Map<
      string,
      { app: string; type: string; c: TypeCounters; bytes: number; cpu: number }
    >();
    for (const i of instances) {
      const status = await this.opts.driver.status(i.instanceId).catch(() => undefined);
      if (status === undefined) continue;
      const type = this.typeRow(i.app, i.type);
      const key = `${i.app} ${type}`;
      let t = types.get(key);
      if (!t) {
        t = { app: i.app, type, c: emptyTypeCounters(), bytes: 0, cpu: 0 };
        types.set(key, t);
      }
      t.c.instances++;
      t.c.memory_limit_mib = Math.max(t.c.memory_limit_mib, i.memoryMiB);
      if (status.memoryBytes !== undefined) {
        memory.set(i.app, (memory.get(i.app) ?? 0) + status.memoryBytes);
        t.c.memory_max = Math.max(t.c.memory_max, status.memoryBytes);
        t.bytes += status.memoryBytes;
      }
      if (status.cpuSeconds !== undefined) {
        nextCpu.set(i.instanceId, { seconds: status.cpuSeconds, at: now });
        const before = this.lastCpu.get(i.instanceId);
        if (before !== undefined && status.cpuSeconds >= before.seconds && now > before.at) {
          const used = status.cpuSeconds - before.seconds;
          cpu.set(i.app, (cpu.get(i.app) ?? 0) + used);
          t.cpu += used;
          t.c.cpu_limit_ms += i.cpus * (now - before.at);
        }
      }
    }
    this.lastCpu = nextCpu;
    for (const [app, bytes] of memory) {
      const c = this.bucket(app);
      c.memory_max = Math.max(c.memory_max, bytes);
      this.appMemory.set({ app }, bytes);
    }
    for (const [app, seconds] of cpu) {
      this.bucket(app).cpu_ms += Math.round(seconds * 1000);
      this.appCpu.inc({ app }, seconds);
    }
    // Only what runs now has a memory series: a type scaled to 0 or an app asleep has none.
    this.typeMemory.reset();
    for (const t of types.values()) {
      t.c.cpu_ms = Math.round(t.cpu * 1000);
      t.c.cpu_limit_ms = Math.round(t.c.cpu_limit_ms);
      addTypeCounters(this.typeBucket(t.app, t.type), t.c);
      this.typeMemory.set({ app: t.app, type: t.type }, t.bytes);
      if (t.cpu > 0) this.typeCpu.inc({ app: t.app, type: t.type }, t.cpu);
      this.typesSeen.add(`${t.app} ${t.type}`);
    }
  }

  /** The row an app's process type is counted in this hour (typeRowName): at most
   * MAX_NAMED_TYPES names per app and hour, so per minute too, and OTHER_TYPE. */
  private typeRow(app: string, type: string): string {
    let named = this.namedTypes.get(app);
    if (!named) {
      named = new Set();
      this.namedTypes.set(app, named);
    }
    return typeRowName(named, type);
  }

  private typeBucket(app: string, type: string, minute = unixMinute(this.now())): TypeCounters {
    let apps = this.pendingTypes.get(minute);
    if (!apps) {
      apps = new Map();
      this.pendingTypes.set(minute, apps);
    }
    let types = apps.get(app);
    if (!types) {
      types = new Map();
      apps.set(app, types);
    }
    let c = types.get(type);
    if (!c) {
      c = emptyTypeCounters();
      types.set(type, c);
    }
    return c;
  }

  /** Opens an episode (audit event app.alert, shown by apps info) when a condition starts
   * and ends it when the condition is gone: an owner is told once per episode. */
  private async alert(now: number, nowIso: string): Promise<void> {
    const { db } = this.opts;
    const minute = unixMinute(now);
    const from = minute - ALERT_MINUTES;
    const conditions = new Map<number, Map<string, string>>();
    const set = (appId: number, kind: string, message: string) => {
      const m = conditions.get(appId) ?? new Map<string, string>();
      m.set(kind, message);
      conditions.set(appId, m);
    };
    for (const appId of await appsOver5xx(db, from, ALERT_5XX_SHARE, 20, ALERT_MINUTES)) {
      set(
        appId,
        '5xx',
        `more than ${ALERT_5XX_SHARE * 100}% of its requests answered 5xx for ${ALERT_MINUTES} minutes: look at 'petri logs' and 'petri metrics'`,
      );
    }
    for (const [appId, n] of windowTotals(this.restartLog, from)) {
      if (n >= CRASH_LOOP_RESTARTS)
        set(
          appId,
          'crash-loop',
          `its processes restarted ${n} times in ${ALERT_MINUTES} minutes: look at 'petri logs' and 'petri ps'`,
        );
    }
    for (const [appId, n] of windowTotals(this.oomLog, minute - 24 * 60)) {
      if (n >= MEMORY_KILLS)
        set(
          appId,
          'memory',
          `the memory limit killed its processes ${n} times today: raise it ('petri ps resize') or use less`,
        );
    }
    const open = await openAlerts(db);
    for (const [appId, kinds] of conditions) {
      for (const [kind, message] of kinds) {
        if (open.get(appId)?.has(kind)) continue;
        await startAlert(db, appId, kind, message, nowIso);
        await this.onAlert?.(appId, message).catch((err: unknown) =>
          this.opts.logger.warn({ err, appId, kind }, 'the alert could not be mailed to the owner'),
        );
      }
    }
    for (const [appId, kinds] of open) {
      for (const kind of kinds)
        if (!conditions.get(appId)?.has(kind)) await endAlert(db, appId, kind, nowIso);
    }
  }
}

function pushWindow(log: Map<number, [number, number][]>, appId: number, minute: number, n: number): void {
  const list = log.get(appId) ?? [];
  list.push([minute, n]);
  log.set(appId, list);
}

/** Sums per app from `fromMinute` on, dropping older entries (so the maps stay small). */
function windowTotals(log: Map<number, [number, number][]>, fromMinute: number): Map<number, number> {
  const totals = new Map<number, number>();
  for (const [appId, list] of log) {
    const kept = list.filter(([m]) => m >= fromMinute);
    if (kept.length === 0) log.delete(appId);
    else {
      log.set(appId, kept);
      totals.set(
        appId,
        kept.reduce((s, [, n]) => s + n, 0),
      );
    }
  }
  return totals;
}

function tcpAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', (err) => {
      socket.close();
      reject(err);
    });
    socket.bind(port, '127.0.0.1', () => {
      socket.removeAllListeners('error');
      // A bad datagram or a full buffer loses a count, never the control plane.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

/** The status of GET path on host through the router; undefined when nothing answered. */
function httpStatus(address: string, port: number, host: string, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: address,
        port,
        path,
        method: 'GET',
        headers: { host, 'user-agent': 'petri-probe' },
        agent: false,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.setTimeout(PROBE_TIMEOUT_MS, () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

/** The later of two ISO times (UTC, so their text sorts as their time). */
function latestIso(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a > b ? a : b;
}
