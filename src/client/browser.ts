// The typed client of the Petri API (/v1) for a browser: the dashboard's. The same routes,
// types, errors and NDJSON reader as PetriClient (client.ts), over fetch instead of undici,
// signed in by the web session's cookie (petri_session, sent by the browser itself) with
// the session's CSRF token in X-CSRF-Token on every change. It imports nothing of Node.js,
// so the dashboard's bundle carries only this file, the types and the two pure helpers.
import { ApiError, apiErrorFrom } from './errors.js';
import { parseNdjson } from './ndjson.js';
import type {
  App,
  AppMetrics,
  ConfigChange,
  ConfigVars,
  Deploy,
  DeployEvent,
  Formation,
  Inventory,
  InventoryQuery,
  LogLine,
  ProcessList,
  Release,
  Renewal,
  WhoamiUser,
} from './types.js';

/** GET /v1/session: who is signed in, and the token every change must carry. */
export interface WebSessionInfo {
  user: { name: string; email: string | null; role: string; provider: string };
  /** null when the request came with a bearer token, which needs none. */
  csrf: string | null;
  idleEndsAt: string | null;
  expiresAt: string | null;
}

export interface BrowserLogsOptions {
  lines?: number;
  follow?: boolean;
  /** Only lines of this source (web.1, build, release, router ...). */
  source?: string;
  signal?: AbortSignal;
  /** Called once the server has answered and the stream is open. */
  onOpen?: () => void;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Call {
  method: Method;
  path: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  signal?: AbortSignal;
  accept?: string;
}

export class BrowserClient {
  /** Set from GET /v1/session (session()); sent on every change. */
  private csrf = '';

  /** base: where /v1 is, '' for the page's own origin. */
  constructor(
    private readonly base = '',
    private readonly fetcher: typeof fetch = globalThis.fetch.bind(globalThis),
  ) {}

  /** The signed-in user and the CSRF token; ApiError 401 when nobody is signed in. */
  async session(): Promise<WebSessionInfo> {
    const info = await this.json<WebSessionInfo>({ method: 'GET', path: '/v1/session' });
    this.csrf = info.csrf ?? '';
    return info;
  }

  /** The signed-in user with their teams and role in each. */
  async whoami(): Promise<WhoamiUser> {
    return (await this.json<{ user: WhoamiUser }>({ method: 'GET', path: '/v1/whoami' })).user;
  }

  async listApps(): Promise<App[]> {
    return (await this.json<{ apps: App[] }>({ method: 'GET', path: '/v1/apps' })).apps;
  }

  createApp(input: { name: string; team?: string; description?: string; data?: string }): Promise<App> {
    const body = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined && v !== ''));
    return this.json<App>({ method: 'POST', path: '/v1/apps', json: body });
  }

  getApp(name: string): Promise<App> {
    return this.json<App>({ method: 'GET', path: appPath(name) });
  }

  renewApp(name: string, period?: string): Promise<Renewal> {
    return this.json<Renewal>({
      method: 'POST',
      path: `${appPath(name)}/renew`,
      json: period === undefined ? {} : { for: period },
    });
  }

  async inventory(filters: Omit<InventoryQuery, 'format'> = {}): Promise<Inventory['apps']> {
    return (await this.json<Inventory>({ method: 'GET', path: '/v1/inventory', query: { ...filters } })).apps;
  }

  /** The inventory as the server writes it for `petri inventory --csv`. */
  async inventoryCsv(filters: Omit<InventoryQuery, 'format'> = {}): Promise<string> {
    const res = await this.send({
      method: 'GET',
      path: '/v1/inventory',
      query: { ...filters, format: 'csv' },
      accept: 'text/csv',
    });
    const text = await res.text();
    if (!res.ok) throw apiErrorFrom(res.status, text, this.where());
    return text;
  }

  async listReleases(name: string): Promise<Release[]> {
    return (await this.json<{ releases: Release[] }>({ method: 'GET', path: `${appPath(name)}/releases` }))
      .releases;
  }

  async rollback(name: string, version: string): Promise<Release> {
    return (
      await this.json<{ release: Release }>({
        method: 'POST',
        path: `${appPath(name)}/rollback`,
        json: { version },
      })
    ).release;
  }

  async getConfig(name: string): Promise<ConfigVars> {
    return (await this.json<{ config: ConfigVars }>({ method: 'GET', path: `${appPath(name)}/config` }))
      .config;
  }

  /** The new release, or null when the app has none yet. */
  async updateConfig(name: string, change: ConfigChange): Promise<Release | null> {
    return (
      await this.json<{ release: Release | null }>({
        method: 'PATCH',
        path: `${appPath(name)}/config`,
        json: change,
      })
    ).release;
  }

  listProcesses(name: string): Promise<ProcessList> {
    return this.json<ProcessList>({ method: 'GET', path: `${appPath(name)}/ps` });
  }

  async updateFormation(name: string, counts: Formation): Promise<Formation> {
    return (
      await this.json<{ formation: Formation }>({
        method: 'PATCH',
        path: `${appPath(name)}/formation`,
        json: counts,
      })
    ).formation;
  }

  /** How the app did since `since` (1h, 24h, 7d): totals and a point per minute or hour. */
  appMetrics(name: string, since?: string): Promise<AppMetrics> {
    return this.json<AppMetrics>({ method: 'GET', path: `${appPath(name)}/metrics`, query: { since } });
  }

  /** Restarts every process, or those of one type; answers with the names being restarted. */
  async restart(name: string, type?: string): Promise<string[]> {
    return (
      await this.json<{ restarting: string[] }>({
        method: 'POST',
        path: `${appPath(name)}/restart`,
        json: type === undefined ? {} : { type },
      })
    ).restarting;
  }

  /** The app's latest deploys (builds), newest first. */
  async listDeploys(name: string): Promise<Deploy[]> {
    return (await this.json<{ deploys: Deploy[] }>({ method: 'GET', path: `${appPath(name)}/deploys` }))
      .deploys;
  }

  /** A deploy's build and release output from its start, live while it runs, then its `end`. */
  streamDeploy(
    name: string,
    id: string,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<DeployEvent> {
    return this.ndjson<DeployEvent>(`${appPath(name)}/deploys/${encodeURIComponent(id)}/stream`, {}, options);
  }

  /** The app's log lines as they arrive (NDJSON); aborting the signal ends it quietly. */
  logs(name: string, options: BrowserLogsOptions = {}): AsyncGenerator<LogLine> {
    return this.ndjson<LogLine>(
      `${appPath(name)}/logs`,
      {
        lines: options.lines === undefined ? undefined : String(options.lines),
        follow: options.follow ? 'true' : undefined,
        source: options.source || undefined,
      },
      options,
    );
  }

  private where(): string {
    return this.base || 'this server';
  }

  private async json<T>(call: Call): Promise<T> {
    const res = await this.send(call);
    const text = await res.text();
    if (!res.ok) throw apiErrorFrom(res.status, text, this.where());
    if (text === '') return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.status, 'bad_response', `Petri at ${this.where()} sent a body that is not JSON`);
    }
  }

  private async *ndjson<T>(
    path: string,
    query: Record<string, string | undefined>,
    options: { signal?: AbortSignal; onOpen?: () => void },
  ): AsyncGenerator<T> {
    const res = await this.send({
      method: 'GET',
      path,
      query,
      signal: options.signal,
      accept: 'application/x-ndjson',
    });
    if (!res.ok) throw apiErrorFrom(res.status, await res.text(), this.where());
    options.onOpen?.();
    if (!res.body) return;
    const reader = res.body.getReader();
    try {
      yield* parseNdjson<T>(chunksOf(reader));
    } catch (err) {
      if (options.signal?.aborted) return;
      throw err;
    } finally {
      reader.releaseLock();
      if (!options.signal?.aborted) void res.body.cancel().catch(() => undefined);
    }
  }

  private send(call: Call): Promise<Response> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(call.query ?? {}))
      if (value !== undefined) query.set(key, value);
    const search = query.size > 0 ? `?${query}` : '';
    const headers: Record<string, string> = { accept: call.accept ?? 'application/json' };
    if (call.method !== 'GET' && this.csrf) headers['x-csrf-token'] = this.csrf;
    if (call.json !== undefined) headers['content-type'] = 'application/json';
    return this.fetcher(`${this.base}${call.path}${search}`, {
      method: call.method,
      headers,
      body: call.json === undefined ? undefined : JSON.stringify(call.json),
      credentials: 'same-origin',
      signal: call.signal,
    });
  }
}

async function* chunksOf(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    yield value;
  }
}

function appPath(name: string): string {
  return `/v1/apps/${encodeURIComponent(name)}`;
}
