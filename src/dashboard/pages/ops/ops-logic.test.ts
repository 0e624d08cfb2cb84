import { describe, expect, test } from 'vitest';
import {
  auditFilters,
  durationText,
  EMPTY_AUDIT_DRAFT,
  formatMiB,
  keepsPromise,
  opsAccess,
  opsHref,
  parseOpsPath,
  parseQuota,
  percent,
  plain,
  quotaUpdate,
} from './ops-logic.js';

describe('parseOpsPath and opsHref', () => {
  test('each section, the audit log by default, a team by name', () => {
    expect(parseOpsPath('/ops')).toEqual({ section: 'audit' });
    expect(parseOpsPath('/ops/')).toEqual({ section: 'audit' });
    expect(parseOpsPath('/ops/quotas')).toEqual({ section: 'quotas' });
    expect(parseOpsPath('/ops/teams/lab%20x')).toEqual({ section: 'teams', team: 'lab x' });
    expect(opsHref('teams', 'lab x')).toBe('/ops/teams/lab%20x');
    expect(opsHref('audit')).toBe('/ops');
    expect(opsHref('status')).toBe('/ops/status');
  });

  test('anything else is missing', () => {
    expect(parseOpsPath('/ops/nothing')).toEqual({ section: 'missing' });
    expect(parseOpsPath('/ops/users/ada')).toEqual({ section: 'missing' });
    expect(parseOpsPath('/ops/teams/%E0%A4%A')).toEqual({ section: 'missing' });
    expect(parseOpsPath('/opsx')).toEqual({ section: 'missing' });
  });
});

test('admins change, auditors read, members and the unknown nothing', () => {
  expect(opsAccess('admin')).toBe('change');
  expect(opsAccess('auditor')).toBe('read');
  expect(opsAccess('member')).toBe('none');
  expect(opsAccess(undefined)).toBe('none');
});

test('the audit form: blank fields left out, an unknown outcome ignored', () => {
  expect(auditFilters(EMPTY_AUDIT_DRAFT, 50)).toEqual({ limit: 50 });
  expect(
    auditFilters({ user: ' ada@example.org ', app: 'shop', action: '', since: '7d', outcome: 'denied' }, 50),
  ).toEqual({ limit: 50, user: 'ada@example.org', app: 'shop', since: '7d', outcome: 'denied' });
  expect(auditFilters({ ...EMPTY_AUDIT_DRAFT, outcome: 'maybe' }, 10)).toEqual({ limit: 10 });
});

test('control characters and bidirectional overrides are shown, not obeyed', () => {
  expect(plain('ada\u202Egro.elpmaxe')).toBe('ada\\u202egro.elpmaxe');
  expect(plain('line\nforged')).toBe('line\\u000aforged');
  expect(plain('config.change')).toBe('config.change');
});

describe('quotas as typed', () => {
  test('counts, sizes, default and blank', () => {
    expect(parseQuota('20', 'count')).toEqual({ value: 20 });
    expect(parseQuota(' default ', 'count')).toEqual({ value: null });
    expect(parseQuota('', 'memory')).toEqual({ value: undefined });
    expect(parseQuota('8G', 'memory')).toEqual({ value: 8192 });
    expect(parseQuota('1.5 GiB', 'memory')).toEqual({ value: 1536 });
    expect(parseQuota('512', 'memory')).toEqual({ value: 512 });
    expect(parseQuota('-1', 'count')).toHaveProperty('error');
    expect(parseQuota('lots', 'memory')).toHaveProperty('error');
  });

  test('the form: what changes, or what to fix', () => {
    expect(quotaUpdate({ apps: '30', memory: '', addons: 'default' })).toEqual({
      update: { apps: 30, addons: null },
    });
    expect(quotaUpdate({ apps: '', memory: '12G', addons: '' })).toEqual({ update: { memoryMiB: 12288 } });
    expect(quotaUpdate({ apps: 'x', memory: '', addons: '' })).toEqual({
      error: "Apps: a whole number like 20, or default; got 'x'",
    });
    expect(quotaUpdate({ apps: '', memory: '', addons: '' })).toHaveProperty('error');
  });

  test('memory reads as people say it', () => {
    expect(formatMiB(512)).toBe('512 MiB');
    expect(formatMiB(8192)).toBe('8 GiB');
    expect(formatMiB(7680)).toBe('7.5 GiB');
  });
});

test('availability against the promise', () => {
  expect(percent(0.99987)).toBe('99.98%');
  expect(percent(1)).toBe('100.00%');
  expect(percent(null)).toBe('not measured');
  expect(keepsPromise(0.95, 0.9)).toBe(true);
  expect(keepsPromise(0.85, 0.9)).toBe(false);
  expect(keepsPromise(null, 0.9)).toBe(null);
});

test('an incident lasts', () => {
  expect(durationText(42)).toBe('42 s');
  expect(durationText(3720)).toBe('1 h 2 min');
  expect(durationText(3600)).toBe('1 h');
  expect(durationText(90_000)).toBe('1 d 1 h');
  expect(durationText(86_400 + 120)).toBe('1 d');
});
