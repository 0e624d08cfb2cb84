// A deploy (an uploaded or pushed source on its way to a release), and the NDJSON events
// that follow one while it builds and releases.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const DEPLOY_STATUSES = ['queued', 'building', 'releasing', 'succeeded', 'failed'] as const;
export const DeployStatus = StringEnum([...DEPLOY_STATUSES]);
export type DeployStatus = Static<typeof DeployStatus>;

export const Deploy = Type.Object(
  {
    id: Type.String(),
    app: Type.String(),
    status: DeployStatus,
    release: Nullable(Type.String(), { description: 'the release it made, once it made one' }),
    error: Nullable(Type.String()),
    createdAt: Type.String(),
    finishedAt: Nullable(Type.String()),
    durationMs: Nullable(Type.Integer()),
    url: Type.String(),
  },
  { $id: 'Deploy' },
);
export type Deploy = Static<typeof Deploy>;

export const DeployEnvelope = Type.Object({ deploy: Deploy });
export const DeployList = Type.Object({ deploys: Type.Array(Deploy) });

export const DeployParams = Type.Object({ name: Type.String(), id: Type.String() });

export const DeployQuery = Type.Object({
  noCache: Type.Boolean({ default: false, description: 'build from scratch, without the build cache' }),
});

/** A line of build or release output while a deploy runs. */
export const DeployLogEvent = Type.Object({
  type: Type.Literal('log'),
  time: Type.String(),
  source: Type.String(),
  text: Type.String(),
});
export type DeployLogEvent = Static<typeof DeployLogEvent>;

/** The last event of a deploy stream: the deploy in its final state. */
export const DeployEndEvent = Type.Object({ type: Type.Literal('end'), deploy: Deploy });
export type DeployEndEvent = Static<typeof DeployEndEvent>;

/** One line of the deploy stream (application/x-ndjson). */
export const DeployEvent = Type.Union([DeployLogEvent, DeployEndEvent]);
export type DeployEvent = Static<typeof DeployEvent>;
