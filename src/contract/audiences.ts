// Audiences (issue 15): who may reach an app (`petri audience`), the people an invite app
// lets in, its invite links and the visitors' consents to its notice.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const AudienceKind = StringEnum(['public', 'staff', 'invite'], {
  description:
    'public: anyone; staff: anyone who can sign in to Petri; invite: only the invitees and invite links',
});
export type AudienceKind = Static<typeof AudienceKind>;

export const AudienceInvitee = Type.Object({
  email: Type.String(),
  invitedBy: Nullable(Type.String()),
  invitedAt: Type.String(),
});
export type AudienceInvitee = Static<typeof AudienceInvitee>;

export const Audience = Type.Object({
  app: Type.String(),
  audience: AudienceKind,
  noticeVersion: Type.Integer({ description: 'raised when what the notice says changes' }),
  keyVersion: Type.Integer({ description: "raised by every change that ends visitors' cookies" }),
  invitees: Type.Array(AudienceInvitee),
  enforced: Type.Boolean({
    description: 'whether the router checks the audience (it does: true)',
  }),
  added: Type.Optional(Type.Array(Type.String(), { description: 'invite: the addresses new on the list' })),
  links: Type.Optional(
    Type.Array(Type.Object({ email: Type.String(), url: Type.String(), expiresAt: Type.String() }), {
      description: 'invite with link: each invitee’s personal single-use sign-in link (shown once)',
    }),
  ),
});
export type Audience = Static<typeof Audience>;

export const AudienceSet = Type.Object(
  {
    audience: Type.String({ maxLength: 100, description: 'public, staff or invite' }),
    approve: Type.Optional(
      Type.Boolean({ description: 'admins: approve making an app with personal or sensitive data public' }),
    ),
  },
  { additionalProperties: false },
);
export type AudienceSet = Static<typeof AudienceSet>;

export const AudienceInvite = Type.Object(
  {
    emails: Type.Array(Type.String({ maxLength: 320 }), { minItems: 1, maxItems: 100 }),
    link: Type.Optional(
      Type.Boolean({
        description:
          'also make each a personal single-use sign-in link (for people without an account), answered once',
      }),
    ),
    send: Type.Optional(
      Type.Boolean({
        description:
          'mail each person their personal link through the mail relay (implies link); refused when mail is off',
      }),
    ),
  },
  { additionalProperties: false },
);
export type AudienceInvite = Static<typeof AudienceInvite>;

export const AudienceInviteeParams = Type.Object({
  name: Type.String({ description: 'app name' }),
  email: Type.String({ maxLength: 320 }),
});

export const AudienceLinkParams = Type.Object({
  name: Type.String({ description: 'app name' }),
  id: Type.Integer({ minimum: 1 }),
});

export const AudienceLink = Type.Object({
  id: Type.Integer(),
  maxUses: Type.Integer(),
  usesLeft: Type.Integer(),
  expiresAt: Type.String(),
  revokedAt: Nullable(Type.String()),
  createdBy: Nullable(Type.String()),
  createdAt: Type.String(),
  state: StringEnum(['active', 'used up', 'expired', 'revoked']),
  email: Type.Optional(Nullable(Type.String({ description: "a personal link's invitee" }))),
});
export type AudienceLink = Static<typeof AudienceLink>;

export const AudienceLinkList = Type.Object({ links: Type.Array(AudienceLink) });
export type AudienceLinkList = Static<typeof AudienceLinkList>;

export const AudienceLinkCreate = Type.Object(
  {
    uses: Type.Optional(
      Type.Integer({ description: 'how many people it may let in (default 50, at most 10000)' }),
    ),
    expires: Type.Optional(
      Type.String({ maxLength: 20, description: 'how long it works: 7d (default), 12h, 2w; at most 90d' }),
    ),
  },
  { additionalProperties: false },
);
export type AudienceLinkCreate = Static<typeof AudienceLinkCreate>;

export const AudienceLinkCreated = Type.Object({
  link: AudienceLink,
  url: Type.String({ description: 'the link to share: shown once, never stored' }),
});
export type AudienceLinkCreated = Static<typeof AudienceLinkCreated>;

export const AudienceVisitor = Type.Object({
  visitor: Type.String({ description: 'an e-mail, or invite:<link id> for a visitor by link' }),
  noticeVersion: Type.Integer(),
  current: Type.Boolean({ description: 'consented to the notice shown now, and not withdrawn' }),
  consentedAt: Type.String(),
  withdrawnAt: Nullable(Type.String()),
  lastVisitAt: Nullable(Type.String()),
});
export type AudienceVisitor = Static<typeof AudienceVisitor>;

export const AudienceVisitorList = Type.Object({
  noticeVersion: Type.Integer(),
  visitors: Type.Array(AudienceVisitor),
});
export type AudienceVisitorList = Static<typeof AudienceVisitorList>;
