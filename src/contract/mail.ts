// The mail relay (issue 17): what an app sent, its limits and pause, its messages; the
// operator's report and the DNS records of the mail domain.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const MailCounts = Type.Object({
  sent: Type.Integer(),
  queued: Type.Integer(),
  deferred: Type.Integer(),
  bounced: Type.Integer(),
  refused: Type.Integer(),
  captured: Type.Integer(),
});
export type MailCounts = Static<typeof MailCounts>;

export const MailMessage = Type.Object({
  id: Type.String(),
  at: Type.String(),
  recipients: Type.Array(Type.String()),
  subject: Type.String(),
  status: StringEnum(['queued', 'deferred', 'sent', 'bounced', 'captured', 'refused']),
  size: Type.Integer(),
  reason: Nullable(Type.String(), { description: 'why it was refused or bounced' }),
});
export type MailMessage = Static<typeof MailMessage>;

export const AppMail = Type.Object({
  app: Type.String(),
  address: Type.String({ description: 'MAIL_FROM: the address the app sends as' }),
  limits: Type.Object({
    perHour: Type.Integer(),
    perDay: Type.Integer(),
    recipients: Type.Integer(),
    maxBytes: Type.Integer(),
    restrictToAudience: Type.Boolean(),
  }),
  pausedUntil: Nullable(Type.String(), { description: 'set while refusals in a row paused its mail' }),
  hour: MailCounts,
  day: MailCounts,
  month: MailCounts,
  last: Type.Array(MailMessage),
});
export type AppMail = Static<typeof AppMail>;

export const MailIdParams = Type.Object({ name: Type.String(), id: Type.String() });

export const MailMessageDetail = Type.Object({
  message: MailMessage,
  deliveries: Type.Array(
    Type.Object({
      recipient: Type.String(),
      status: Type.String(),
      attempts: Type.Integer(),
      lastError: Nullable(Type.String()),
      nextAttemptAt: Nullable(Type.String()),
      doneAt: Nullable(Type.String()),
    }),
  ),
  raw: Nullable(Type.String(), { description: 'the message as accepted: in capture mode only' }),
});
export type MailMessageDetail = Static<typeof MailMessageDetail>;

export const MailLimitsChange = Type.Object(
  {
    perHour: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000_000 }))),
    perDay: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 10_000_000 }))),
    recipients: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 1000 }))),
    resume: Type.Optional(Type.Boolean({ description: 'end a pause now' })),
  },
  { additionalProperties: false, description: 'null: back to the server default' },
);
export type MailLimitsChange = Static<typeof MailLimitsChange>;

export const MailRotated = Type.Object({
  app: Type.String(),
  note: Type.String(),
});
export type MailRotated = Static<typeof MailRotated>;

export const MailReportRow = Type.Intersect([Type.Object({ app: Type.String() }), MailCounts]);
export type MailReportRow = Static<typeof MailReportRow>;
export const MailReport = Type.Object({ apps: Type.Array(MailReportRow) });
export const MAIL_CSV_HEADER = 'app,sent,queued,deferred,bounced,refused,captured';
export const MailReportCsv = Type.String({ description: `text/csv: ${MAIL_CSV_HEADER}, then a row per app` });
export const MailReportQuery = Type.Object({
  format: Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json' }),
});

export const MailDns = Type.Object({
  domain: Type.String(),
  relay: Nullable(Type.String({ description: "the smarthost's host and port (never its credentials)" })),
  records: Type.Array(
    Type.Object({ name: Type.String(), type: Type.String(), value: Type.String(), why: Type.String() }),
  ),
});
export type MailDns = Static<typeof MailDns>;
