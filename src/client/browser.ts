// The typed client of the Petri API (/v1) for a browser: the dashboard's. The same routes,
// types, errors and NDJSON reader as PetriClient (client.ts), over fetch instead of undici,
// signed in by the web session's cookie (petri_session, sent by the browser itself) with
// the session's CSRF token in X-CSRF-Token on every change. It imports nothing of Node.js,
// so the dashboard's bundle carries only this file, the types and the two pure helpers.
import { ApiError, apiErrorFrom } from './errors.js';
import { parseNdjson } from './ndjson.js';
import type {
  AddonBackup,
  AddonChange,
  AddonList,
  AddonRestore,
  AddonServer,
  AddonServerList,
  App,
  AppEgress,
  AppMail,
  AppMetrics,
  AppUpdate,
  Audience,
  AudienceLink,
  AudienceLinkCreate,
  AudienceLinkCreated,
  AudienceVisitorList,
  AuditFilters,
  AuditList,
  ChangeUserBody,
  ConfigChange,
  ConfigVars,
  Deploy,
  DeployEvent,
  DisabledUser,
  Formation,
  Inventory,
  InventoryQuery,
  LogLine,
  MemberChange,
  PlatformStatus,
  ProcessList,
  QuotaUpdate,
  Release,
  Renewal,
  TeamDetail,
  TeamList,
  TeamQuotas,
  TeamRole,
  TeamSummary,
  UserInfo,
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

  /** The audit trail as the caller may see it, newest first; `next` is the `before` of the next page. */
  audit(filters: AuditFilters = {}): Promise<AuditList> {
    const query = Object.fromEntries(
      Object.entries(filters).flatMap(([key, value]) => (value === undefined ? [] : [[key, String(value)]])),
    );
    return this.json<AuditList>({ method: 'GET', path: '/v1/audit', query });
  }

  /** Every user and bot (admins and auditors). */
  async listUsers(): Promise<UserInfo[]> {
    return (await this.json<{ users: UserInfo[] }>({ method: 'GET', path: '/v1/users' })).users;
  }

  /** Disables a user (an e-mail or a bot's name) and revokes all their tokens and sessions. */
  disableUser(who: string): Promise<DisabledUser> {
    return this.json<DisabledUser>({ method: 'POST', path: `${userPath(who)}/disable` });
  }

  async enableUser(who: string): Promise<UserInfo> {
    return (await this.json<{ user: UserInfo }>({ method: 'POST', path: `${userPath(who)}/enable` })).user;
  }

  /** A person's platform role: admin, auditor or member (never the last admin's). */
  async setUserRole(who: string, role: ChangeUserBody['role']): Promise<UserInfo> {
    return (await this.json<{ user: UserInfo }>({ method: 'PATCH', path: userPath(who), json: { role } }))
      .user;
  }

  /** Your teams (admins and auditors: every team). */
  async listTeams(): Promise<TeamSummary[]> {
    return (await this.json<TeamList>({ method: 'GET', path: '/v1/teams' })).teams;
  }

  /** A team's members, apps and quotas. */
  getTeam(name: string): Promise<TeamDetail> {
    return this.json<TeamDetail>({ method: 'GET', path: teamPath(name) });
  }

  /** Adds the person (by e-mail; a bot by name) with the role, or changes their role. */
  setTeamMember(team: string, email: string, role: TeamRole): Promise<MemberChange> {
    return this.json<MemberChange>({
      method: 'PUT',
      path: `${teamPath(team)}/members/${encodeURIComponent(email)}`,
      json: { role },
    });
  }

  async removeTeamMember(team: string, email: string): Promise<void> {
    await this.json<unknown>({
      method: 'DELETE',
      path: `${teamPath(team)}/members/${encodeURIComponent(email)}`,
    });
  }

  /** Platform admins: the team's own limits (null: back to the server's default). */
  setQuotas(team: string, update: QuotaUpdate): Promise<TeamQuotas> {
    return this.json<TeamQuotas>({ method: 'PATCH', path: `${teamPath(team)}/quotas`, json: update });
  }

  /** Each add-on engine's server, its mode and whether it answers (admins and auditors). */
  async addonServers(): Promise<AddonServer[]> {
    return (await this.json<AddonServerList>({ method: 'GET', path: '/v1/addon-servers' })).servers;
  }

  /** The platform's promise, measured availability, incidents and public apps. */
  status(): Promise<PlatformStatus> {
    return this.json<PlatformStatus>({ method: 'GET', path: '/v1/status' });
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

  updateApp(name: string, update: AppUpdate): Promise<App> {
    return this.json<App>({ method: 'PATCH', path: appPath(name), json: update });
  }

  /** Moves the app to another team; its owner stays. */
  transferApp(name: string, team: string): Promise<App> {
    return this.json<App>({ method: 'POST', path: `${appPath(name)}/transfer`, json: { team } });
  }

  /** `confirm` must repeat the name: the server refuses a delete that does not. */
  async destroyApp(name: string, confirm: string): Promise<void> {
    await this.json<unknown>({ method: 'DELETE', path: appPath(name), query: { confirm } });
  }

  /**
   * Moves the app to the graduating stage and answers its handoff bundle (a tar.gz) whole,
   * with the file name the server gives it. Slow to start: every add-on is backed up first.
   */
  async graduate(name: string): Promise<{ blob: Blob; filename: string }> {
    const res = await this.send({ method: 'POST', path: `${appPath(name)}/graduate`, accept: '*/*' });
    if (!res.ok) throw apiErrorFrom(res.status, await res.text(), this.where());
    const filename =
      /filename="([A-Za-z0-9][A-Za-z0-9._-]*)"/.exec(res.headers.get('content-disposition') ?? '')?.[1] ??
      `${name}-handoff.tar.gz`;
    return { blob: await res.blob(), filename };
  }

  /** Who may reach the app: its audience and the people on its list. */
  audience(name: string): Promise<Audience> {
    return this.json<Audience>({ method: 'GET', path: `${appPath(name)}/audience` });
  }

  /** public, staff or invite; approve: an admin's approval of public for personal data. */
  setAudience(name: string, audience: string, approve?: boolean): Promise<Audience> {
    return this.json<Audience>({
      method: 'PUT',
      path: `${appPath(name)}/audience`,
      json: approve ? { audience, approve } : { audience },
    });
  }

  inviteToAudience(name: string, emails: string[]): Promise<Audience> {
    return this.json<Audience>({
      method: 'POST',
      path: `${appPath(name)}/audience/invitees`,
      json: { emails },
    });
  }

  removeFromAudience(name: string, email: string): Promise<Audience> {
    return this.json<Audience>({
      method: 'DELETE',
      path: `${appPath(name)}/audience/invitees/${encodeURIComponent(email)}`,
    });
  }

  async audienceLinks(name: string): Promise<AudienceLink[]> {
    return (
      await this.json<{ links: AudienceLink[] }>({ method: 'GET', path: `${appPath(name)}/audience/links` })
    ).links;
  }

  createAudienceLink(name: string, opts: AudienceLinkCreate = {}): Promise<AudienceLinkCreated> {
    return this.json<AudienceLinkCreated>({
      method: 'POST',
      path: `${appPath(name)}/audience/links`,
      json: opts,
    });
  }

  revokeAudienceLink(name: string, id: number): Promise<AudienceLink> {
    return this.json<AudienceLink>({ method: 'DELETE', path: `${appPath(name)}/audience/links/${id}` });
  }

  audienceVisitors(name: string): Promise<AudienceVisitorList> {
    return this.json<AudienceVisitorList>({ method: 'GET', path: `${appPath(name)}/audience/visitors` });
  }

  /** Hosts the app declared, and every host it tried to reach. */
  egress(name: string): Promise<AppEgress> {
    return this.json<AppEgress>({ method: 'GET', path: `${appPath(name)}/egress` });
  }

  /** What the app sent through the mail relay, its limits and last messages. */
  mail(name: string): Promise<AppMail> {
    return this.json<AppMail>({ method: 'GET', path: `${appPath(name)}/mail` });
  }

  /** The app's add-ons with their size and open connections, and the types this server offers. */
  listAddons(name: string): Promise<AddonList> {
    return this.json<AddonList>({ method: 'GET', path: `${appPath(name)}/addons` });
  }

  /** Provisions a database for the app; its URL arrives in a new release (null before the first deploy). */
  createAddon(name: string, input: { type: string; as?: string }): Promise<AddonChange> {
    return this.json<AddonChange>({ method: 'POST', path: `${appPath(name)}/addons`, json: input });
  }

  /** Backs the add-on up now; answers once the backup has ended. */
  async backupAddon(name: string, addon: string): Promise<AddonBackup> {
    return (
      await this.json<{ backup: AddonBackup }>({ method: 'POST', path: `${addonPath(name, addon)}/backups` })
    ).backup;
  }

  /** Newest first. */
  async listAddonBackups(name: string, addon: string): Promise<AddonBackup[]> {
    return (
      await this.json<{ backups: AddonBackup[] }>({
        method: 'GET',
        path: `${addonPath(name, addon)}/backups`,
      })
    ).backups;
  }

  /** Replaces the add-on's data with backup `backupId` (b12); the data before goes in a backup first. */
  restoreAddon(name: string, addon: string, backupId: string): Promise<AddonRestore> {
    return this.json<AddonRestore>({
      method: 'POST',
      path: `${addonPath(name, addon)}/restore`,
      json: { backup: backupId },
    });
  }

  /** Where a backup's dump downloads from: a plain link, the session's cookie signs it in. */
  backupDownloadUrl(name: string, addon: string, backupId: string): string {
    return `${this.base}${addonPath(name, addon)}/backups/${encodeURIComponent(backupId)}/download`;
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

function userPath(who: string): string {
  return `/v1/users/${encodeURIComponent(who)}`;
}

function teamPath(name: string): string {
  return `/v1/teams/${encodeURIComponent(name)}`;
}

function addonPath(name: string, addon: string): string {
  return `${appPath(name)}/addons/${encodeURIComponent(addon)}`;
}
