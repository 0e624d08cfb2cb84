import { describe, expect, it } from 'vitest';
import type { App, InventoryRow } from '../client/types.js';
import {
  appRows,
  configEntries,
  configKeyError,
  deployCommands,
  egressHosts,
  emailList,
  expiresSoon,
  filterRows,
  formatDuration,
  loginUrl,
  mayAdminister,
  mayChange,
  memoryShare,
  NO_FILTER,
  parseDuration,
  relativeTime,
  restoreQuestion,
  series,
  sparklineImage,
  sparklinePoints,
  visitorName,
} from './logic.js';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const DAY = 86_400_000;

function app(name: string, over: Partial<App> = {}, experiment: Partial<App['experiment']> = {}): App {
  return {
    name,
    url: `http://${name}.petri.localhost`,
    owner: 'ada@example.org',
    team: 'lab',
    createdAt: '2026-11-01T00:00:00Z',
    status: 'running',
    sleepingSince: null,
    release: 'v1',
    limits: { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 },
    settings: { bootTimeoutSeconds: 60, idleTimeoutSeconds: null },
    processes: [],
    experiment: {
      description: '',
      dataClass: 'none',
      privacyNote: null,
      retentionDays: null,
      approvedClass: null,
      awaitsReview: false,
      stage: 'experiment',
      expiresAt: new Date(NOW + 60 * DAY).toISOString(),
      expiredAt: null,
      archivedAt: null,
      redirectUrl: null,
      ...experiment,
    },
    ...over,
  };
}

describe('appRows', () => {
  it('takes the audience and last deploy from the inventory, and says expired over the status', () => {
    const rows = appRows(
      [app('shop'), app('old', { status: 'down' }, { expiredAt: '2026-11-30T00:00:00Z' })],
      [{ name: 'shop', audience: 'staff', lastDeployAt: '2026-12-01T00:00:00Z' } as InventoryRow],
      NOW,
    );
    expect(rows.map((r) => [r.name, r.status, r.audience, r.lastDeployAt])).toEqual([
      ['shop', 'running', 'staff', '2026-12-01T00:00:00Z'],
      ['old', 'expired', null, null],
    ]);
  });

  it('shows the apps without the inventory while it loads', () => {
    expect(appRows([app('shop')], undefined, NOW)[0]?.audience).toBeNull();
  });
});

describe('expiresSoon', () => {
  it('is true inside 14 days only, and not once past', () => {
    expect(expiresSoon(new Date(NOW + 13 * DAY).toISOString(), NOW)).toBe(true);
    expect(expiresSoon(new Date(NOW + 14 * DAY).toISOString(), NOW)).toBe(true);
    expect(expiresSoon(new Date(NOW + 15 * DAY).toISOString(), NOW)).toBe(false);
    expect(expiresSoon(new Date(NOW - DAY).toISOString(), NOW)).toBe(false);
    expect(expiresSoon(null, NOW)).toBe(false);
  });
});

describe('filterRows', () => {
  const rows = appRows(
    [
      app('shop', {}, { description: 'A Shop for Plants' }),
      app('blog', { team: 'press', status: 'sleeping' }),
      app('soon', {}, { expiresAt: new Date(NOW + 3 * DAY).toISOString() }),
    ],
    [],
    NOW,
  );
  const names = (filter: Partial<typeof NO_FILTER>) =>
    filterRows(rows, { ...NO_FILTER, ...filter }).map((r) => r.name);

  it('matches every word of the search in the name, team or description, in any case', () => {
    expect(names({ search: 'plants SHOP' })).toEqual(['shop']);
    expect(names({ search: 'press' })).toEqual(['blog']);
    expect(names({ search: 'shop nothing' })).toEqual([]);
    expect(names({ search: '  ' })).toEqual(['shop', 'blog', 'soon']);
  });

  it('filters by status, team and a close expiry, together', () => {
    expect(names({ status: 'sleeping' })).toEqual(['blog']);
    expect(names({ team: 'lab' })).toEqual(['shop', 'soon']);
    expect(names({ expiringOnly: true })).toEqual(['soon']);
    expect(names({ team: 'lab', status: 'sleeping' })).toEqual([]);
  });
});

describe('relativeTime', () => {
  it('reads as people say it', () => {
    expect(relativeTime(null, NOW)).toBe('—');
    expect(relativeTime(new Date(NOW - 10_000).toISOString(), NOW)).toBe('just now');
    expect(relativeTime(new Date(NOW - 5 * 60_000).toISOString(), NOW)).toBe('5 minutes ago');
    expect(relativeTime(new Date(NOW + 3_600_000).toISOString(), NOW)).toBe('in 1 hour');
    expect(relativeTime(new Date(NOW + 3 * DAY).toISOString(), NOW)).toBe('in 3 days');
  });
});

describe('deployCommands', () => {
  it('names the app and the server in each command', () => {
    const lines = deployCommands('shop', 'http://petri.example.org:8080').flatMap((s) => s.lines);
    expect(lines).toEqual([
      'petri login --url http://petri.example.org:8080',
      'petri deploy ./shop --app shop',
      'petri git remote --app shop',
      'git push petri main',
    ]);
  });
});

describe('loginUrl', () => {
  it('brings the person back to the page and query they were on', () => {
    expect(loginUrl({ pathname: '/apps/shop/logs', search: '?x=1' })).toBe(
      '/login?next=%2Fapps%2Fshop%2Flogs%3Fx%3D1',
    );
  });
});

describe('config', () => {
  it('lists keys in order with only the revealed values', () => {
    expect(configEntries({ B: '2', A: '1' }, new Set(['B']))).toEqual([
      { key: 'A', shown: null },
      { key: 'B', shown: '2' },
    ]);
  });

  it('refuses keys the server would, with what to do', () => {
    expect(configKeyError('')).toMatch(/Enter a key/);
    expect(configKeyError('1ABC')).toMatch(/letters, digits and underscores/);
    expect(configKeyError('MY-KEY')).toMatch(/letters, digits and underscores/);
    expect(configKeyError('DATABASE_URL')).toBeNull();
  });
});

describe('mayChange', () => {
  const teams = [
    { name: 'lab', role: 'member' },
    { name: 'press', role: 'viewer' },
  ];
  it('lets members, team admins and platform admins change, not viewers, auditors or strangers', () => {
    expect(mayChange({ role: 'member', teams }, 'lab')).toBe(true);
    expect(mayChange({ role: 'member', teams }, 'press')).toBe(false);
    expect(mayChange({ role: 'member', teams }, 'other')).toBe(false);
    expect(mayChange({ role: 'auditor', teams: [] }, 'lab')).toBe(false);
    expect(mayChange({ role: 'admin', teams: [] }, 'lab')).toBe(true);
    expect(mayChange(undefined, 'lab')).toBe(false);
  });
});

describe('memoryShare', () => {
  it('reads memory against the limit', () => {
    expect(memoryShare(128 * 1_048_576, 512)).toEqual({ text: '128 MiB of 512 MiB', percent: 25 });
    expect(memoryShare(3 * 1_048_576, 512)).toEqual({ text: '3.0 MiB of 512 MiB', percent: 1 });
    expect(memoryShare(600 * 1_048_576, 512)?.percent).toBe(100);
    expect(memoryShare(null, 512)).toBeNull();
  });
});

describe('series', () => {
  it('turns points into uPlot columns, a gap (no request) kept as null', () => {
    const point = {
      at: '2026-12-02T12:00:00Z',
      requests: 3,
      s2xx: 2,
      s3xx: 0,
      s4xx: 1,
      s5xx: 0,
      bytes: 10,
      p50Ms: 5,
      p95Ms: 10,
      p99Ms: 25,
      probesOk: 1,
      probesFailed: 0,
      wakes: 0,
      wakeMs: 0,
      cpuMs: 40,
      memoryMaxBytes: 3 * 1_048_576,
      restarts: 0,
      oomKills: 0,
    };
    const s = series([point, { ...point, at: '2026-12-02T12:01:00Z', p50Ms: null }]);
    expect(s.x).toEqual([Date.parse(point.at) / 1000, Date.parse(point.at) / 1000 + 60]);
    expect(s.s4xx).toEqual([1, 1]);
    expect(s.p50).toEqual([5, null]);
    expect(s.memoryMiB).toEqual([3, 3]);
  });
});

describe('the sparkline on the Apps page', () => {
  it('comes from the inventory, and is null until it is read', () => {
    const hours = [...new Array(23).fill(0), 5];
    const rows = appRows([app('shop')], [{ name: 'shop', requests24h: hours } as InventoryRow], NOW);
    expect(rows[0]?.requests24h).toEqual(hours);
    expect(appRows([app('shop')], undefined, NOW)[0]?.requests24h).toBeNull();
  });

  it('spans the box: the highest value at the top, zero at the bottom, a line of zeros flat', () => {
    expect(sparklinePoints([0, 5, 10], 64, 18)).toBe('0,17 32,9 64,1');
    expect(sparklinePoints([0, 0, 0], 64, 18)).toBe('0,17 32,17 64,17');
    expect(sparklinePoints([], 64, 18)).toBe('');
  });

  it('is an SVG image the CSP lets in (a data: URL), drawn with those points', () => {
    const src = sparklineImage([0, 5, 10], 64, 18);
    expect(src.startsWith('data:image/svg+xml,')).toBe(true);
    expect(decodeURIComponent(src)).toContain('width="64" height="18"');
    expect(decodeURIComponent(src)).toContain('points="0,17 32,9 64,1"');
  });
});

describe('mayAdminister', () => {
  it('is for platform admins and the admins of the team only', () => {
    const teams = [
      { name: 'lab', role: 'admin' },
      { name: 'press', role: 'member' },
    ];
    expect(mayAdminister({ role: 'member', teams }, 'lab')).toBe(true);
    expect(mayAdminister({ role: 'member', teams }, 'press')).toBe(false);
    expect(mayAdminister({ role: 'auditor', teams: [] }, 'lab')).toBe(false);
    expect(mayAdminister({ role: 'admin', teams: [] }, 'lab')).toBe(true);
    expect(mayAdminister(undefined, 'lab')).toBe(false);
  });
});

describe('durations of the Settings tab', () => {
  it('reads what it writes', () => {
    for (const seconds of [90, 1800, 7200, 86_400, 5400, null])
      expect(parseDuration(formatDuration(seconds))).toEqual({ seconds });
    expect(formatDuration(5400)).toBe('90m');
    expect(formatDuration(null)).toBe('never');
  });

  it('takes bare seconds and any case, and says what to type otherwise', () => {
    expect(parseDuration(' 45 ')).toEqual({ seconds: 45 });
    expect(parseDuration('2H')).toEqual({ seconds: 7200 });
    expect(parseDuration('Never')).toEqual({ seconds: null });
    for (const bad of ['', '0m', '-5m', '1.5h', '2 weeks', '1w'])
      expect(parseDuration(bad)).toHaveProperty('error', expect.stringMatching(/^Enter a period like 30m/));
  });
});

describe('egressHosts', () => {
  const at = (host: string, port: number, allowed: boolean, count: number, lastSeen: string) => ({
    app: 'shop',
    host,
    port,
    allowed,
    count,
    lastSeen,
    lastReason: allowed ? null : 'not declared in petri.toml',
  });

  it('sums each host, says whether a pattern declares it, and lists the declared ones unused', () => {
    const { hosts, unused } = egressHosts(
      ['api.example.org:443', '*.example.net:443', 'unused.example.com:443'],
      [
        at('api.example.org', 443, true, 3, '2026-12-02T10:00:00Z'),
        at('cdn.example.net', 443, true, 2, '2026-12-02T11:00:00Z'),
        at('example.net', 443, false, 1, '2026-12-02T09:00:00Z'),
        at('evil.example.com', 443, false, 4, '2026-12-02T11:30:00Z'),
        at('api.example.org', 80, false, 1, '2026-12-02T08:00:00Z'),
      ],
    );
    expect(hosts.map((h) => [h.target, h.declared, h.allowed, h.refused])).toEqual([
      ['evil.example.com:443', false, 0, 4],
      ['cdn.example.net:443', true, 2, 0],
      ['api.example.org:443', true, 3, 0],
      ['example.net:443', false, 0, 1],
      ['api.example.org:80', false, 0, 1],
    ]);
    expect(hosts[0]?.lastReason).toBe('not declared in petri.toml');
    expect(unused).toEqual(['unused.example.com:443']);
  });
});

describe('restoreQuestion', () => {
  it('names the add-on, its engine and the time of the backup', () => {
    expect(
      restoreQuestion({ name: 'db', type: 'postgres' }, { id: 'b3', createdAt: '2026-12-02T10:20:00.000Z' }),
    ).toBe(
      'Replace all the data of db (postgres) with backup b3, taken 2026-12-02 10:20 UTC? What db holds now is backed up first.',
    );
  });
});

describe('the Audience tab', () => {
  it('names a visitor by link as the link, and splits the addresses typed', () => {
    expect(visitorName('invite:3')).toBe('invite link 3');
    expect(visitorName('ana@example.org')).toBe('ana@example.org');
    expect(emailList(' ana@example.org, ben@example.org\nana@example.org;cy@example.org ')).toEqual([
      'ana@example.org',
      'ben@example.org',
      'cy@example.org',
    ]);
  });
});
