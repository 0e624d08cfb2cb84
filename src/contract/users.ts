// People and bots as admins see and manage them (`petri users`), invitations, service
// accounts, and who the caller is (`petri whoami`).
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';
import { TeamRole } from './teams.js';
import { TokenInfo, TokenKind } from './tokens.js';

export const PlatformRole = StringEnum(['admin', 'auditor', 'member'], {
  description: 'admin: everything; auditor: reads everything but secrets; member: their teams',
});
export type PlatformRole = Static<typeof PlatformRole>;

export const UserKind = StringEnum(['person', 'bot']);
export const IdentityProvider = StringEnum(['local', 'oidc', 'ldap', 'bot'], {
  description: 'how the user signs in; bot: never (a service account, its tokens made for it)',
});

export const UserInfo = Type.Object(
  {
    name: Type.String(),
    email: Nullable(Type.String()),
    role: PlatformRole,
    kind: UserKind,
    provider: IdentityProvider,
    createdAt: Type.String(),
    lastSeenAt: Nullable(Type.String(), { description: 'last request, to the minute; null: never' }),
    apps: Type.Integer({ description: 'apps the user created' }),
    disabled: Type.Boolean(),
    disabledAt: Nullable(Type.String()),
  },
  { $id: 'UserInfo' },
);
export type UserInfo = Static<typeof UserInfo>;

export const UserList = Type.Object({ users: Type.Array(UserInfo) });
export type UserList = Static<typeof UserList>;

/** An e-mail, or a bot's name (or 'admin', the first admin of an install from before e-mails). */
export const UserParams = Type.Object({
  email: Type.String({ minLength: 1, maxLength: 254, description: "the user's e-mail, or a bot's name" }),
});
export type UserParams = Static<typeof UserParams>;

export const UserEnvelope = Type.Object({ user: UserInfo });
export type UserEnvelope = Static<typeof UserEnvelope>;

export const DisabledUser = Type.Object({
  user: UserInfo,
  tokensRevoked: Type.Integer({ description: 'tokens and sessions revoked with the account' }),
});
export type DisabledUser = Static<typeof DisabledUser>;

export const ChangeUserBody = Type.Object({ role: PlatformRole }, { additionalProperties: false });
export type ChangeUserBody = Static<typeof ChangeUserBody>;

export const InvitationInfo = Type.Object(
  {
    id: Type.Integer(),
    email: Type.String(),
    role: PlatformRole,
    team: Nullable(Type.String()),
    teamRole: Nullable(TeamRole),
    createdBy: Type.String(),
    createdAt: Type.String(),
    expiresAt: Type.String(),
  },
  { $id: 'Invitation' },
);
export type InvitationInfo = Static<typeof InvitationInfo>;

export const InvitationList = Type.Object({ invitations: Type.Array(InvitationInfo) });
export type InvitationList = Static<typeof InvitationList>;

export const CreateInvitationBody = Type.Object(
  {
    email: Type.String({ minLength: 3, maxLength: 254 }),
    role: Type.Optional(PlatformRole),
    team: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'a team to join, by name' })),
    teamRole: Type.Optional(TeamRole),
  },
  { additionalProperties: false },
);
export type CreateInvitationBody = Static<typeof CreateInvitationBody>;

export const CreatedInvitation = Type.Object({
  invitation: InvitationInfo,
  link: Type.String({ description: 'single use, valid 7 days: shown this once' }),
});
export type CreatedInvitation = Static<typeof CreatedInvitation>;

export const InvitationIdParams = Type.Object({ id: Type.Integer({ minimum: 1 }) });
export type InvitationIdParams = Static<typeof InvitationIdParams>;

export const CancelledInvitation = Type.Object({ invitation: InvitationInfo });
export type CancelledInvitation = Static<typeof CancelledInvitation>;

export const CreateBotBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, description: 'must match ^[a-z][a-z0-9-]{1,39}$' }),
    team: Type.String({ minLength: 1, maxLength: 64 }),
    role: StringEnum(['member', 'viewer'], { description: "the bot's role in the team" }),
    expires: Type.Optional(
      Type.String({
        pattern: '^([0-9]{1,6}[hdwyHDWY]|never)$',
        description: 'when its token expires: a duration like 90d, or never (the default)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateBotBody = Static<typeof CreateBotBody>;

export const CreatedBot = Type.Object({
  user: UserInfo,
  token: TokenInfo,
  secret: Type.String({ description: 'the bot token itself: shown this once, never again' }),
});
export type CreatedBot = Static<typeof CreatedBot>;

export const WhoamiTeam = Type.Object({
  name: Type.String(),
  role: TeamRole,
  personal: Type.Boolean({ description: "the user's personal team" }),
});
export type WhoamiTeam = Static<typeof WhoamiTeam>;

export const WhoamiUser = Type.Object({
  name: Type.String(),
  role: PlatformRole,
  email: Nullable(Type.String()),
  kind: UserKind,
  provider: IdentityProvider,
  teams: Type.Array(WhoamiTeam),
});
export type WhoamiUser = Static<typeof WhoamiUser>;

export const WhoamiToken = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  kind: TokenKind,
  expiresAt: Nullable(Type.String(), { description: 'null: never expires' }),
});

export const Whoami = Type.Object({
  user: WhoamiUser,
  token: Nullable(WhoamiToken, { description: "the token of this request (null: git's per-push ticket)" }),
});
export type Whoami = Static<typeof Whoami>;
