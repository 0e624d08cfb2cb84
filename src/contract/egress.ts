// Whom an app talks to: the hosts it declared and every attempt through the egress proxy.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable } from './common.js';

export const EgressAttempt = Type.Object({
  app: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  allowed: Type.Boolean(),
  count: Type.Integer(),
  lastSeen: Type.String(),
  lastReason: Nullable(Type.String()),
});
export type EgressAttempt = Static<typeof EgressAttempt>;

export const AppEgress = Type.Object({
  declared: Type.Array(Type.String(), {
    description: "host:port patterns from petri.toml's [network] egress",
  }),
  attempts: Type.Array(EgressAttempt),
});
export type AppEgress = Static<typeof AppEgress>;

export const EgressReport = Type.Object({ attempts: Type.Array(EgressAttempt) });
export type EgressReport = Static<typeof EgressReport>;

export const EgressReportQuery = Type.Object({
  format: Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json' }),
});

export const EGRESS_CSV_HEADER = 'app,host,port,allowed,count,last_seen,last_reason';
/** The report with format=csv: the header, then a row per attempt. */
export const EgressReportCsv = Type.String({
  description: `text/csv: ${EGRESS_CSV_HEADER}, then a row per attempt`,
});
