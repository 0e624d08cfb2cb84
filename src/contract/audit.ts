// The audit trail: who changed what, when, from where and how it ended; and the check of
// its hash chain.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const AUDIT_OUTCOMES = ['ok', 'denied', 'failed'] as const;
export const AuditOutcome = StringEnum([...AUDIT_OUTCOMES]);
export type AuditOutcome = Static<typeof AuditOutcome>;

export const AuditEvent = Type.Object({
  id: Type.Integer(),
  at: Type.String({ description: 'ISO time' }),
  actor: Type.String({
    description:
      "the user's or bot's name; 'petri' for the platform itself; 'anonymous' for a request without a valid token; who a refused sign-in claimed to be",
  }),
  actorId: Nullable(Type.Integer()),
  tokenId: Nullable(Type.Integer({ description: 'the token the request came with' })),
  via: StringEnum(['api', 'git', 'system']),
  action: Type.String({
    description:
      "what was done (app.create, config.change ...), or the request's 'METHOD /route' when it recorded nothing else",
  }),
  target: Type.String({ description: 'the app, team or user acted on; the path when none' }),
  app: Nullable(Type.String()),
  team: Nullable(Type.String({ description: "the app's or team's team, when the viewer is in it" })),
  outcome: AuditOutcome,
  status: Nullable(Type.Integer({ description: "the request's HTTP status" })),
  ip: Nullable(Type.String({ description: 'the address the request came from' })),
  requestId: Nullable(Type.String({ description: "the request's id (its X-Request-Id answer header)" })),
  detail: Type.Record(Type.String(), Type.Unknown()),
});
export type AuditEvent = Static<typeof AuditEvent>;

export const AuditList = Type.Object({
  events: Type.Array(AuditEvent, { description: 'newest first' }),
  next: Nullable(
    Type.Integer({ description: "older events: ask again with before=next; null when there's none" }),
  ),
});
export type AuditList = Static<typeof AuditList>;

export const AUDIT_LIMIT_MAX = 1000;

export const AuditQuery = Type.Object({
  app: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  team: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  user: Type.Optional(Type.String({ minLength: 1, maxLength: 320, description: "a user's e-mail or name" })),
  since: Type.Optional(
    Type.String({
      maxLength: 40,
      description: 'a duration back from now (30m, 12h, 7d, 2w) or a date or ISO time',
    }),
  ),
  until: Type.Optional(Type.String({ maxLength: 40, description: 'as since; events before it' })),
  action: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 200,
      description: 'an action (app.create) or its start (app, POST)',
    }),
  ),
  outcome: Type.Optional(AuditOutcome),
  limit: Type.Integer({ minimum: 1, maximum: AUDIT_LIMIT_MAX, default: 100 }),
  before: Type.Optional(
    Type.Integer({ minimum: 1, description: "events older than this id (a page's next)" }),
  ),
});
export type AuditQuery = Static<typeof AuditQuery>;

export const AuditVerification = Type.Object({
  ok: Type.Boolean(),
  checked: Type.Integer({ description: 'events checked, from the first' }),
  last: Nullable(
    Type.Object(
      { id: Type.Integer(), hash: Type.String() },
      { description: 'the newest good event and its hash: kept elsewhere, it shows a rewritten chain' },
    ),
  ),
  firstBad: Nullable(
    Type.Object({ id: Type.Integer(), reason: Type.String() }, { description: 'where the chain breaks' }),
  ),
});
export type AuditVerification = Static<typeof AuditVerification>;
