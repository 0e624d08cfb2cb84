// Teams, their members' roles and their quotas; moving an app to another team.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const TeamRole = StringEnum(['admin', 'member', 'viewer'], {
  description:
    'viewer reads; member also deploys, configures, scales and runs; admin also manages members, transfers and destroys',
});
export type TeamRole = Static<typeof TeamRole>;

export const TeamParams = Type.Object({ team: Type.String({ description: 'team name' }) });
export type TeamParams = Static<typeof TeamParams>;

export const TeamMemberParams = Type.Object({
  team: Type.String({ description: 'team name' }),
  email: Type.String({ description: "the person's e-mail (a bot's name)" }),
});
export type TeamMemberParams = Static<typeof TeamMemberParams>;

/** A team in `petri teams`. */
export const TeamSummary = Type.Object({
  name: Type.String(),
  personal: Type.Boolean({ description: "a person's own team (every person has one)" }),
  personalOf: Nullable(Type.String(), { description: 'whose personal team it is' }),
  role: Nullable(TeamRole, {
    description: 'your role in it; null: you are not in it (admins and auditors see every team)',
  }),
  apps: Type.Integer(),
  members: Type.Integer(),
});
export type TeamSummary = Static<typeof TeamSummary>;

export const TeamList = Type.Object({ teams: Type.Array(TeamSummary) });
export type TeamList = Static<typeof TeamList>;

export const TeamMember = Type.Object({
  name: Type.String(),
  email: Nullable(Type.String()),
  kind: StringEnum(['person', 'bot']),
  role: TeamRole,
  disabled: Type.Boolean(),
});
export type TeamMember = Static<typeof TeamMember>;

/** One quota: what the team has now against its limit. */
export const QuotaFigure = Type.Object({
  used: Type.Integer(),
  limit: Type.Integer(),
  custom: Type.Boolean({ description: "true: the team's own limit; false: the server's default" }),
});
export type QuotaFigure = Static<typeof QuotaFigure>;

export const TeamQuotas = Type.Object(
  {
    team: Type.String(),
    apps: QuotaFigure,
    memoryMiB: Type.Object(QuotaFigure.properties, {
      description:
        "memory of the instances the team's apps want running (each type's count times the app's memory limit), sleeping apps included",
    }),
    addons: QuotaFigure,
  },
  { $id: 'TeamQuotas' },
);
export type TeamQuotas = Static<typeof TeamQuotas>;

export const TeamDetail = Type.Object({
  name: Type.String(),
  personal: Type.Boolean(),
  personalOf: Nullable(Type.String()),
  role: Nullable(TeamRole, { description: 'your role in it; null: you are not in it' }),
  createdAt: Type.String(),
  members: Type.Array(TeamMember),
  apps: Type.Array(Type.String(), { description: "the team's apps, by name" }),
  quotas: TeamQuotas,
});
export type TeamDetail = Static<typeof TeamDetail>;

export const CreateTeamBody = Type.Object(
  { name: Type.String({ maxLength: 100, description: 'must match ^[a-z][a-z0-9-]{1,29}$' }) },
  { additionalProperties: false },
);
export type CreateTeamBody = Static<typeof CreateTeamBody>;

export const SetMemberBody = Type.Object({ role: TeamRole }, { additionalProperties: false });
export type SetMemberBody = Static<typeof SetMemberBody>;

export const MemberChange = Type.Object({
  member: TeamMember,
  previousRole: Nullable(TeamRole, { description: 'null: they were not in the team' }),
});
export type MemberChange = Static<typeof MemberChange>;

const QuotaLimit = (what: string) =>
  Type.Optional(
    Nullable(Type.Integer({ minimum: 0, maximum: 1_000_000_000 }), {
      description: `${what}; null: back to the server's default`,
    }),
  );

export const QuotaUpdate = Type.Object(
  {
    apps: QuotaLimit('apps'),
    memoryMiB: QuotaLimit('memory of instances, MiB'),
    addons: QuotaLimit('add-ons'),
  },
  { additionalProperties: false },
);
export type QuotaUpdate = Static<typeof QuotaUpdate>;

export const TransferAppBody = Type.Object(
  { team: Type.String({ maxLength: 100, description: 'the team the app moves to' }) },
  { additionalProperties: false },
);
export type TransferAppBody = Static<typeof TransferAppBody>;
