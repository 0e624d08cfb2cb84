// The fake API's teams (see fake-api.ts, which routes /v1/teams and /v1/apps/:name/transfer
// here): two canned teams, the admin's personal one and the shared labs, people the fake
// knows by e-mail, members' roles with the server's rules (a team keeps an admin; a person
// the server does not know is refused), and quotas. Answers go through fake-api's send and
// fail, so they are checked against the API contract like every other.
import type http from 'node:http';
import { formatMemory } from '../../src/cli/quotas.js';
import type {
  App,
  QuotaUpdate,
  TeamDetail,
  TeamMember,
  TeamQuotas,
  TeamRole,
} from '../../src/client/index.js';

export interface Reply {
  send(res: http.ServerResponse, status: number, body?: unknown): void;
  fail(res: http.ServerResponse, status: number, code: string, message: string): void;
}

interface FakeTeam {
  name: string;
  personalOf: string | null;
  /** The caller's (the fake's admin's) role. */
  role: TeamRole | null;
  createdAt: string;
  members: TeamMember[];
  quotas: Omit<TeamQuotas, 'team'>;
}

/** What the fake's apps belong to, and who it knows. */
export interface FakeTeams {
  teams: Map<string, FakeTeam>;
  people: TeamMember[];
}

const DEFAULT_QUOTAS = { apps: 20, memoryMiB: 8192, addons: 10 };

const state = new WeakMap<object, FakeTeams>();

/** The teams of this fake (made on first use). */
export function fakeTeams(fake: object): FakeTeams {
  let teams = state.get(fake);
  if (!teams) {
    teams = cannedTeams();
    state.set(fake, teams);
  }
  return teams;
}

function person(
  name: string,
  email: string | null,
  role: TeamRole,
  kind: 'person' | 'bot' = 'person',
): TeamMember {
  return { name, email, kind, role, disabled: false };
}

export function cannedTeams(): FakeTeams {
  return {
    teams: new Map([
      [
        'admin',
        {
          name: 'admin',
          personalOf: 'admin',
          role: 'admin',
          createdAt: '2025-01-01T00:00:00.000Z',
          members: [person('admin', null, 'admin')],
          quotas: {
            apps: { used: 0, limit: 20, custom: false },
            memoryMiB: { used: 768, limit: 8192, custom: false },
            addons: { used: 2, limit: 10, custom: false },
          },
        },
      ],
      [
        'labs',
        {
          name: 'labs',
          personalOf: null,
          role: 'member',
          createdAt: '2025-01-02T10:00:00.000Z',
          members: [
            person('admin', null, 'member'),
            person('ana', 'ana@example.org', 'admin'),
            person('ci-deploy', null, 'viewer', 'bot'),
          ],
          quotas: {
            apps: { used: 0, limit: 5, custom: true },
            memoryMiB: { used: 7680, limit: 8192, custom: true },
            addons: { used: 0, limit: 10, custom: false },
          },
        },
      ],
    ]),
    people: [
      person('admin', null, 'member'),
      person('ana', 'ana@example.org', 'member'),
      person('bob', 'bob@example.org', 'member'),
      person('ci-deploy', null, 'member', 'bot'),
    ],
  };
}

function teamApps(apps: Map<string, App>, team: string): string[] {
  return [...apps.values()].filter((a) => a.team === team).map((a) => a.name);
}

function detail(team: FakeTeam, apps: Map<string, App>): TeamDetail {
  const names = teamApps(apps, team.name);
  return {
    name: team.name,
    personal: team.personalOf !== null,
    personalOf: team.personalOf,
    role: team.role,
    createdAt: team.createdAt,
    members: team.members,
    apps: names,
    quotas: quotasOf(team, apps),
  };
}

function quotasOf(team: FakeTeam, apps: Map<string, App>): TeamQuotas {
  return {
    team: team.name,
    ...team.quotas,
    apps: { ...team.quotas.apps, used: teamApps(apps, team.name).length },
  };
}

/** /v1/teams and below; `parts` is the path after /v1/teams. */
export function handleTeams(
  fake: { apps: Map<string, App> },
  method: string | undefined,
  parts: string[],
  body: Buffer,
  res: http.ServerResponse,
  { send, fail }: Reply,
) {
  const { teams, people } = fakeTeams(fake);
  const [name, sub, email] = parts;
  if (name === undefined) {
    if (method === 'GET') {
      return send(res, 200, {
        teams: [...teams.values()].map((t) => ({
          name: t.name,
          personal: t.personalOf !== null,
          personalOf: t.personalOf,
          role: t.role,
          apps: teamApps(fake.apps, t.name).length,
          members: t.members.length,
        })),
      });
    }
    if (method === 'POST') {
      const { name: wanted } = JSON.parse(body.toString()) as { name: string };
      if (!/^[a-z][a-z0-9-]{1,29}$/.test(wanted)) {
        return fail(res, 400, 'bad_request', `team name must match ^[a-z][a-z0-9-]{1,29}$, got '${wanted}'`);
      }
      if (teams.has(wanted))
        return fail(res, 409, 'conflict', `team '${wanted}' already exists; pick another name`);
      const team: FakeTeam = {
        name: wanted,
        personalOf: null,
        role: 'admin',
        createdAt: '2025-02-01T00:00:00.000Z',
        members: [person('admin', null, 'admin')],
        quotas: {
          apps: { used: 0, limit: DEFAULT_QUOTAS.apps, custom: false },
          memoryMiB: { used: 0, limit: DEFAULT_QUOTAS.memoryMiB, custom: false },
          addons: { used: 0, limit: DEFAULT_QUOTAS.addons, custom: false },
        },
      };
      teams.set(wanted, team);
      return send(res, 201, detail(team, fake.apps));
    }
  }
  const team = name === undefined ? undefined : teams.get(name);
  if (!team)
    return fail(res, 404, 'not_found', `team '${name}' not found; list your teams with 'petri teams'`);

  if (sub === undefined && method === 'GET') return send(res, 200, detail(team, fake.apps));

  if (sub === 'quotas' && email === undefined) {
    if (method === 'GET') return send(res, 200, quotasOf(team, fake.apps));
    if (method === 'PATCH') {
      const update = JSON.parse(body.toString()) as QuotaUpdate;
      for (const key of ['apps', 'memoryMiB', 'addons'] as const) {
        const value = update[key];
        if (value === undefined) continue;
        team.quotas[key] = {
          used: team.quotas[key].used,
          limit: value ?? DEFAULT_QUOTAS[key],
          custom: value !== null,
        };
      }
      return send(res, 200, quotasOf(team, fake.apps));
    }
  }

  if (sub === 'members' && email !== undefined) {
    const known = people.find(
      (p) => p.email === email.toLowerCase() || (p.email === null && p.name === email),
    );
    const index = team.members.findIndex((m) => m.name === known?.name);
    const admins = team.members.filter((m) => m.role === 'admin').length;
    if (method === 'PUT') {
      const { role } = JSON.parse(body.toString()) as { role: TeamRole };
      if (!known) {
        return fail(
          res,
          404,
          'not_found',
          `no user ${email}: invite them first with 'petri users invite ${email} --team ${team.name}'`,
        );
      }
      const previous = team.members[index]?.role ?? null;
      if (previous === 'admin' && role !== 'admin' && admins <= 1) {
        return fail(
          res,
          409,
          'conflict',
          `${known.name} is the last admin of team ${team.name}; make someone else admin first`,
        );
      }
      const member = { ...known, role };
      if (index >= 0) team.members[index] = member;
      else team.members.push(member);
      return send(res, 200, { member, previousRole: previous });
    }
    if (method === 'DELETE') {
      const member = team.members[index];
      if (!member) {
        return fail(
          res,
          404,
          'not_found',
          `${email} is not in team ${team.name}; see its members with 'petri teams info ${team.name}'`,
        );
      }
      if (member.role === 'admin' && admins <= 1) {
        return fail(
          res,
          409,
          'conflict',
          `${member.name} is the last admin of team ${team.name}; make someone else admin first`,
        );
      }
      team.members.splice(index, 1);
      return send(res, 204);
    }
  }
  return fail(res, 404, 'not_found', `no route ${method} /v1/teams/${parts.join('/')}`);
}

/** The team a new app goes to: the one asked for, else the admin's personal team; undefined
 * (and a 404 sent) when the team is not one the fake knows. */
export function teamForNewApp(
  fake: { apps: Map<string, App> },
  team: string | undefined,
  res: http.ServerResponse,
  { fail }: Reply,
): string | undefined {
  if (team === undefined) return 'admin';
  if (fakeTeams(fake).teams.has(team)) return team;
  fail(res, 404, 'not_found', `team '${team}' not found; list your teams with 'petri teams'`);
  return undefined;
}

/** POST /v1/apps/:name/transfer. */
export function transferApp(
  fake: { apps: Map<string, App>; processes: Map<string, { formation: Record<string, number> }> },
  app: App,
  body: Buffer,
  res: http.ServerResponse,
  reply: Reply,
) {
  const { team } = JSON.parse(body.toString()) as { team: string };
  const target = fakeTeams(fake).teams.get(team);
  if (!target)
    return reply.fail(res, 404, 'not_found', `team '${team}' not found; list your teams with 'petri teams'`);
  const quota = target.quotas.memoryMiB;
  const formation = fake.processes.get(app.name)?.formation ?? {};
  const instances = Object.values(formation).reduce((n, q) => n + q, 0);
  const needs = app.limits.memoryMiB * instances;
  if (quota.used + needs > quota.limit) {
    return reply.fail(
      res,
      403,
      'quota_exceeded',
      `team ${team} runs ${formatMemory(quota.used)} of ${formatMemory(quota.limit)}; ${app.name} (${instances} instances at ${formatMemory(app.limits.memoryMiB)}, 0 add-ons) needs ${formatMemory(needs)} more: scale down or remove something first, or ask a platform admin to raise it (petri quotas ${team} --memory ${Math.ceil((quota.used + needs) / 1024)}G)`,
    );
  }
  app.team = team;
  return reply.send(res, 200, app);
}
