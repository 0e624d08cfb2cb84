// What the operators' pages decide by themselves, without React: which page a path under
// /ops names, who may see and change them, the audit trail's filters and pages, a quota
// typed by a person, availability against the promise, an incident's duration, and text from
// the trail shown without its control characters. Tested in ops-logic.test.ts.
import type { AuditFilters, QuotaUpdate } from '../../../client/types.js';

export const OPS_SECTIONS = ['audit', 'users', 'teams', 'quotas', 'addons', 'status'] as const;
export type OpsSection = (typeof OPS_SECTIONS)[number];

export const SECTION_NAMES: Record<OpsSection, string> = {
  audit: 'Audit log',
  users: 'Users',
  teams: 'Teams',
  quotas: 'Quotas',
  addons: 'Add-on servers',
  status: 'Status',
};

export type OpsRoute = { section: OpsSection; team?: string } | { section: 'missing' };

/** /ops (the audit log), /ops/SECTION, /ops/teams/NAME. */
export function parseOpsPath(pathname: string): OpsRoute {
  const match = /^\/ops(?:\/([a-z]+)(?:\/([^/]+))?)?\/?$/.exec(pathname);
  if (!match) return { section: 'missing' };
  const section = (match[1] ?? 'audit') as OpsSection;
  if (!OPS_SECTIONS.includes(section)) return { section: 'missing' };
  if (match[2] === undefined) return { section };
  if (section !== 'teams') return { section: 'missing' };
  try {
    return { section, team: decodeURIComponent(match[2]) };
  } catch {
    return { section: 'missing' };
  }
}

export function opsHref(section: OpsSection, team?: string): string {
  if (team !== undefined) return `/ops/teams/${encodeURIComponent(team)}`;
  return section === 'audit' ? '/ops' : `/ops/${section}`;
}

/** Admins and auditors read the operators' pages; only admins change anything there. */
export function opsAccess(role: string | undefined): 'change' | 'read' | 'none' {
  if (role === 'admin') return 'change';
  if (role === 'auditor') return 'read';
  return 'none';
}

/** What the audit log's form holds: text as typed. */
export interface AuditDraft {
  user: string;
  app: string;
  action: string;
  since: string;
  outcome: string;
}

export const EMPTY_AUDIT_DRAFT: AuditDraft = { user: '', app: '', action: '', since: '', outcome: '' };

/** The form's filters as GET /v1/audit takes them (blank fields left out), one page of `limit`. */
export function auditFilters(draft: AuditDraft, limit: number): AuditFilters {
  const filters: AuditFilters = { limit };
  for (const key of ['user', 'app', 'action', 'since'] as const) {
    const value = draft[key].trim();
    if (value !== '') filters[key] = value;
  }
  if (draft.outcome === 'ok' || draft.outcome === 'denied' || draft.outcome === 'failed')
    filters.outcome = draft.outcome;
  return filters;
}

/** Text anyone could have put in the trail (a name tried at sign-in, a path) with its control
 * characters and bidirectional overrides shown as \uXXXX: they must not disguise a row. */
export function plain(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** 512 MiB, 8 GiB, 7.5 GiB. */
export function formatMiB(mib: number): string {
  if (mib < 1024) return `${mib} MiB`;
  const gib = mib / 1024;
  return `${Number.isInteger(gib) ? gib : gib.toFixed(1)} GiB`;
}

const MEMORY_UNITS: Record<string, number> = { '': 1, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024 };

/** One quota as typed: blank leaves it, 'default' puts the server's back, else a number
 * (memory: 512, 512M, 8G). */
export function parseQuota(
  text: string,
  kind: 'count' | 'memory',
): { value: number | null | undefined } | { error: string } {
  const value = text.trim().toLowerCase();
  if (value === '') return { value: undefined };
  if (value === 'default') return { value: null };
  if (kind === 'count') {
    if (/^\d{1,9}$/.test(value)) return { value: Number(value) };
    return { error: `a whole number like 20, or default; got '${text.slice(0, 20)}'` };
  }
  const match = /^(\d{1,9}(?:\.\d+)?)\s*([a-z]*)$/.exec(value);
  const factor = match ? MEMORY_UNITS[match[2]!] : undefined;
  if (!match || factor === undefined)
    return { error: `a size like 512M or 8G, or default; got '${text.slice(0, 20)}'` };
  return { value: Math.round(Number(match[1]) * factor) };
}

/** The quotas form's three fields as PATCH /v1/teams/NAME/quotas takes them, or what to fix. */
export function quotaUpdate(draft: {
  apps: string;
  memory: string;
  addons: string;
}): { update: QuotaUpdate } | { error: string } {
  const update: QuotaUpdate = {};
  const fields = [
    ['apps', 'Apps', 'count'],
    ['memoryMiB', 'Memory', 'memory'],
    ['addons', 'Add-ons', 'count'],
  ] as const;
  for (const [key, label, kind] of fields) {
    const parsed = parseQuota(draft[key === 'memoryMiB' ? 'memory' : key], kind);
    if ('error' in parsed) return { error: `${label}: ${parsed.error}` };
    if (parsed.value !== undefined) update[key] = parsed.value;
  }
  if (Object.keys(update).length === 0) return { error: 'Type a new limit in at least one field' };
  return { update };
}

/** 0.9987 -> "99.87%"; null: nothing measured. */
export function percent(share: number | null): string {
  if (share === null) return 'not measured';
  return `${(Math.floor(share * 10_000) / 100).toFixed(2)}%`;
}

/** Whether a measured share keeps the promise (target: 0.9 for "one 9"); null: not measured. */
export function keepsPromise(share: number | null, target: number): boolean | null {
  return share === null ? null : share >= target;
}

/** 42 -> "42 s", 3720 -> "1 h 2 min", 90000 -> "1 d 1 h". */
export function durationText(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  const units: [string, number][] = [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
  ];
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || parts.length > 0) parts.push(`${n} ${unit}`);
    rest -= n * size;
    if (parts.length === 2) break;
  }
  return parts.filter((p) => !p.startsWith('0 ')).join(' ');
}
