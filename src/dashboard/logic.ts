// What the dashboard's pages decide by themselves, without React: an app's row on the Apps
// page (from GET /v1/apps and GET /v1/inventory), its filters, when an expiry is close, how
// a time reads, and the commands that deploy a new app. Tested in logic.test.ts.
import type { App, EgressAttempt, InventoryRow, MetricsPoint } from '../client/types.js';

/** An expiry inside this many days is highlighted. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

export type RowStatus = App['status'] | 'expired';

export interface AppRow {
  name: string;
  team: string;
  description: string;
  status: RowStatus;
  stage: string;
  dataClass: string;
  audience: string | null;
  expiresAt: string | null;
  /** Expires within EXPIRY_WARNING_DAYS (and has not yet). */
  expiresSoon: boolean;
  lastDeployAt: string | null;
  release: string | null;
  /** Requests per hour over the last 24 hours (the inventory's), null until it is read. */
  requests24h: number[] | null;
}

/** One row per app of `apps`, with what only the inventory says (audience, last deploy). */
export function appRows(apps: App[], inventory: InventoryRow[] | undefined, now: number): AppRow[] {
  const byName = new Map((inventory ?? []).map((row) => [row.name, row]));
  return apps.map((app) => {
    const inv = byName.get(app.name);
    const { experiment } = app;
    return {
      name: app.name,
      team: app.team,
      description: experiment.description,
      status: experiment.expiredAt ? 'expired' : app.status,
      stage: experiment.stage,
      dataClass: experiment.dataClass,
      audience: inv?.audience ?? null,
      expiresAt: experiment.expiresAt,
      expiresSoon: expiresSoon(experiment.expiresAt, now),
      lastDeployAt: inv?.lastDeployAt ?? null,
      release: app.release,
      requests24h: inv?.requests24h ?? null,
    };
  });
}

export function expiresSoon(expiresAt: string | null, now: number): boolean {
  if (!expiresAt) return false;
  const left = Date.parse(expiresAt) - now;
  return left > 0 && left <= EXPIRY_WARNING_DAYS * DAY_MS;
}

export interface AppFilter {
  /** Words that must all appear in the name, team or description (any case). */
  search: string;
  status: RowStatus | '';
  team: string;
  expiringOnly: boolean;
}

export const NO_FILTER: AppFilter = { search: '', status: '', team: '', expiringOnly: false };

export function filterRows(rows: AppRow[], filter: AppFilter): AppRow[] {
  const words = filter.search.toLowerCase().split(/\s+/).filter(Boolean);
  return rows.filter((row) => {
    if (filter.status && row.status !== filter.status) return false;
    if (filter.team && row.team !== filter.team) return false;
    if (filter.expiringOnly && !row.expiresSoon) return false;
    if (words.length === 0) return true;
    const haystack = `${row.name} ${row.team} ${row.description}`.toLowerCase();
    return words.every((word) => haystack.includes(word));
  });
}

/** "in 3 days", "5 hours ago", "just now": for a time shown beside its exact date. */
export function relativeTime(iso: string | null, now: number): string {
  if (!iso) return '—';
  const ms = Date.parse(iso) - now;
  if (Number.isNaN(ms)) return iso;
  const abs = Math.abs(ms);
  if (abs < 60_000) return 'just now';
  const [value, unit] =
    abs < 3_600_000
      ? [Math.round(abs / 60_000), 'minute']
      : abs < DAY_MS
        ? [Math.round(abs / 3_600_000), 'hour']
        : [Math.round(abs / DAY_MS), 'day'];
  const text = `${value} ${unit}${value === 1 ? '' : 's'}`;
  return ms > 0 ? `in ${text}` : `${text} ago`;
}

/** 2026-12-02 16:20 UTC: the exact time, the same for everyone reading it. */
export function exactTime(iso: string | null): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** What to type, once the app exists, to deploy it from a directory or with git. */
export function deployCommands(app: string, apiUrl: string): { title: string; lines: string[] }[] {
  return [
    { title: 'Sign the CLI in (once)', lines: [`petri login --url ${apiUrl}`] },
    { title: 'Deploy a directory', lines: [`petri deploy ./${app} --app ${app}`] },
    {
      title: 'Or push with git, in your repository',
      lines: [`petri git remote --app ${app}`, 'git push petri main'],
    },
  ];
}

/** Where to send someone who is not signed in, so that they come back here afterwards. */
export function loginUrl(location: { pathname: string; search: string }): string {
  return `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

/** The config keys in order, each with its value once revealed. */
export function configEntries(
  config: Record<string, string>,
  revealed: ReadonlySet<string>,
): { key: string; shown: string | null }[] {
  return Object.keys(config)
    .sort()
    .map((key) => ({ key, shown: revealed.has(key) ? (config[key] ?? '') : null }));
}

/** A config key as the server takes it: letters, digits and underscores, not starting with a digit. */
export function configKeyError(key: string): string | null {
  if (key === '') return 'Enter a key, e.g. DATABASE_URL';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
    return 'A key has letters, digits and underscores only, and does not start with a digit';
  return null;
}

/**
 * Whether the person may change the app (app.write: deploy, config, rollback, renew): platform
 * admins, and the members and admins of its team. Viewers and auditors read only, so the
 * pages show them no buttons the API would refuse (it refuses them all the same).
 */
export function mayChange(
  user: { role: string; teams: readonly { name: string; role: string }[] } | undefined,
  team: string,
): boolean {
  if (!user) return false;
  if (user.role === 'admin') return true;
  const role = user.teams.find((t) => t.name === team)?.role;
  return role === 'member' || role === 'admin';
}

/** Whether the person may destroy, transfer or graduate the app (app.admin): platform admins
 * and the admins of its team. */
export function mayAdminister(
  user: { role: string; teams: readonly { name: string; role: string }[] } | undefined,
  team: string,
): boolean {
  if (!user) return false;
  return user.role === 'admin' || user.teams.find((t) => t.name === team)?.role === 'admin';
}

/** A sparkline's polyline points in a width x height box: the highest value touches the top,
 * zero the bottom (a line of zeros lies flat on it). */
export function sparklinePoints(values: readonly number[], width: number, height: number): string {
  if (values.length === 0) return '';
  const top = Math.max(...values, 0);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const y = (v: number) => (top === 0 ? height - 1 : 1 + (height - 2) * (1 - v / top));
  return values.map((v, i) => `${round1(i * step)},${round1(y(v))}`).join(' ');
}

/** The sparkline as an image (an SVG data: URL, which the CSP's img-src allows): a thousand
 * rows draw a thousand images much faster than a thousand inline SVG trees. */
export function sparklineImage(values: readonly number[], width: number, height: number): string {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><polyline fill="none" stroke="#0b5cad" stroke-width="1.5" points="${sparklinePoints(values, width, height)}"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

const UNITS: [string, number][] = [
  ['d', 86_400],
  ['h', 3_600],
  ['m', 60],
  ['s', 1],
];

/** 90 -> "90s", 1800 -> "30m", 7200 -> "2h", null -> "never": as parseDuration reads it back. */
export function formatDuration(seconds: number | null): string {
  if (seconds === null) return 'never';
  for (const [unit, size] of UNITS)
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

/** "30m", "2h", "1d", "90s" or "90" (seconds) to seconds; "never" to null; else what to type. */
export function parseDuration(text: string): { seconds: number | null } | { error: string } {
  const value = text.trim().toLowerCase();
  if (value === 'never') return { seconds: null };
  const match = /^(\d{1,7})\s*([dhms]?)$/.exec(value);
  const size = UNITS.find(([unit]) => unit === (match?.[2] || 's'))?.[1];
  if (!match || size === undefined || Number(match[1]) === 0)
    return { error: `Enter a period like 30m, 2h or 1d, or never; got '${text.slice(0, 20)}'` };
  return { seconds: Number(match[1]) * size };
}

export interface EgressHost {
  /** host:port */
  target: string;
  declared: boolean;
  allowed: number;
  refused: number;
  lastSeen: string | null;
  lastReason: string | null;
}

/** Whether a declared pattern (api.example.org:443, *.example.net:443) covers host:port. */
function covers(pattern: string, target: string): boolean {
  const at = pattern.lastIndexOf(':');
  const [host, port] = at < 0 ? [pattern, '*'] : [pattern.slice(0, at), pattern.slice(at + 1)];
  const tat = target.lastIndexOf(':');
  const [thost, tport] = [target.slice(0, tat), target.slice(tat + 1)];
  if (port !== '*' && port !== tport) return false;
  if (host.startsWith('*.')) return thost.endsWith(host.slice(1)) && thost.length > host.length - 1;
  return host.toLowerCase() === thost.toLowerCase();
}

/** Each host attempted (allowed and refused counts, last seen, whether declared), most recent
 * first, then the declared patterns nothing attempted yet. */
export function egressHosts(
  declared: readonly string[],
  attempts: readonly EgressAttempt[],
): { hosts: EgressHost[]; unused: string[] } {
  const byTarget = new Map<string, EgressHost>();
  for (const a of attempts) {
    const target = `${a.host}:${a.port}`;
    const row = byTarget.get(target) ?? {
      target,
      declared: declared.some((d) => covers(d, target)),
      allowed: 0,
      refused: 0,
      lastSeen: null,
      lastReason: null,
    };
    if (a.allowed) row.allowed += a.count;
    else row.refused += a.count;
    if (!row.lastSeen || a.lastSeen > row.lastSeen) row.lastSeen = a.lastSeen;
    if (!a.allowed && a.lastReason) row.lastReason = a.lastReason;
    byTarget.set(target, row);
  }
  const hosts = [...byTarget.values()].sort((a, b) => (b.lastSeen ?? '').localeCompare(a.lastSeen ?? ''));
  const unused = declared.filter((d) => !hosts.some((h) => covers(d, h.target)));
  return { hosts, unused };
}

/** What a restore replaces, said before it is done: the add-on, its engine, the backup's time. */
export function restoreQuestion(
  addon: { name: string; type: string },
  backup: { id: string; createdAt: string },
): string {
  return `Replace all the data of ${addon.name} (${addon.type}) with backup ${backup.id}, taken ${exactTime(backup.createdAt)}? What ${addon.name} holds now is backed up first.`;
}

/** A visitor as a person reads it: their e-mail, or "invite link 3" for one who came by link. */
export function visitorName(visitor: string): string {
  const link = /^invite:(\d+)$/.exec(visitor);
  return link ? `invite link ${link[1]}` : visitor;
}

/** The addresses typed in one field, split on commas, spaces and new lines. */
export function emailList(text: string): string[] {
  return [...new Set(text.split(/[\s,;]+/).filter(Boolean))];
}

/** A process's memory as read beside its limit: "120 MiB of 512 MiB" and the share (0-100). */
export function memoryShare(
  bytes: number | null,
  limitMiB: number,
): { text: string; percent: number } | null {
  if (bytes === null || limitMiB <= 0) return null;
  const mib = bytes / 1_048_576;
  const percent = Math.min(100, Math.round((mib / limitMiB) * 100));
  return { text: `${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB of ${limitMiB} MiB`, percent };
}

/** The metrics' points as uPlot's columns: x in Unix seconds, one array per line. */
export function series(points: MetricsPoint[]) {
  return {
    x: points.map((p) => Date.parse(p.at) / 1000),
    s2xx: points.map((p) => p.s2xx),
    s3xx: points.map((p) => p.s3xx),
    s4xx: points.map((p) => p.s4xx),
    s5xx: points.map((p) => p.s5xx),
    p50: points.map((p) => p.p50Ms),
    p95: points.map((p) => p.p95Ms),
    p99: points.map((p) => p.p99Ms),
    memoryMiB: points.map((p) => Math.round((p.memoryMaxBytes / 1_048_576) * 10) / 10),
    cpuMs: points.map((p) => p.cpuMs),
  };
}

/** petri-inventory-2026-12-02.csv */
export function csvFileName(now: number): string {
  return `petri-inventory-${new Date(now).toISOString().slice(0, 10)}.csv`;
}
