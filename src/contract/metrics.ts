// How an app and the platform are doing (issue 18): an app's figures over a period, and the
// public status (the promise beside what was measured, incidents, public apps' availability).
import { type Static, Type } from '@sinclair/typebox';
import { Nullable } from './common.js';

export const MetricsQuery = Type.Object({
  since: Type.Optional(
    Type.String({ description: 'how far back: 1h, 24h, 7d (up to 90d); default 1h', maxLength: 16 }),
  ),
});
export type MetricsQuery = Static<typeof MetricsQuery>;

const Figures = {
  requests: Type.Integer(),
  s2xx: Type.Integer(),
  s3xx: Type.Integer(),
  s4xx: Type.Integer(),
  s5xx: Type.Integer(),
  bytes: Type.Integer(),
  p50Ms: Nullable(Type.Number({ description: 'upper bound of the latency bucket; null: no request' })),
  p95Ms: Nullable(Type.Number()),
  p99Ms: Nullable(Type.Number()),
  probesOk: Type.Integer(),
  probesFailed: Type.Integer(),
  wakes: Type.Integer(),
  wakeMs: Type.Integer(),
  cpuMs: Type.Integer(),
  memoryMaxBytes: Type.Integer(),
  restarts: Type.Integer(),
  oomKills: Type.Integer(),
};

export const MetricsPoint = Type.Object({
  at: Type.String({ description: 'start of the minute or hour' }),
  ...Figures,
});
export type MetricsPoint = Static<typeof MetricsPoint>;

const TypeFigures = {
  instances: Type.Integer({ description: 'the most instances of the type measured at once' }),
  memoryMaxBytes: Type.Integer({ description: 'the highest memory of one of its instances' }),
  memoryLimitMiB: Type.Integer({ description: 'the memory limit of each instance then' }),
  cpuMs: Type.Integer({ description: 'CPU time its instances used' }),
  cpuLimitMs: Type.Integer({
    description:
      'CPU time their CPU limit allowed over the time measured: cpuMs / cpuLimitMs is the share used',
  }),
};

export const ProcessTypeMetrics = Type.Object({
  type: Type.String({
    description: "the process type (Procfile name: web, worker ...); '(other)' sums those past the 10th",
  }),
  ...TypeFigures,
  points: Type.Array(
    Type.Object({ at: Type.String({ description: 'start of the minute or hour' }), ...TypeFigures }),
  ),
});
export type ProcessTypeMetrics = Static<typeof ProcessTypeMetrics>;

export const Availability = Type.Object({
  h24: Nullable(Type.Number({ description: 'share of the last 24 hours up (0..1); null: nothing measured' })),
  d7: Nullable(Type.Number()),
  d30: Nullable(Type.Number()),
});
export type Availability = Static<typeof Availability>;

export const AppAlert = Type.Object({
  kind: Type.String({ description: "'5xx', 'crash-loop' or 'memory'" }),
  message: Type.String(),
  startedAt: Type.String(),
  endedAt: Nullable(Type.String()),
});
export type AppAlert = Static<typeof AppAlert>;

export const AppMetrics = Type.Object({
  app: Type.String(),
  since: Type.String(),
  resolution: Type.Union([Type.Literal('minute'), Type.Literal('hour')]),
  totals: Type.Object(Figures),
  mailSent: Type.Integer({
    description: 'messages handed to the mail relay in the period, refused ones left out',
  }),
  points: Type.Array(MetricsPoint),
  limits: Type.Object({ memoryMiB: Type.Integer(), cpus: Type.Number() }),
  processTypes: Type.Array(ProcessTypeMetrics, {
    description:
      'memory and CPU per process type against the limits, web first; types that ran in the period',
  }),
  availability: Availability,
  alerts: Type.Array(AppAlert),
});
export type AppMetrics = Static<typeof AppMetrics>;

export const Incident = Type.Object({
  kind: Type.String({ description: "'control-plane', 'router', 'host-reboot' or 'addon-server'" }),
  subject: Type.String(),
  startedAt: Type.String(),
  endedAt: Nullable(Type.String()),
  durationSeconds: Type.Integer(),
});
export type Incident = Static<typeof Incident>;

export const PlatformStatus = Type.Object({
  promise: Type.String(),
  target: Type.Number(),
  measuredSince: Nullable(Type.String()),
  platform: Availability,
  incidents: Type.Array(Incident),
  apps: Type.Array(Type.Object({ name: Type.String(), availability: Availability })),
});
export type PlatformStatus = Static<typeof PlatformStatus>;
