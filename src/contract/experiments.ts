// Apps as experiments: their description, data class, stage and expiry as `petri apps info`
// shows them; what `petri apps set` changes; the operators' inventory and the platform's
// report. Values people type (a data class, a retention, a URL) travel as text and are
// checked by the server, whose errors name the field.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const DataClass = StringEnum(['none', 'anonymous', 'personal', 'sensitive'], {
  description: 'what data the experiment holds; personal and sensitive need a privacy note and a retention',
});
export type DataClass = Static<typeof DataClass>;

export const Stage = StringEnum(['experiment', 'graduating', 'graduated', 'archived'], {
  description:
    'experiment (expires), graduating (a handoff in progress; expiry suspended), graduated (handed off), archived',
});
export type Stage = Static<typeof Stage>;

/** The experiment side of an app (App.experiment). */
export const Experiment = Type.Object({
  description: Type.String(),
  dataClass: DataClass,
  privacyNote: Nullable(Type.String(), { description: 'what is collected and why' }),
  retentionDays: Nullable(Type.Integer(), { description: 'how long the data is kept, in days' }),
  approvedClass: Nullable(DataClass, { description: 'the data class an admin approved, if any' }),
  awaitsReview: Type.Boolean({
    description: 'sensitive data without an admin approval: the URL answers a page saying it awaits review',
  }),
  stage: Stage,
  expiresAt: Nullable(Type.String(), { description: 'null while graduating, once graduated or archived' }),
  expiredAt: Nullable(Type.String(), { description: 'when it stopped at expiry; null once renewed' }),
  archivedAt: Nullable(Type.String()),
  redirectUrl: Nullable(Type.String(), { description: "a graduated app's new home" }),
});
export type Experiment = Static<typeof Experiment>;

/** The fields `petri apps create` may give besides the name (and petri.toml at deploy). */
export const ExperimentCreateFields = {
  description: Type.Optional(Type.String({ maxLength: 10_000, description: 'what the experiment is' })),
  data: Type.Optional(
    Type.String({ maxLength: 100, description: 'none (default), anonymous, personal or sensitive' }),
  ),
  privacy: Type.Optional(
    Type.String({ maxLength: 10_000, description: 'for personal or sensitive data: what is collected, why' }),
  ),
  retention: Type.Optional(
    Type.String({
      maxLength: 100,
      description: 'for personal or sensitive data: how long it is kept (30d, 12w, 1y)',
    }),
  ),
};

/** PATCH /v1/apps/:name/experiment: `petri apps set NAME key=value ...`, each optional. */
export const ExperimentUpdate = Type.Object(
  {
    ...ExperimentCreateFields,
    expires: Type.Optional(
      Type.String({ maxLength: 100, description: 'admins: the exact expiry, e.g. 2027-03-01T00:00:00Z' }),
    ),
    stage: Type.Optional(
      Type.String({
        maxLength: 100,
        description: 'admins: graduated (closes a handoff) or experiment (back)',
      }),
    ),
    redirect: Type.Optional(
      Nullable(Type.String({ maxLength: 10_000 }), {
        description: "team admins: a graduated app's new home (http or https); null or '' removes it",
      }),
    ),
  },
  { additionalProperties: false },
);
export type ExperimentUpdate = Static<typeof ExperimentUpdate>;

/** POST /v1/apps/:name/approve: what the admin reviewed, as `petri apps info` showed it. The
 * approval is refused (409) when the app says something else now; fields left out are not
 * compared (no body: the app as it is). */
export const ApproveBody = Type.Object(
  {
    data: Type.Optional(DataClass),
    privacyNote: Type.Optional(Nullable(Type.String({ maxLength: 100_000 }))),
    retentionDays: Type.Optional(Nullable(Type.Integer())),
  },
  { additionalProperties: false },
);
export type ApproveBody = Static<typeof ApproveBody>;

// ---------------------------------------------------------------------------------------
// The inventory (GET /v1/inventory, `petri inventory`).

export const InventoryQuery = Type.Object({
  team: Type.Optional(Type.String({ maxLength: 100 })),
  stage: Type.Optional(Type.String({ maxLength: 100 })),
  data: Type.Optional(Type.String({ maxLength: 100, description: 'a data class' })),
  expiring: Type.Optional(
    Type.String({ maxLength: 20, description: 'experiments that expire within this long (14d, 36h, 2w)' }),
  ),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')])),
});
export type InventoryQuery = Static<typeof InventoryQuery>;

export const InventoryAddon = Type.Object({
  name: Type.String(),
  type: Type.String(),
  sizeBytes: Nullable(Type.Integer(), { description: 'size now, as the engine says; null if unknown' }),
});

export const InventoryRow = Type.Object({
  name: Type.String(),
  url: Type.String(),
  team: Type.String(),
  owner: Type.String(),
  description: Type.String(),
  stage: Stage,
  dataClass: DataClass,
  privacyNote: Nullable(Type.String()),
  retentionDays: Nullable(Type.Integer()),
  approved: Type.Boolean({ description: 'an admin approved the data class it declares' }),
  audience: Nullable(Type.String(), {
    description: 'who may reach it: public, staff or invite (the router does not enforce it yet)',
  }),
  egressDeclared: Type.Array(Type.String(), {
    description: "host:port patterns of petri.toml's [network] egress",
  }),
  egressReached: Type.Array(Type.String(), { description: 'host:port it reached through the egress proxy' }),
  egressRefused: Type.Integer({ description: 'attempts the egress proxy refused' }),
  addons: Type.Array(InventoryAddon),
  limits: Type.Object({ memoryMiB: Type.Integer(), cpus: Type.Number() }),
  processes: Type.Integer({ description: 'instances running now' }),
  memoryBytes: Nullable(Type.Integer(), { description: 'memory its running instances use now' }),
  cpuSeconds: Nullable(Type.Number(), { description: 'CPU time of its running instances' }),
  requests7d: Type.Integer({ description: 'requests the router passed to the app in the last 7 days' }),
  requests24h: Type.Array(Type.Integer(), {
    description: 'requests per hour over the last 24 hours, oldest first (the last: the hour so far)',
  }),
  mail30d: Type.Object(
    { sent: Type.Integer(), bounced: Type.Integer(), refused: Type.Integer() },
    { description: 'its mail through the relay in the last 30 days (sent includes captured)' },
  ),
  lastRequestAt: Nullable(Type.String()),
  createdAt: Type.String(),
  lastDeployAt: Nullable(Type.String(), { description: 'the last deploy that succeeded' }),
  expiresAt: Nullable(Type.String()),
  expiredAt: Nullable(Type.String()),
  stack: Nullable(Type.String(), { description: 'e.g. node 22.11.0, python; null before the first release' }),
});
export type InventoryRow = Static<typeof InventoryRow>;

export const Inventory = Type.Object({ apps: Type.Array(InventoryRow) });
export type Inventory = Static<typeof Inventory>;

export const INVENTORY_CSV_HEADER =
  'name,team,owner,description,stage,data_class,privacy_note,retention_days,approved,audience,egress_declared,egress_reached,egress_refused,addons,memory_mib,cpus,processes,memory_bytes,cpu_seconds,requests_7d,mail_sent_30d,mail_bounced_30d,mail_refused_30d,last_request_at,created_at,last_deploy_at,expires_at,stack';
export const InventoryCsv = Type.String({
  description: `text/csv: ${INVENTORY_CSV_HEADER}, then a row per app (lists joined with spaces)`,
});

// ---------------------------------------------------------------------------------------
// The report (GET /v1/report, `petri report`).

export const ReportQuery = Type.Object({
  since: Type.Optional(
    Type.String({ maxLength: 40, description: 'the period: a duration back from now (365d, 12w) or a date' }),
  ),
});

export const Report = Type.Object({
  since: Type.String(),
  until: Type.String(),
  created: Type.Integer({ description: 'experiments created in the period (destroyed ones included)' }),
  deployed: Type.Integer({ description: 'of those, deployed at least once (a deploy that succeeded)' }),
  active: Type.Integer({ description: 'had a request or a deploy in the period' }),
  graduated: Type.Integer({ description: 'graduated (handed off), now' }),
  graduating: Type.Integer({ description: 'in a handoff, now' }),
  expired: Type.Integer({ description: 'stopped at expiry in the period (archived or not)' }),
  archived: Type.Integer({ description: 'archived in the period' }),
  destroyed: Type.Integer({ description: 'destroyed in the period' }),
  medianToFirstDeploySeconds: Nullable(Type.Number(), {
    description:
      'median time from apps create to the first deploy that served, of those created in the period',
  }),
  personalData: Type.Integer({ description: 'apps (not archived) that declare personal or sensitive data' }),
  sensitiveData: Type.Integer(),
  outsideHosts: Type.Integer({
    description: 'apps (not archived) that declare egress or reached an outside host in the period',
  }),
});
export type Report = Static<typeof Report>;
