// Redis runs one script at a time and nothing else meanwhile: one app's endless EVAL blocks
// every app on the server. Apps may not SCRIPT KILL (it would kill a neighbour's script), so
// this watchdog does, over an admin connection of its own: once a script runs past the
// server's busy-reply-threshold, the server answers BUSY, and the watchdog kills the script.
// A script that already wrote cannot be killed; on a managed server it is stopped with
// SHUTDOWN NOSAVE after a grace period (the script's writes were never logged, so the
// server comes back as it was before the script) and the supervisor starts it again.
import { Redis } from 'ioredis';

/** Between probes; a blocked server holds the probe until the busy threshold anyway. */
const PROBE_INTERVAL_MS = 500;
/** Longer than any busy threshold, so a probe always ends in a reply or BUSY. */
const PROBE_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 2000;

export type WatchdogEvent =
  | { kind: 'killed'; busyMs: number }
  | { kind: 'unkillable'; busyMs: number }
  | { kind: 'shutdown'; busyMs: number }
  | { kind: 'error'; message: string };

export interface WatchdogOptions {
  /** The admin URL; asked again after the connection is lost (a managed server restarts). */
  adminUrl: () => Promise<string>;
  /** Managed servers only: how long an unkillable script may hold the server before it is
   * shut down without saving. Undefined: never (an external server is its operator's). */
  shutdownAfterMs?: number;
  onEvent: (event: WatchdogEvent) => void;
}

export class RedisScriptWatchdog {
  private client: Redis | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** When the server was first seen BUSY in the current episode. */
  private busySince: number | undefined;
  private lastError: string | undefined;
  private reportedUnkillable = false;

  constructor(private readonly opts: WatchdogOptions) {}

  start(): void {
    const loop = async () => {
      if (this.stopped) return;
      await this.check();
      if (this.stopped) return;
      this.timer = setTimeout(() => void loop(), PROBE_INTERVAL_MS);
      this.timer.unref();
    };
    void loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.client?.disconnect();
    this.client = undefined;
  }

  /** One probe: a PING, and a kill when the server answers BUSY. */
  async check(): Promise<'ok' | 'killed' | 'busy' | 'shutdown' | 'unreachable'> {
    let client: Redis;
    try {
      client = await this.connection();
    } catch (err) {
      return this.unreachable(err);
    }
    try {
      await client.ping();
      this.busySince = undefined;
      this.reportedUnkillable = false;
      this.lastError = undefined;
      return 'ok';
    } catch (err) {
      if (!isBusy(err)) return this.unreachable(err);
    }
    this.busySince ??= Date.now();
    const since = this.busySince;
    try {
      await client.call('SCRIPT', 'KILL');
      this.busySince = undefined;
      this.opts.onEvent({ kind: 'killed', busyMs: Date.now() - since });
      return 'killed';
    } catch (err) {
      return this.notKilled(client, err, since);
    }
  }

  private async notKilled(
    client: Redis,
    err: unknown,
    since: number,
  ): Promise<'killed' | 'busy' | 'shutdown' | 'unreachable'> {
    const message = err instanceof Error ? err.message : String(err);
    if (/^NOTBUSY/.test(message)) {
      // No script: a function (FCALL) is what runs; apps cannot load one, but an admin may.
      try {
        await client.call('FUNCTION', 'KILL');
        this.busySince = undefined;
        this.opts.onEvent({ kind: 'killed', busyMs: Date.now() - since });
        return 'killed';
      } catch (e) {
        // Also NOTBUSY: it ended by itself between the probe and the kill.
        if (/^NOTBUSY/.test(e instanceof Error ? e.message : String(e))) return 'busy';
        return this.unreachable(e);
      }
    }
    if (!/^UNKILLABLE/.test(message)) return this.unreachable(err);
    const busyMs = Date.now() - since;
    if (this.opts.shutdownAfterMs === undefined || busyMs < this.opts.shutdownAfterMs) {
      if (!this.reportedUnkillable) this.opts.onEvent({ kind: 'unkillable', busyMs });
      this.reportedUnkillable = true;
      return 'busy';
    }
    // The connection closes as the server exits, so the reply is an error either way.
    await client.call('SHUTDOWN', 'NOSAVE').catch(() => {});
    this.drop();
    this.busySince = undefined;
    this.opts.onEvent({ kind: 'shutdown', busyMs });
    return 'shutdown';
  }

  private unreachable(err: unknown): 'unreachable' {
    this.drop();
    const message = err instanceof Error ? err.message : String(err);
    // Reported once per reason: a server that is down is the supervisor's news, not ours.
    if (message !== this.lastError) this.opts.onEvent({ kind: 'error', message });
    this.lastError = message;
    return 'unreachable';
  }

  private drop(): void {
    this.client?.disconnect();
    this.client = undefined;
  }

  private async connection(): Promise<Redis> {
    if (this.client?.status === 'ready') return this.client;
    this.drop();
    const url = new URL(await this.opts.adminUrl());
    const client = new Redis({
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port === '' ? 6379 : Number(url.port),
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      protocol: 2,
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: PROBE_TIMEOUT_MS,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      // Neither a ready check (INFO) nor CLIENT SETNAME: a busy server refuses both, and the
      // watchdog must get in precisely then (AUTH is allowed while busy).
      enableReadyCheck: false,
    });
    client.on('error', () => {});
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw err;
    }
    this.client = client;
    return client;
  }
}

function isBusy(err: unknown): boolean {
  return err instanceof Error && /^BUSY/.test(err.message);
}
