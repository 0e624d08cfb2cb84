// The add-on engines this Petri offers, from its configuration: for each, the provider
// that provisions on its server, where the control plane reaches that server, and where
// apps reach it. Managed servers are started here and restarted when they die; they run
// on after the control plane stops, like the router, and the next start adopts them.
import { lookup } from 'node:dns/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { ADDON_ENGINES, type AddonsConfig, type EngineConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import { isListening } from '../lib/ports.js';
import { until } from '../lib/until.js';
import { ManagedMysql } from './mysql/managed.js';
import { ManagedPostgres } from './postgres/managed.js';
import type { AddonProvider, AddonType, Endpoint, ManagedServer, ManagedServerOptions } from './provider.js';
import { ManagedRedis } from './redis/managed.js';
import type { RedisScriptWatchdog, WatchdogEvent } from './redis/watchdog.js';

/** Where apps find each engine on their gateway: the engines' usual ports. */
export const GATEWAY_PORTS: Record<AddonType, number> = { postgres: 5432, mysql: 3306, redis: 6379 };

// Each engine's client library (pg, mysql2, ioredis: some 15-20 MiB each) is loaded with its
// first use, not at start: a Petri with no add-on of an engine does not carry its client.
const PROVIDERS: Record<AddonType, (adminUrl: string) => Promise<AddonProvider>> = {
  postgres: async (url) => (await import('./postgres/provider.js')).createPostgresProvider(url),
  mysql: async (url) => (await import('./mysql/provider.js')).createMysqlProvider(url),
  redis: async (url) => (await import('./redis/provider.js')).createRedisProvider(url),
};

const MANAGED: Record<AddonType, new (opts: ManagedServerOptions) => ManagedServer> = {
  postgres: ManagedPostgres,
  mysql: ManagedMysql,
  redis: ManagedRedis,
};

/** How often dead managed servers are noticed and started again. */
const SUPERVISE_INTERVAL_MS = 5000;
/** How long a Redis script that wrote (so SCRIPT KILL refuses) may block a managed server
 * before it is shut down without saving and started again. */
const UNKILLABLE_SCRIPT_MS = 5000;

export interface Engine {
  type: AddonType;
  mode: 'managed' | 'external';
  /** Where the server listens, as the control plane reaches it (an IPv4 address). */
  endpoint: Endpoint;
  managed?: ManagedServer;
  /** External servers: the operator's admin URL. */
  adminUrl?: string;
}

/** An engine's server for GET /v1/addon-servers. */
export interface ServerState {
  type: AddonType;
  mode: 'managed' | 'external';
  address: string;
  state: 'up' | 'starting' | 'down' | 'idle';
  error: string | null;
}

export class AddonEngines {
  private readonly providers = new Map<AddonType, AddonProvider>();
  private readonly secured = new WeakSet<AddonProvider>();
  private readonly starting = new Map<AddonType, Promise<string>>();
  private readonly failures = new Map<AddonType, string>();
  /** Managed servers that started and have not been seen dead since. */
  private readonly up = new Set<AddonType>();
  /** Managed servers some add-on has needed since start: the ones supervise() keeps running. */
  private readonly wanted = new Set<AddonType>();
  private timer: NodeJS.Timeout | undefined;
  private watchdog: RedisScriptWatchdog | undefined;
  private watchingRedis = false;
  private closed = false;
  /** Where apps reach the servers: the bridge's gateway, or the endpoint itself without one. */
  private gateway: string | undefined;

  private constructor(
    readonly engines: Map<AddonType, Engine>,
    private readonly logger: Logger,
  ) {}

  /** Works out every engine's endpoint (picking managed servers' ports on first use) without
   * starting anything: the network's forwards need them before the first sandbox. */
  static async prepare(config: AddonsConfig, dir: string, logger: Logger): Promise<AddonEngines> {
    const engines = new Map<AddonType, Engine>();
    for (const type of ADDON_ENGINES) {
      const engine = await prepareEngine(type, config[type], config.serverUser, path.join(dir, type));
      if (engine) engines.set(type, engine);
    }
    return new AddonEngines(engines, logger);
  }

  get types(): AddonType[] {
    return [...this.engines.keys()];
  }

  /** The gateway forwards for the sandbox network: GATEWAY:5432 → the server, and so on. */
  forwards(): { port: number; to: Endpoint }[] {
    return [...this.engines.values()].map((e) => ({ port: GATEWAY_PORTS[e.type], to: e.endpoint }));
  }

  /** Apps reach the servers at the gateway's usual ports (or, with no sandbox network, directly). */
  useGateway(gateway: string | undefined): void {
    this.gateway = gateway;
  }

  appEndpoint(type: AddonType): Endpoint {
    const engine = this.get(type);
    return this.gateway ? { host: this.gateway, port: GATEWAY_PORTS[type] } : engine.endpoint;
  }

  /** Starts the managed servers of the engines some add-on uses (in the background) and
   * keeps them running. Any other starts with its engine's first add-on (provider()): a
   * Petri with no add-on runs no database server (about 130 MiB for PostgreSQL and MariaDB). */
  start(inUse: ReadonlySet<AddonType> = new Set(this.engines.keys())): void {
    for (const engine of this.engines.values()) {
      if (!engine.managed) this.watch(engine);
      else if (inUse.has(engine.type)) void this.startManaged(engine).catch(() => {});
    }
  }

  /** What runs beside an engine's server once it is used: Redis's script watchdog. */
  private watch(engine: Engine): void {
    if (engine.type !== 'redis' || this.watchingRedis) return;
    this.watchingRedis = true;
    void this.watchRedis(engine).catch((err: unknown) =>
      this.logger.error({ err, addon: 'redis' }, 'the redis script watchdog could not start'),
    );
  }

  private async restartWhenGone(server: ManagedServer): Promise<void> {
    await until(async () => !(await server.running()), { timeout: 30_000, interval: 50 }).catch(() => {});
    await this.supervise();
  }

  /** Kills Redis scripts that block the server for everyone (see addons/redis/watchdog.ts). */
  private async watchRedis(engine: Engine): Promise<void> {
    const managed = engine.managed;
    const { RedisScriptWatchdog } = await import('./redis/watchdog.js');
    if (this.closed) return;
    this.watchdog = new RedisScriptWatchdog({
      adminUrl: managed ? () => this.startManaged(engine) : async () => engine.adminUrl ?? '',
      shutdownAfterMs: managed ? UNKILLABLE_SCRIPT_MS : undefined,
      onEvent: (event: WatchdogEvent) => {
        if (event.kind === 'error') return; // a server that is down is supervise()'s news
        const what = {
          killed: 'a redis script blocked every app past the busy threshold; killed it',
          unkillable: managed
            ? `a redis script that wrote blocks every app; shutting the server down without saving after ${UNKILLABLE_SCRIPT_MS / 1000} s`
            : 'a redis script that wrote blocks every app and cannot be killed; the operator of the external server must act (SHUTDOWN NOSAVE)',
          shutdown:
            'shut the redis server down without saving to end a script that blocked every app; it is started again',
        }[event.kind];
        this.logger.warn({ addon: 'redis', busyMs: event.busyMs }, what);
        // Every app waits for the server: start it as soon as it is gone, not at the next round.
        if (event.kind === 'shutdown' && managed) void this.restartWhenGone(managed);
      },
    });
    this.watchdog.start();
  }

  /** The provider of an engine, once its server is up; a clear error when it is not. */
  async provider(type: AddonType): Promise<AddonProvider> {
    const existing = this.providers.get(type);
    if (existing) {
      await this.secure(existing);
      return existing;
    }
    const engine = this.get(type);
    let adminUrl: string;
    if (engine.managed) {
      try {
        adminUrl = await this.startManaged(engine);
      } catch (err) {
        throw new UserError(
          'unavailable',
          `the managed ${type} server could not start: ${errorMessage(err)}; ask the operator to look at ${type}'s log under the data dir (addons/${type}/server.log)`,
        );
      }
    } else {
      adminUrl = engine.adminUrl ?? '';
    }
    const provider = this.providers.get(type) ?? (await PROVIDERS[type](adminUrl));
    this.providers.set(type, provider);
    await this.secure(provider);
    return provider;
  }

  /** Once per provider: what the engine gives every login by default is taken back. A
   * failure is logged and tried again on the next use; it never fails the operation. */
  private async secure(provider: AddonProvider): Promise<void> {
    if (this.secured.has(provider)) return;
    try {
      const warning = await provider.secureServer();
      this.secured.add(provider);
      if (warning) this.logger.warn({ addon: provider.type }, warning);
    } catch (err) {
      this.logger.warn(
        { addon: provider.type, err },
        'securing the add-on server failed; trying again on next use',
      );
    }
  }

  /** Supervision starts with the first managed server wanted: a Petri whose add-on servers
   * never started has nothing to look at. */
  private supervising(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => void this.supervise(), SUPERVISE_INTERVAL_MS);
    this.timer.unref();
  }

  /** Stops supervising and closes admin connections; the servers keep running. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.closed = true;
    this.watchdog?.stop();
    await Promise.all([...this.providers.values()].map((p) => p.close().catch(() => {})));
    this.providers.clear();
  }

  /** Stops the managed servers too (platform shutdown, tests). */
  async stopServers(): Promise<void> {
    await this.close();
    await Promise.all(
      [...this.engines.values()].map((e) =>
        e.managed?.stop().catch((err) => this.logger.warn({ err }, 'stop failed')),
      ),
    );
  }

  /** Each engine's server as operators see it: a managed one's start as supervise() knows
   * it, and whether it answers a TCP connect now (an external one is known only so). */
  async servers(): Promise<ServerState[]> {
    return Promise.all(
      [...this.engines.values()].map(async (engine): Promise<ServerState> => {
        const { host, port } = engine.endpoint;
        const address = `${host}:${port}`;
        const base = { type: engine.type, mode: engine.mode, address };
        const failure = this.failures.get(engine.type);
        if (engine.managed && failure !== undefined) return { ...base, state: 'down', error: failure };
        if (engine.managed && this.starting.has(engine.type) && !this.up.has(engine.type))
          return { ...base, state: 'starting', error: null };
        if (await isListening(port, host, 1000)) return { ...base, state: 'up', error: null };
        if (engine.managed && !this.wanted.has(engine.type)) return { ...base, state: 'idle', error: null };
        return { ...base, state: 'down', error: `it does not answer on ${address}` };
      }),
    );
  }

  get(type: AddonType): Engine {
    const engine = this.engines.get(type);
    if (!engine) throw new UserError('bad_request', `${type} add-ons are turned off on this Petri`);
    return engine;
  }

  /** One start at a time per server; a failed start is tried again on the next call. */
  private startManaged(engine: Engine): Promise<string> {
    const server = engine.managed;
    if (!server) throw new Error(`${engine.type} is not managed`);
    let started = this.starting.get(engine.type);
    if (!started) {
      this.wanted.add(engine.type);
      this.supervising();
      started = server.start().then(
        (url) => {
          this.up.add(engine.type);
          if (this.failures.delete(engine.type))
            this.logger.info({ addon: engine.type }, 'managed add-on server is up again');
          return url;
        },
        (err: unknown) => {
          this.starting.delete(engine.type);
          const why = errorMessage(err);
          if (this.failures.get(engine.type) !== why)
            this.logger.error({ addon: engine.type, err }, 'managed add-on server failed to start');
          this.failures.set(engine.type, why);
          throw err;
        },
      );
      this.starting.set(engine.type, started);
      // After the start is recorded: the watchdog asks for the server's address at once.
      this.watch(engine);
    }
    return started;
  }

  /** A managed server that died is started again (its data is on disk), and one that
   * failed to start is tried again. */
  private async supervise(): Promise<void> {
    for (const engine of this.engines.values()) {
      // A server no add-on has asked for yet stays unstarted.
      if (!engine.managed || !this.wanted.has(engine.type)) continue;
      if (this.up.has(engine.type)) {
        if (await engine.managed.running().catch(() => false)) continue;
        this.logger.warn({ addon: engine.type }, 'managed add-on server is not running; starting it again');
        this.up.delete(engine.type);
        this.starting.delete(engine.type);
      } else if (this.starting.has(engine.type)) {
        continue; // still starting
      }
      await this.startManaged(engine).catch(() => {});
    }
  }
}

async function prepareEngine(
  type: AddonType,
  config: EngineConfig,
  user: string,
  dir: string,
): Promise<Engine | undefined> {
  if (config.mode === 'off') return undefined;
  if (config.mode === 'managed') {
    const managed = new MANAGED[type]({ dir, user, port: config.port });
    return { type, mode: 'managed', endpoint: await managed.endpoint(), managed };
  }
  const url = new URL(config.adminUrl);
  const port = Number(url.port || GATEWAY_PORTS[type]);
  // The gateway forward needs an address; a name is resolved once, at start.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const address = /^[0-9.]+$/.test(host) ? host : (await lookup(host, { family: 4 })).address;
  return { type, mode: 'external', endpoint: { host: address, port }, adminUrl: config.adminUrl };
}
