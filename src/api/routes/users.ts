// /v1/users: people and bots (admins and auditors list them; admins invite, disable,
// enable, change roles and make bots), and /v1/whoami, who the caller is.
import {
  CancelledInvitation,
  ChangeUserBody,
  CreateBotBody,
  CreatedBot,
  CreatedInvitation,
  CreateInvitationBody,
  DisabledUser,
  ErrorBody,
  errorResponses,
  InvitationIdParams,
  type InvitationInfo,
  InvitationList,
  UserEnvelope,
  type UserInfo,
  UserList,
  UserParams,
  Whoami,
} from '../../contract/index.js';
import {
  cancelInvitation,
  createInvitation,
  type InvitationView,
  invitationLink,
  openInvitations,
} from '../../domain/invitations.js';
import { parseExpiry } from '../../domain/tokens.js';
import {
  appCount,
  createBot,
  disableUser,
  enableUser,
  listUsers,
  setPlatformRole,
  teamsOf,
  userLabel,
} from '../../domain/users.js';
import type { User } from '../../store/schema.js';
import type { Api, ApiContext } from '../context.js';
import { openStreams } from '../open-streams.js';
import { gateKeysChanged } from './gate.js';
import { presentToken } from './tokens.js';

export function presentUser(user: User, apps: number): UserInfo {
  return {
    name: user.name,
    email: user.email,
    role: user.role,
    kind: user.kind,
    provider: user.provider,
    createdAt: user.created_at,
    lastSeenAt: user.last_seen_at,
    apps,
    disabled: user.disabled_at !== null,
    disabledAt: user.disabled_at,
  };
}

function presentInvitation(view: InvitationView): InvitationInfo {
  const { invitation } = view;
  return {
    id: invitation.id,
    email: invitation.email,
    role: invitation.role,
    team: view.team,
    teamRole: invitation.team_role,
    createdBy: view.createdBy,
    createdAt: invitation.created_at,
    expiresAt: invitation.expires_at,
  };
}

export function userRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;
  // Disabling a user or changing their role ends their open streams at once (open-streams.ts).
  const streams = openStreams(api, ctx);

  /** The apps count of one user, for the answers about them. */
  const withApps = async (user: User) => presentUser(user, await appCount(db, user.id));

  api.get(
    '/v1/whoami',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'Who the token speaks for: the user, their teams and roles, and the token',
        response: { 200: Whoami, ...errorResponses },
      },
    },
    async (req) => {
      const { user, token } = req;
      return {
        user: {
          name: user.name,
          role: user.role,
          email: user.email,
          kind: user.kind,
          provider: user.provider,
          teams: await teamsOf(db, user.id),
        },
        token: token && {
          id: token.id,
          name: token.description,
          kind: token.kind,
          expiresAt: token.expires_at,
        },
      };
    },
  );

  api.get(
    '/v1/users',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: 'Every user and bot: role, provider, last seen, apps, disabled',
        response: { 200: UserList, 403: ErrorBody, ...errorResponses },
      },
    },
    async () => ({ users: (await listUsers(db)).map((u) => presentUser(u.user, u.apps)) }),
  );

  api.post(
    '/v1/users/invitations',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: 'Invite an e-mail: a single-use link, valid 7 days, answered this once',
        body: CreateInvitationBody,
        response: { 201: CreatedInvitation, 403: ErrorBody, 409: ErrorBody, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { email, role, team, teamRole } = req.body;
      const { invitation, secret } = await createInvitation(
        db,
        req.user,
        { email, role: role ?? 'member', team, teamRole },
        req.ip,
      );
      return reply.code(201).send({
        invitation: presentInvitation({ invitation, team: team ?? null, createdBy: userLabel(req.user) }),
        link: invitationLink(config, secret),
      });
    },
  );

  api.get(
    '/v1/users/invitations',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: 'Invitations not used yet and not expired',
        response: { 200: InvitationList, 403: ErrorBody, ...errorResponses },
      },
    },
    async () => ({ invitations: (await openInvitations(db)).map(presentInvitation) }),
  );

  api.delete(
    '/v1/users/invitations/:id',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: 'Withdraw an open invitation: its link stops working',
        params: InvitationIdParams,
        response: { 200: CancelledInvitation, 403: ErrorBody, ...errorResponses },
      },
    },
    async (req) => {
      return { invitation: presentInvitation(await cancelInvitation(db, req.user, req.params.id, req.ip)) };
    },
  );

  api.post(
    '/v1/users/bots',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: 'Make a bot (a service account for CI) in a team; its token is answered this once',
        body: CreateBotBody,
        response: { 201: CreatedBot, 403: ErrorBody, 409: ErrorBody, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { name, team, role, expires } = req.body;
      const expiresAt = parseExpiry(expires ?? 'never', req.user);
      const bot = await createBot(db, req.user, { name, team, role, expiresAt }, req.ip);
      return reply.code(201).send({
        user: presentUser(bot.user, 0),
        token: presentToken(bot.token, req.token),
        secret: bot.secret,
      });
    },
  );

  api.post(
    '/v1/users/:email/disable',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: 'Disable a user: every token and session of theirs is revoked at once',
        params: UserParams,
        response: { 200: DisabledUser, 403: ErrorBody, 409: ErrorBody, ...errorResponses },
      },
    },
    async (req) => {
      const { user, tokensRevoked } = await disableUser(db, req.user, req.params.email, req.ip);
      await gateKeysChanged(ctx); // the gated apps' new key versions: their gate cookies end
      await streams.accessChanged({ userId: user.id });
      return { user: await withApps(user), tokensRevoked };
    },
  );

  api.post(
    '/v1/users/:email/enable',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: 'Enable a disabled user again (they sign in anew)',
        params: UserParams,
        response: { 200: UserEnvelope, 403: ErrorBody, ...errorResponses },
      },
    },
    async (req) => ({ user: await withApps(await enableUser(db, req.user, req.params.email, req.ip)) }),
  );

  api.patch(
    '/v1/users/:email',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: "Change a person's platform role (never the last admin's)",
        params: UserParams,
        body: ChangeUserBody,
        response: { 200: UserEnvelope, 403: ErrorBody, 409: ErrorBody, ...errorResponses },
      },
    },
    async (req) => {
      const user = await setPlatformRole(db, req.user, req.params.email, req.body.role, req.ip);
      await streams.accessChanged({ userId: user.id });
      return { user: await withApps(user) };
    },
  );
}
