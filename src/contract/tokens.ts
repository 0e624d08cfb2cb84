// `petri tokens`: a user's API tokens as the API shows them (never the secret nor its
// hash), and what making and revoking one takes.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const TokenKind = StringEnum(['api', 'session', 'bot', 'metrics'], {
  description:
    "api: made with 'petri tokens create' (or at first start); session: a sign-in's; bot: a service account's; metrics: 'petri tokens create --metrics', good for GET /metrics only",
});
export type TokenKind = Static<typeof TokenKind>;

export const TokenInfo = Type.Object(
  {
    id: Type.Integer({ description: "what 'petri tokens revoke ID' takes" }),
    name: Type.String(),
    kind: TokenKind,
    createdAt: Type.String(),
    lastUsedAt: Nullable(Type.String(), { description: 'to the minute; null: never used' }),
    expiresAt: Nullable(Type.String(), { description: 'null: never expires' }),
    expired: Type.Boolean(),
    current: Type.Boolean({ description: 'the token this request came with' }),
  },
  { $id: 'Token' },
);
export type TokenInfo = Static<typeof TokenInfo>;

export const TokenList = Type.Object({
  user: Type.String({ description: "whose tokens: an e-mail, or a bot's name" }),
  tokens: Type.Array(TokenInfo),
});
export type TokenList = Static<typeof TokenList>;

export const TokenListQuery = Type.Object(
  {
    user: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 254,
        description: "someone else's tokens (an e-mail or a bot's name): admins and auditors",
      }),
    ),
  },
  { additionalProperties: false },
);
export type TokenListQuery = Static<typeof TokenListQuery>;

const EXPIRES = '^([0-9]{1,6}[hdwyHDWY]|never)$';

export const CreateTokenBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64, description: 'what the token is for, e.g. ci-deploy' }),
    expires: Type.Optional(
      Type.String({
        pattern: EXPIRES,
        description:
          'a duration like 90d (the default), 12h, 4w or 1y (at most 365d but for admins), or never (admins)',
      }),
    ),
    bot: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description: "a bot's name: an admin makes a token for it",
      }),
    ),
    metrics: Type.Optional(
      Type.Boolean({
        description:
          'a token good for GET /metrics only, for a Prometheus scraper (its owner must be an admin or an auditor)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type CreateTokenBody = Static<typeof CreateTokenBody>;

export const CreatedToken = Type.Object({
  user: Type.String({ description: "whose token: an e-mail, or a bot's name" }),
  token: TokenInfo,
  secret: Type.String({ description: 'the token itself: shown this once, never again' }),
});
export type CreatedToken = Static<typeof CreatedToken>;

export const TokenIdParams = Type.Object({ id: Type.Integer({ minimum: 1, description: 'token id' }) });
export type TokenIdParams = Static<typeof TokenIdParams>;

export const RevokedToken = Type.Object({ token: TokenInfo });
export type RevokedToken = Static<typeof RevokedToken>;
