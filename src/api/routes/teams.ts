// /v1/teams: teams, their members and roles, their quotas; and /v1/apps/:name/transfer,
// which moves an app to another team (a question of teams more than of the app).

import type { FastifyRequest } from 'fastify';
import {
  App,
  AppNameParams,
  CreateTeamBody,
  errorResponses,
  MemberChange,
  NoContent,
  QuotaUpdate,
  SetMemberBody,
  TeamDetail,
  TeamList,
  TeamMemberParams,
  TeamParams,
  TeamQuotas,
  TransferAppBody,
} from '../../contract/index.js';
import { teamNotFound } from '../../domain/access.js';
import { endGatePasses } from '../../domain/audiences.js';
import { type TeamQuotas as Quotas, setTeamQuotas, teamQuotas } from '../../domain/quotas.js';
import {
  createTeam,
  type TeamDetail as Detail,
  findTeam,
  listTeams,
  removeMember,
  setMember,
  teamDetail,
  transferApp,
} from '../../domain/teams.js';
import type { Team } from '../../store/schema.js';
import { targetApp, targetTeam } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { openStreams } from '../open-streams.js';
import { presentApp } from '../present.js';
import { gateKeysChanged } from './gate.js';

export function teamRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;
  // A member taken out or given a lesser role, or an app moved to another team: the open
  // streams on the team's apps (or that app's) are decided again at once (open-streams.ts).
  const streams = openStreams(api, ctx);

  api.get(
    '/v1/teams',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'The teams you are in, with your role (admins and auditors: every team)',
        response: { 200: TeamList, ...errorResponses },
      },
    },
    async (req) => {
      const teams = await listTeams(db, req.user);
      return {
        teams: teams.map((t) => ({
          name: t.team.name,
          personal: t.team.personal_of !== null,
          personalOf: t.personalOf,
          role: t.role,
          apps: t.apps,
          members: t.members,
        })),
      };
    },
  );

  api.post(
    '/v1/teams',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'Create a team; you become its admin',
        body: CreateTeamBody,
        response: { 201: TeamDetail, ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = await createTeam(db, req.user, req.body.name, req.ip, config.ceilings.teamsPerPerson);
      return reply.code(201).send(presentDetail(await teamDetail(db, req.user, team, config.quotas)));
    },
  );

  api.get(
    '/v1/teams/:team',
    {
      config: { access: 'team.read' },
      schema: {
        summary: "A team's members with their roles, its apps, and its quotas against what it uses",
        params: TeamParams,
        response: { 200: TeamDetail, ...errorResponses },
      },
    },
    async (req) => presentDetail(await teamDetail(db, req.user, targetTeam(req), config.quotas)),
  );

  api.put(
    '/v1/teams/:team/members/:email',
    {
      config: { access: 'team.admin' },
      schema: {
        summary: 'Add a person (by e-mail; a bot by name) to the team with a role, or change their role',
        params: TeamMemberParams,
        body: SetMemberBody,
        response: { 200: MemberChange, ...errorResponses },
      },
    },
    async (req) => {
      const team = targetTeam(req);
      const change = await setMember(db, req.user, team, req.params.email, req.body.role, req.ip);
      await streams.accessChanged({ teamId: team.id });
      return change;
    },
  );

  api.delete(
    '/v1/teams/:team/members/:email',
    {
      // Anyone in a team may leave it (team.read); taking someone else out is for its admins.
      config: { access: (req) => (namesCaller(req) ? 'team.read' : 'team.admin') },
      schema: {
        summary: 'Take a person out of the team (never its last admin); anyone may leave',
        params: TeamMemberParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      const team = targetTeam(req);
      await removeMember(db, req.user, team, req.params.email, req.ip);
      // The team's gated apps let members in: their gate cookies end (issue 15).
      await endGatePasses(db, team.id);
      await gateKeysChanged(ctx);
      await streams.accessChanged({ teamId: team.id });
      return reply.code(204).send(null);
    },
  );

  api.get(
    '/v1/teams/:team/quotas',
    {
      config: { access: 'team.read' },
      schema: {
        summary: "The team's quotas (apps, memory, add-ons) against what it uses",
        params: TeamParams,
        response: { 200: TeamQuotas, ...errorResponses },
      },
    },
    async (req) => {
      const team = targetTeam(req);
      return presentQuotas(team, await teamQuotas(db, team, config.quotas));
    },
  );

  api.patch(
    '/v1/teams/:team/quotas',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: "Set the team's own quotas (null: back to the server's default)",
        params: TeamParams,
        body: QuotaUpdate,
        response: { 200: TeamQuotas, ...errorResponses },
      },
    },
    async (req) => {
      // platform.admin names no team for the access hook: the team is found here (an admin
      // sees every team, so a missing one is the only not-found).
      const team = await requireTeam(ctx, req.params.team);
      const updated = await setTeamQuotas(db, req.user, team, req.body, req.ip);
      return presentQuotas(updated, await teamQuotas(db, updated, config.quotas));
    },
  );

  api.post(
    '/v1/apps/:name/transfer',
    {
      config: { access: 'app.admin' },
      schema: {
        summary:
          'Move the app to another team (you must be a member or admin there; its quotas must hold the app)',
        params: AppNameParams,
        body: TransferAppBody,
        response: { 200: App, ...errorResponses },
      },
    },
    async (req) => {
      const app = await transferApp(db, req.user, targetApp(req), req.body.team, config.quotas, req.ip);
      await streams.accessChanged({ appId: app.id });
      return presentApp(db, config, app);
    },
  );
}

/** Whether the route's :email is the caller's own (their e-mail, or a bot's name). Asked
 * before the token is read too (is the route public?): then there is no caller yet. */
function namesCaller(req: FastifyRequest): boolean {
  const email = (req.params as { email?: unknown } | undefined)?.email;
  const user = req.user as FastifyRequest['user'] | null;
  if (typeof email !== 'string' || !user) return false;
  return user.email === null ? email === user.name : email.toLowerCase() === user.email.toLowerCase();
}

async function requireTeam(ctx: ApiContext, name: string): Promise<Team> {
  const team = await findTeam(ctx.db, name);
  if (!team) throw teamNotFound(name);
  return team;
}

function presentQuotas(team: Team, quotas: Quotas) {
  return { team: team.name, ...quotas };
}

function presentDetail(detail: Detail) {
  return {
    name: detail.team.name,
    personal: detail.team.personal_of !== null,
    personalOf: detail.personalOf,
    role: detail.role,
    createdAt: detail.team.created_at,
    members: detail.members,
    apps: detail.apps,
    quotas: presentQuotas(detail.team, detail.quotas),
  };
}
