// Config vars, the releases they and deploys make, and rolling back to an earlier one.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

/** An app's config vars: the environment its processes get, besides what Petri sets (PETRI_*, PORT). */
export const ConfigVars = Type.Record(Type.String(), Type.String());
export type ConfigVars = Static<typeof ConfigVars>;

export const ConfigEnvelope = Type.Object({ config: ConfigVars });

/** A change to config vars; the server makes a new release of it. */
export const ConfigChange = Type.Object(
  {
    set: Type.Optional(Type.Record(Type.String(), Type.String())),
    unset: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);
export type ConfigChange = Static<typeof ConfigChange>;

export const RELEASE_STATUSES = ['pending', 'succeeded', 'failed'] as const;
export const ReleaseStatus = StringEnum([...RELEASE_STATUSES], {
  description: 'pending until it serves or fails',
});
export type ReleaseStatus = Static<typeof ReleaseStatus>;

export const ReleaseKind = StringEnum(['deploy', 'config', 'rollback', 'addon']);
export type ReleaseKind = Static<typeof ReleaseKind>;

/** A version of an app: a slug with a config. */
export const Release = Type.Object(
  {
    version: Type.String({ description: 'v1, v2 ...' }),
    status: ReleaseStatus,
    kind: ReleaseKind,
    description: Type.String({ description: 'e.g. "Deploy d12ab", "Set FOO, BAR", "Rollback to v2"' }),
    current: Type.Boolean({ description: 'serving now' }),
    error: Nullable(Type.String(), {
      description: 'why it failed; for a failing release phase, its output too',
    }),
    createdBy: Type.String(),
    createdAt: Type.String(),
  },
  { $id: 'Release' },
);
export type Release = Static<typeof Release>;

export const ReleaseEnvelope = Type.Object({ release: Release });
export const MaybeReleaseEnvelope = Type.Object({
  release: Nullable(Release, {
    description: 'null when the app has no release yet: the change applies to its first',
  }),
});
export const ReleaseList = Type.Object({ releases: Type.Array(Release) });

export const ReleaseParams = Type.Object({
  name: Type.String(),
  version: Type.String({ description: 'v3' }),
});

export const RollbackBody = Type.Object(
  { version: Type.Optional(Type.String({ description: 'default: the one before the current' })) },
  { additionalProperties: false },
);
export type RollbackBody = Static<typeof RollbackBody>;
