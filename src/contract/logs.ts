// The app's log lines, one NDJSON line each, and how many to read or whether to follow.
import { type Static, Type } from '@sinclair/typebox';

export const LogLine = Type.Object({
  time: Type.String(),
  source: Type.String({
    description: 'where the line came from: a process (web.1), build, release, router ...',
  }),
  text: Type.String(),
});
export type LogLine = Static<typeof LogLine>;

export const LogsQuery = Type.Object({
  lines: Type.Integer({ minimum: 0, maximum: 10_000, default: 100 }),
  follow: Type.Boolean({ default: false }),
  source: Type.Optional(Type.String({ description: 'only lines of this source, e.g. web.1 or build' })),
});
