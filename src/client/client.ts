// The typed HTTP client of the Petri API (/v1): one method per route, JSON in and out,
// NDJSON streams as async iterators. Shared by the CLI and the dashboard, so it knows
// nothing about terminals or config files.
import { Readable } from 'node:stream';
import { GRADUATION_HEADERS } from '../contract/graduation-headers.js';
import type {
  AppMail,
  MailDns,
  MailLimitsChange,
  MailMessageDetail,
  MailReportRow,
  MailRotated,
} from '../contract/index.js';
import { ApiError, apiErrorFrom, ConnectionError, networkErrorCode } from './errors.js';
import { parseNdjson } from './ndjson.js';
import { type Answer, exchange, readText } from './transport.js';
import type {
  AddonBackup,
  AddonChange,
  AddonDestroyed,
  AddonDetail,
  AddonList,
  AddonRestore,
  AddonServer,
  AddonServerList,
  App,
  AppDomainList,
  AppEgress,
  AppMetrics,
  AppUpdate,
  Audience,
  AudienceLink,
  AudienceLinkCreate,
  AudienceLinkCreated,
  AudienceLinkList,
  AudienceVisitorList,
  AuditFilters,
  AuditList,
  AuditVerification,
  AuthProviders,
  CertificateList,
  ChangeUserBody,
  ConfigChange,
  ConfigVars,
  CreateBotBody,
  CreatedBot,
  CreatedInvitation,
  CreatedToken,
  CreateInvitationBody,
  CreateTokenBody,
  Deploy,
  DeployEvent,
  DevicePoll,
  DevicePollBody,
  DeviceStart,
  DeviceStartBody,
  DisabledUser,
  DomainAdded,
  EgressAttempt,
  ExperimentUpdate,
  Formation,
  Inventory,
  InventoryQuery,
  InvitationInfo,
  LogLine,
  MemberChange,
  OidcFinishBody,
  OidcStart,
  OidcStartBody,
  PasswordChanged,
  PlatformStatus,
  ProcessList,
  QuotaUpdate,
  Release,
  Renewal,
  Report,
  SignedIn,
  Stacks,
  TeamDetail,
  TeamList,
  TeamQuotas,
  TeamRole,
  TeamSummary,
  TokenInfo,
  TokenList,
  UserInfo,
  Whoami,
  WhoamiUser,
} from './types.js';

export interface PetriClientOptions {
  /** Where the API listens, e.g. http://127.0.0.1:7070 (a path prefix is kept). */
  url: string;
  token: string;
  userAgent?: string;
  /** Called with the Petri-Warning of an answer (an app that expires soon, expired or was
   * archived); the CLI prints it on stderr. */
  onWarning?: (warning: string) => void;
}

export interface StreamOptions {
  /** Aborting ends the iteration and closes the connection. */
  signal?: AbortSignal;
}

/** `petri graduate`: the bundle as it arrives, and what the answer's headers say of it. */
export interface GraduationDownload {
  body: Readable;
  /** NAME-handoff.tar.gz */
  filename: string;
  /** v7 */
  release: string;
  /** The app's stage now (graduating; graduated when it already was). */
  stage: string;
  /** `postgres=b12 fresh, cache=b9 earlier`: each add-on's backup in the bundle. */
  backups: string;
}

export interface LogsOptions extends StreamOptions {
  /** How many past lines to send first; the server's default when absent. */
  lines?: number;
  /** Keep the stream open and send new lines as they are written. */
  follow?: boolean;
}

export type DeployBody = Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Call {
  method: Method;
  path: string;
  query?: Record<string, string | undefined>;
  json?: unknown;
  body?: DeployBody;
  contentType?: string;
  signal?: AbortSignal;
  /** Streams stay idle for as long as an app writes nothing: no body timeout for them. */
  stream?: boolean;
  /** The server answers once the work is done (a backup, a restore): wait up to SLOW_CALL_MS. */
  slow?: boolean;
}

// An answer's headers, or the next bytes of its body, are awaited five minutes; a dump or
// restore of a large database takes longer before it answers: an hour is long enough for
// the databases Petri runs, short of forever.
const WAIT_MS = 5 * 60_000;
const SLOW_CALL_MS = 60 * 60_000;

export class PetriClient {
  readonly url: string;
  private readonly token: string;
  private readonly userAgent: string;
  private readonly onWarning: ((warning: string) => void) | undefined;

  constructor(options: PetriClientOptions) {
    this.url = options.url.replace(/\/+$/, '');
    this.token = options.token;
    this.userAgent = options.userAgent ?? 'petri-client';
    this.onWarning = options.onWarning;
  }

  /** Who the token speaks for: name, e-mail, platform role, kind, provider, teams. */
  async whoami(): Promise<WhoamiUser> {
    return (await this.whoamiWithToken()).user;
  }

  /** The user and the token of this client (its name, kind, expiry). */
  whoamiWithToken(): Promise<Whoami> {
    return this.json<Whoami>({ method: 'GET', path: '/v1/whoami' });
  }

  /** Your tokens, or (admins, auditors) those of `user` (an e-mail or a bot's name). */
  listTokens(user?: string): Promise<TokenList> {
    return this.json<TokenList>({ method: 'GET', path: '/v1/tokens', query: { user } });
  }

  /** A new token; its secret is in the answer, the only time it is shown. */
  createToken(input: CreateTokenBody): Promise<CreatedToken> {
    return this.json<CreatedToken>({ method: 'POST', path: '/v1/tokens', json: input });
  }

  async revokeToken(id: number): Promise<TokenInfo> {
    const body = await this.json<{ token: TokenInfo }>({ method: 'DELETE', path: `/v1/tokens/${id}` });
    return body.token;
  }

  /** Every user and bot (admins and auditors). */
  async listUsers(): Promise<UserInfo[]> {
    return (await this.json<{ users: UserInfo[] }>({ method: 'GET', path: '/v1/users' })).users;
  }

  /** An invitation and its single-use link (admins). */
  inviteUser(input: CreateInvitationBody): Promise<CreatedInvitation> {
    return this.json<CreatedInvitation>({ method: 'POST', path: '/v1/users/invitations', json: input });
  }

  /** Invitations not used and not expired. */
  async listInvitations(): Promise<InvitationInfo[]> {
    return (
      await this.json<{ invitations: InvitationInfo[] }>({ method: 'GET', path: '/v1/users/invitations' })
    ).invitations;
  }

  async cancelInvitation(id: number): Promise<InvitationInfo> {
    return (
      await this.json<{ invitation: InvitationInfo }>({
        method: 'DELETE',
        path: `/v1/users/invitations/${id}`,
      })
    ).invitation;
  }

  /** Disables a user (an e-mail or a bot's name) and revokes all their tokens. */
  disableUser(who: string): Promise<DisabledUser> {
    return this.json<DisabledUser>({ method: 'POST', path: `${userPath(who)}/disable` });
  }

  async enableUser(who: string): Promise<UserInfo> {
    return (await this.json<{ user: UserInfo }>({ method: 'POST', path: `${userPath(who)}/enable` })).user;
  }

  async setUserRole(who: string, role: ChangeUserBody['role']): Promise<UserInfo> {
    return (await this.json<{ user: UserInfo }>({ method: 'PATCH', path: userPath(who), json: { role } }))
      .user;
  }

  /** A bot in a team and its token (in the answer, the only time it is shown). */
  createBot(input: CreateBotBody): Promise<CreatedBot> {
    return this.json<CreatedBot>({ method: 'POST', path: '/v1/users/bots', json: input });
  }

  async listApps(): Promise<App[]> {
    const body = await this.json<{ apps: App[] }>({ method: 'GET', path: '/v1/apps' });
    return body.apps;
  }

  /** In the named team (you must be a member or admin of it), else your personal team;
   * `describe`: its description, data class, privacy note and retention. */
  createApp(
    name: string,
    team?: string,
    describe: { description?: string; data?: string; privacy?: string; retention?: string } = {},
  ): Promise<App> {
    const given = Object.fromEntries(Object.entries(describe).filter(([, v]) => v !== undefined));
    return this.json<App>({
      method: 'POST',
      path: '/v1/apps',
      json: team === undefined ? { name, ...given } : { name, team, ...given },
    });
  }

  /** `petri apps set` for the experiment's keys: description, data, privacy, retention;
   * expires and stage (admins); redirect (team admins). */
  updateExperiment(name: string, update: ExperimentUpdate): Promise<App> {
    return this.json<App>({ method: 'PATCH', path: `${appPath(name)}/experiment`, json: update });
  }

  /** An admin's approval of the data class the app declares. */
  /** reviewed: what the admin saw; the server refuses (409) if the app says something else now. */
  approveApp(
    name: string,
    reviewed: { data?: string; privacyNote?: string | null; retentionDays?: number | null } = {},
  ): Promise<App> {
    return this.json<App>({ method: 'POST', path: `${appPath(name)}/approve`, json: reviewed });
  }

  /** Every app you may see with its team, data, egress, add-ons, use and expiry. */
  async inventory(filters: Omit<InventoryQuery, 'format'> = {}): Promise<Inventory['apps']> {
    return (await this.json<Inventory>({ method: 'GET', path: '/v1/inventory', query: { ...filters } })).apps;
  }

  /** The same inventory as CSV, as the server writes it. */
  async inventoryCsv(filters: Omit<InventoryQuery, 'format'> = {}): Promise<string> {
    const res = await this.send({
      method: 'GET',
      path: '/v1/inventory',
      query: { ...filters, format: 'csv' },
    });
    const text = await readText(res.body);
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, text, this.url);
    return text;
  }

  /** How the platform is doing since `since` (365d by default; admins). */
  report(since?: string): Promise<Report> {
    return this.json<Report>({ method: 'GET', path: '/v1/report', query: { since } });
  }

  /** Moves the app to another team; its owner stays. */
  transferApp(name: string, team: string): Promise<App> {
    return this.json<App>({ method: 'POST', path: `${appPath(name)}/transfer`, json: { team } });
  }

  /** Your teams with your role in each (admins and auditors: every team). */
  async listTeams(): Promise<TeamSummary[]> {
    return (await this.json<TeamList>({ method: 'GET', path: '/v1/teams' })).teams;
  }

  createTeam(name: string): Promise<TeamDetail> {
    return this.json<TeamDetail>({ method: 'POST', path: '/v1/teams', json: { name } });
  }

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

  getQuotas(team: string): Promise<TeamQuotas> {
    return this.json<TeamQuotas>({ method: 'GET', path: `${teamPath(team)}/quotas` });
  }

  /** Platform admins: the team's own limits (null: back to the server's default). */
  setQuotas(team: string, update: QuotaUpdate): Promise<TeamQuotas> {
    return this.json<TeamQuotas>({ method: 'PATCH', path: `${teamPath(team)}/quotas`, json: update });
  }

  getApp(name: string): Promise<App> {
    return this.json<App>({ method: 'GET', path: appPath(name) });
  }

  updateApp(name: string, update: AppUpdate): Promise<App> {
    return this.json<App>({ method: 'PATCH', path: appPath(name), json: update });
  }

  /** Stops the app's processes now; its route stays, and the first request to it wakes it. */
  async sleepApp(name: string): Promise<App> {
    const body = await this.json<{ app: App }>({ method: 'POST', path: `${appPath(name)}/sleep` });
    return body.app;
  }

  /** Starts a sleeping app's processes; answers at once, the app is running once they are up. */
  async wakeApp(name: string): Promise<App> {
    const body = await this.json<{ app: App }>({ method: 'POST', path: `${appPath(name)}/wake` });
    return body.app;
  }

  /** Renews an experiment for `period` (90d, 2w, 12h; default: the server's lifecycle.defaultDays). */
  renewApp(name: string, period?: string): Promise<Renewal> {
    return this.json<Renewal>({
      method: 'POST',
      path: `${appPath(name)}/renew`,
      json: period === undefined ? {} : { for: period },
    });
  }

  /** Who may reach the app: its audience and the people on its list (issue 15). */
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

  /** `links`: `print` answers each invitee's personal link; `send` also mails it to them. */
  inviteToAudience(
    name: string,
    emails: string[],
    links: 'none' | 'print' | 'send' = 'none',
  ): Promise<Audience> {
    return this.json<Audience>({
      method: 'POST',
      path: `${appPath(name)}/audience/invitees`,
      json:
        links === 'send' ? { emails, send: true } : links === 'print' ? { emails, link: true } : { emails },
    });
  }

  removeFromAudience(name: string, email: string): Promise<Audience> {
    return this.json<Audience>({
      method: 'DELETE',
      path: `${appPath(name)}/audience/invitees/${encodeURIComponent(email)}`,
    });
  }

  async audienceLinks(name: string): Promise<AudienceLink[]> {
    return (await this.json<AudienceLinkList>({ method: 'GET', path: `${appPath(name)}/audience/links` }))
      .links;
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

  /** `confirm` must repeat the name: the server refuses a delete that does not. */
  async destroyApp(name: string, confirm: string): Promise<void> {
    await this.json<unknown>({ method: 'DELETE', path: appPath(name), query: { confirm } });
  }

  /** Uploads a gzip tar of the app's source and starts a deploy; it runs on the server. */
  async deploy(appName: string, archive: DeployBody, options: { noCache?: boolean } = {}): Promise<Deploy> {
    const body = await this.json<{ deploy: Deploy }>({
      method: 'POST',
      path: `${appPath(appName)}/deploys`,
      query: { noCache: options.noCache ? 'true' : undefined },
      body: archive,
      contentType: 'application/gzip',
    });
    return body.deploy;
  }

  /** The app's latest deploys (builds), newest first. */
  async listDeploys(appName: string): Promise<Deploy[]> {
    return (await this.json<{ deploys: Deploy[] }>({ method: 'GET', path: `${appPath(appName)}/deploys` }))
      .deploys;
  }

  async getDeploy(appName: string, id: string): Promise<Deploy> {
    const body = await this.json<{ deploy: Deploy }>({ method: 'GET', path: deployPath(appName, id) });
    return body.deploy;
  }

  /** Build and release output as it happens, then one `end` event with the final deploy. */
  streamDeploy(appName: string, id: string, options: StreamOptions = {}): AsyncGenerator<DeployEvent> {
    return this.ndjson<DeployEvent>({
      method: 'GET',
      path: `${deployPath(appName, id)}/stream`,
      signal: options.signal,
      stream: true,
    });
  }

  logs(appName: string, options: LogsOptions = {}): AsyncGenerator<LogLine> {
    return this.ndjson<LogLine>({
      method: 'GET',
      path: `${appPath(appName)}/logs`,
      query: {
        lines: options.lines === undefined ? undefined : String(options.lines),
        follow: options.follow ? 'true' : undefined,
      },
      signal: options.signal,
      stream: true,
    });
  }

  async getConfig(appName: string): Promise<ConfigVars> {
    const body = await this.json<{ config: ConfigVars }>({
      method: 'GET',
      path: `${appPath(appName)}/config`,
    });
    return body.config;
  }

  /** Sets and unsets config vars in one new release; it is pending until it serves or fails. */
  /** The new release, or null when the app has none yet (the next deploy takes the config). */
  async updateConfig(appName: string, change: ConfigChange): Promise<Release | null> {
    const body = await this.json<{ release: Release | null }>({
      method: 'PATCH',
      path: `${appPath(appName)}/config`,
      json: change,
    });
    return body.release;
  }

  /** Newest first. */
  async listReleases(appName: string): Promise<Release[]> {
    const body = await this.json<{ releases: Release[] }>({
      method: 'GET',
      path: `${appPath(appName)}/releases`,
    });
    return body.releases;
  }

  /** `version` like 'v3'. */
  async getRelease(appName: string, version: string): Promise<Release> {
    const body = await this.json<{ release: Release }>({
      method: 'GET',
      path: `${appPath(appName)}/releases/${encodeURIComponent(version)}`,
    });
    return body.release;
  }

  /** A new release with the slug and config of `version`, or of the release before the current one. */
  async rollback(appName: string, version?: string): Promise<Release> {
    const body = await this.json<{ release: Release }>({
      method: 'POST',
      path: `${appPath(appName)}/rollback`,
      json: version === undefined ? {} : { version },
    });
    return body.release;
  }

  /** The formation and every process, with its state and usage. */
  listProcesses(appName: string): Promise<ProcessList> {
    return this.json<ProcessList>({ method: 'GET', path: `${appPath(appName)}/ps` });
  }

  /** Changes the counts of the types given; answers with the whole new formation. */
  async updateFormation(appName: string, counts: Formation): Promise<Formation> {
    const body = await this.json<{ formation: Formation }>({
      method: 'PATCH',
      path: `${appPath(appName)}/formation`,
      json: counts,
    });
    return body.formation;
  }

  /** Restarts every process, or those of one type; answers with the names being restarted. */
  async restart(appName: string, type?: string): Promise<string[]> {
    const body = await this.json<{ restarting: string[] }>({
      method: 'POST',
      path: `${appPath(appName)}/restart`,
      json: type === undefined ? {} : { type },
    });
    return body.restarting;
  }

  /** The app's figures over a period (since: 1h, 24h, 7d ...). */
  appMetrics(appName: string, since?: string): Promise<AppMetrics> {
    return this.json<AppMetrics>({ method: 'GET', path: `${appPath(appName)}/metrics`, query: { since } });
  }

  /** The platform's promise, measured availability, incidents and public apps (public). */
  status(): Promise<PlatformStatus> {
    return this.json<PlatformStatus>({ method: 'GET', path: '/v1/status' });
  }

  /** Hosts the app declared, and every host it tried to reach. */
  async egress(appName: string): Promise<AppEgress> {
    return this.json<AppEgress>({ method: 'GET', path: `${appPath(appName)}/egress` });
  }

  /** The app's custom domains, their state and certificates, and what to set up in DNS. */
  domains(appName: string): Promise<AppDomainList> {
    return this.json<AppDomainList>({ method: 'GET', path: `${appPath(appName)}/domains` });
  }

  /** Claims a custom domain for the app (routed once verified). */
  addDomain(appName: string, host: string): Promise<DomainAdded> {
    return this.json<DomainAdded>({ method: 'POST', path: `${appPath(appName)}/domains`, json: { host } });
  }

  async removeDomain(appName: string, host: string): Promise<void> {
    await this.json<unknown>({
      method: 'DELETE',
      path: `${appPath(appName)}/domains/${encodeURIComponent(host)}`,
    });
  }

  /** Every app's egress attempts (admins). */
  async egressReport(): Promise<EgressAttempt[]> {
    return (await this.json<{ attempts: EgressAttempt[] }>({ method: 'GET', path: '/v1/egress/report' }))
      .attempts;
  }

  /** The same report as CSV, as the server writes it. */
  async egressReportCsv(): Promise<string> {
    const res = await this.send({ method: 'GET', path: '/v1/egress/report', query: { format: 'csv' } });
    const text = await readText(res.body);
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, text, this.url);
    return text;
  }

  /** What the app sent through the mail relay, its limits and last messages. */
  mail(appName: string): Promise<AppMail> {
    return this.json<AppMail>({ method: 'GET', path: `${appPath(appName)}/mail` });
  }

  /** One message of the app: deliveries, and the text in capture mode. */
  mailMessage(appName: string, id: string): Promise<MailMessageDetail> {
    return this.json<MailMessageDetail>({
      method: 'GET',
      path: `${appPath(appName)}/mail/${encodeURIComponent(id)}`,
    });
  }

  /** New mail credentials for the app. */
  mailRotate(appName: string): Promise<MailRotated> {
    return this.json<MailRotated>({ method: 'POST', path: `${appPath(appName)}/mail/rotate` });
  }

  /** An admin's mail limits of the app (null: the default), or the end of a pause. */
  mailLimits(appName: string, change: MailLimitsChange): Promise<AppMail> {
    return this.json<AppMail>({ method: 'PATCH', path: `${appPath(appName)}/mail/limits`, json: change });
  }

  /** Every app's mail over 30 days (admins, auditors). */
  async mailReport(): Promise<MailReportRow[]> {
    return (await this.json<{ apps: MailReportRow[] }>({ method: 'GET', path: '/v1/mail/report' })).apps;
  }

  async mailReportCsv(): Promise<string> {
    const res = await this.send({ method: 'GET', path: '/v1/mail/report', query: { format: 'csv' } });
    const text = await readText(res.body);
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, text, this.url);
    return text;
  }

  /** The mail domain's DNS records (DKIM, SPF, DMARC). */
  mailDns(): Promise<MailDns> {
    return this.json<MailDns>({ method: 'GET', path: '/v1/mail/dns' });
  }

  /** Installed runtimes (Node.js versions) and which of the caller's apps run on each. */
  stacks(): Promise<Stacks> {
    return this.json<Stacks>({ method: 'GET', path: '/v1/stacks' });
  }

  /** The app's add-ons with their size and open connections, and the types this server offers. */
  listAddons(appName: string): Promise<AddonList> {
    return this.json<AddonList>({ method: 'GET', path: `${appPath(appName)}/addons` });
  }

  /** Provisions a database for the app; its URL arrives in a new release (null before the first deploy). */
  createAddon(appName: string, input: { type: string; as?: string }): Promise<AddonChange> {
    return this.json<AddonChange>({ method: 'POST', path: `${appPath(appName)}/addons`, json: input });
  }

  /** One add-on, its backup count and last backup, and the command `petri addons shell` runs. */
  getAddon(appName: string, name: string): Promise<AddonDetail> {
    return this.json<AddonDetail>({ method: 'GET', path: addonPath(appName, name) });
  }

  /** `confirm` must repeat the name. A final backup is taken first; the config var goes in a new release. */
  destroyAddon(appName: string, name: string, confirm: string): Promise<AddonDestroyed> {
    return this.json<AddonDestroyed>({
      method: 'DELETE',
      path: addonPath(appName, name),
      query: { confirm },
      slow: true,
    });
  }

  /** A new password in a new release; the old one is revoked once that release serves. */
  rotateAddon(appName: string, name: string): Promise<AddonChange> {
    return this.json<AddonChange>({ method: 'POST', path: `${addonPath(appName, name)}/rotate` });
  }

  /** Backs the add-on up now; answers once the backup has ended. */
  async backupAddon(appName: string, name: string): Promise<AddonBackup> {
    const body = await this.json<{ backup: AddonBackup }>({
      method: 'POST',
      path: `${addonPath(appName, name)}/backups`,
      slow: true,
    });
    return body.backup;
  }

  /** Newest first. */
  async listAddonBackups(appName: string, name: string): Promise<AddonBackup[]> {
    const body = await this.json<{ backups: AddonBackup[] }>({
      method: 'GET',
      path: `${addonPath(appName, name)}/backups`,
    });
    return body.backups;
  }

  /** Replaces the add-on's data with backup `backupId` (b12); the data before goes in a backup first. */
  restoreAddon(appName: string, name: string, backupId: string): Promise<AddonRestore> {
    return this.json<AddonRestore>({
      method: 'POST',
      path: `${addonPath(appName, name)}/restore`,
      json: { backup: backupId },
      slow: true,
    });
  }

  /**
   * A backup's dump as it arrives (never held whole in memory). With the app and add-on: one
   * of its backups; with neither: any backup, through the admins' route.
   */
  async downloadBackup(
    appName: string | undefined,
    name: string | undefined,
    backupId: string,
    options: StreamOptions = {},
  ): Promise<Readable> {
    const id = encodeURIComponent(backupId);
    const path =
      appName !== undefined && name !== undefined
        ? `${addonPath(appName, name)}/backups/${id}/download`
        : `/v1/addon-backups/${id}/download`;
    const res = await this.send({ method: 'GET', path, signal: options.signal });
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, await readText(res.body), this.url);
    return res.body;
  }

  /**
   * Moves the app to the graduating stage and answers its handoff bundle (a tar.gz) as it
   * arrives, with what the answer's headers say of it. Slow to start: every add-on is backed
   * up first.
   */
  async graduate(appName: string, options: StreamOptions = {}): Promise<GraduationDownload> {
    const res = await this.send({
      method: 'POST',
      path: `${appPath(appName)}/graduate`,
      signal: options.signal,
      slow: true,
    });
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, await readText(res.body), this.url);
    const header = (name: string): string => {
      const value = res.headers[name];
      return (Array.isArray(value) ? value[0] : value) ?? '';
    };
    // A plain file name only: the CLI writes it in the current directory.
    const filename =
      /filename="([A-Za-z0-9][A-Za-z0-9._-]*)"/.exec(header('content-disposition'))?.[1] ??
      `${appName}-handoff.tar.gz`;
    return {
      body: res.body,
      filename,
      release: header(GRADUATION_HEADERS.release),
      stage: header(GRADUATION_HEADERS.stage),
      backups: header(GRADUATION_HEADERS.backups),
    };
  }

  /** Every backup of every add-on, destroyed ones included (admins). */
  async listAllBackups(): Promise<AddonBackup[]> {
    return (await this.json<{ backups: AddonBackup[] }>({ method: 'GET', path: '/v1/addon-backups' }))
      .backups;
  }

  /** Each add-on engine's server, its mode and whether it answers (admins and auditors). */
  async addonServers(): Promise<AddonServer[]> {
    return (await this.json<AddonServerList>({ method: 'GET', path: '/v1/addon-servers' })).servers;
  }

  /** The audit trail as the caller may see it, newest first; `next` is the `before` of the next page. */
  audit(filters: AuditFilters = {}): Promise<AuditList> {
    const query = Object.fromEntries(
      Object.entries(filters).flatMap(([key, value]) => (value === undefined ? [] : [[key, String(value)]])),
    );
    return this.json<AuditList>({ method: 'GET', path: '/v1/audit', query });
  }

  /** Checks the audit trail's hash chain from its first event (admins and auditors). */
  verifyAudit(): Promise<AuditVerification> {
    return this.json<AuditVerification>({ method: 'GET', path: '/v1/audit/verify', slow: true });
  }

  /** The router's certificates: source, issuer, expiry, last attempt (admins and auditors). */
  certificates(): Promise<CertificateList> {
    return this.json<CertificateList>({ method: 'GET', path: '/v1/certs' });
  }

  /** Single sign-on in a browser, first half: the provider's page to open (no token needed). */
  oidcStart(input: OidcStartBody): Promise<OidcStart> {
    return this.json<OidcStart>({ method: 'POST', path: '/v1/auth/oidc/start', json: input });
  }

  /** Single sign-on in a browser, second half: the redirect's code for a session token. */
  oidcFinish(input: OidcFinishBody): Promise<SignedIn> {
    return this.json<SignedIn>({ method: 'POST', path: '/v1/auth/oidc/finish', json: input });
  }

  /** Single sign-on from a device without a browser: the code to type at the provider. */
  deviceStart(input: DeviceStartBody): Promise<DeviceStart> {
    return this.json<DeviceStart>({ method: 'POST', path: '/v1/auth/device/start', json: input });
  }

  /** Whether the device sign-in is done: pending, or the session token. */
  devicePoll(input: DevicePollBody): Promise<DevicePoll> {
    return this.json<DevicePoll>({ method: 'POST', path: '/v1/auth/device/poll', json: input });
  }

  /** The ways of signing in this server offers (no token needed). */
  authProviders(): Promise<AuthProviders> {
    return this.json<AuthProviders>({ method: 'GET', path: '/v1/auth/providers' });
  }

  /** Signs in with an LDAP user name and password: a session token. */
  signInWithLdap(username: string, password: string): Promise<SignedIn> {
    return this.json<SignedIn>({ method: 'POST', path: '/v1/auth/ldap', json: { username, password } });
  }

  /** Signs in to a local account with its e-mail and password: a session token. */
  signInWithPassword(email: string, password: string): Promise<SignedIn> {
    return this.json<SignedIn>({ method: 'POST', path: '/v1/auth/password', json: { email, password } });
  }

  /** Makes the invited local account with this password (an invitation works once): a session token. */
  acceptInvitation(invitation: string, password: string): Promise<SignedIn> {
    return this.json<SignedIn>({
      method: 'POST',
      path: '/v1/auth/invitations/accept',
      json: { invitation, password },
    });
  }

  /** A local account's new password; the account's other sessions end. */
  changePassword(current: string, next: string): Promise<PasswordChanged> {
    return this.json<PasswordChanged>({
      method: 'POST',
      path: '/v1/auth/password/change',
      json: { current, new: next },
    });
  }

  private async json<T>(call: Call): Promise<T> {
    const res = await this.send(call);
    const text = await readText(res.body);
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, text, this.url);
    if (text === '') return undefined as T; // 204 No Content: callers expecting it return void
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new ApiError(res.statusCode, 'bad_response', `Petri at ${this.url} sent a body that is not JSON`);
    }
  }

  private async *ndjson<T>(call: Call): AsyncGenerator<T> {
    const res = await this.send(call);
    if (res.statusCode >= 400) throw apiErrorFrom(res.statusCode, await readText(res.body), this.url);
    try {
      yield* parseNdjson<T>(res.body);
    } catch (err) {
      if (call.signal?.aborted) return; // the caller stopped listening: not an error
      throw this.wrapNetworkError(err);
    } finally {
      // Reached on `break` too: close the connection rather than leave it streaming.
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  private async send(call: Call): Promise<Answer> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(call.query ?? {}))
      if (value !== undefined) query.set(key, value);
    const search = query.size > 0 ? `?${query}` : '';
    const headers: Record<string, string> = {
      // No token yet (signing in): no Authorization header at all.
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      accept: call.stream ? 'application/x-ndjson' : 'application/json',
      'user-agent': this.userAgent,
    };
    let body: string | Uint8Array | Readable | undefined;
    if (call.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(call.json);
    } else if (call.body !== undefined) {
      headers['content-type'] = call.contentType ?? 'application/octet-stream';
      body =
        call.body instanceof Uint8Array || call.body instanceof Readable
          ? call.body
          : Readable.from(call.body);
    }
    let res: Answer;
    try {
      res = await exchange({
        method: call.method,
        url: `${this.url}${call.path}${search}`,
        headers,
        body,
        signal: call.signal,
        headersTimeoutMs: call.slow ? SLOW_CALL_MS : WAIT_MS,
        bodyTimeoutMs: call.stream ? 0 : WAIT_MS,
      });
    } catch (err) {
      throw this.wrapNetworkError(err);
    }
    const warning = res.headers['petri-warning'];
    if (this.onWarning && warning) this.onWarning(Array.isArray(warning) ? warning.join('; ') : warning);
    return res;
  }

  private wrapNetworkError(err: unknown): unknown {
    const code = networkErrorCode(err);
    return code ? new ConnectionError(this.url, code, { cause: err }) : err;
  }
}

function userPath(who: string): string {
  return `/v1/users/${encodeURIComponent(who)}`;
}

function teamPath(name: string): string {
  return `/v1/teams/${encodeURIComponent(name)}`;
}

function appPath(name: string): string {
  return `/v1/apps/${encodeURIComponent(name)}`;
}

function addonPath(appName: string, name: string): string {
  return `${appPath(appName)}/addons/${encodeURIComponent(name)}`;
}

function deployPath(appName: string, id: string): string {
  return `${appPath(appName)}/deploys/${encodeURIComponent(id)}`;
}
