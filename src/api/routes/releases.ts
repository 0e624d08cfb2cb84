// /v1/apps/:name/config, /releases, /rollback: what an app runs with, and its history.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { getApp } from '../../domain/apps.js';
import { changeConfig, readConfig } from '../../domain/config-vars.js';
import { listReleases, releaseByVersion, rollback } from '../../domain/releases.js';
import type { Store } from '../../store/db.js';
import type { App, Release } from '../../store/schema.js';
import type { ApiContext } from '../context.js';
import { AppNameParams, ErrorBody, errorResponses, Release as ReleaseSchema } from '../schemas.js';

export function releaseRoutes(api: FastifyInstance, ctx: ApiContext): void {
  const { db, secrets } = ctx;
  const withConflict = { ...errorResponses, 409: ErrorBody };

  api.get(
    '/v1/apps/:name/config',
    {
      schema: {
        summary: "The app's config vars (owner or admin only)",
        params: AppNameParams,
        response: {
          200: Type.Object({ config: Type.Record(Type.String(), Type.String()) }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      return { config: readConfig(secrets, app.config_sealed) };
    },
  );

  api.patch(
    '/v1/apps/:name/config',
    {
      schema: {
        summary: 'Set and unset config vars: a new release, swapped in with zero downtime',
        params: AppNameParams,
        body: Type.Object(
          {
            set: Type.Optional(Type.Record(Type.String(), Type.String())),
            unset: Type.Optional(Type.Array(Type.String())),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({ release: Type.Union([ReleaseSchema, Type.Null()]) }),
          ...withConflict,
        },
      },
    },
    async (req, reply) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      const { set = {}, unset = [] } = req.body as { set?: Record<string, string>; unset?: string[] };
      const release = await changeConfig(db, secrets, req.user, app, set, unset, req.ip);
      ctx.nudge();
      return reply.code(201).send({ release: release ? await presentRelease(db, app, release) : null });
    },
  );

  api.get(
    '/v1/apps/:name/releases',
    {
      schema: {
        summary: "The app's releases, newest first",
        params: AppNameParams,
        response: { 200: Type.Object({ releases: Type.Array(ReleaseSchema) }), ...errorResponses },
      },
    },
    async (req) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      const releases = await listReleases(db, app);
      return { releases: await Promise.all(releases.map((r) => presentRelease(db, app, r))) };
    },
  );

  api.get(
    '/v1/apps/:name/releases/:version',
    {
      schema: {
        summary: 'One release (v3)',
        params: Type.Object({ name: Type.String(), version: Type.String() }),
        response: { 200: Type.Object({ release: ReleaseSchema }), ...errorResponses },
      },
    },
    async (req) => {
      const { name, version } = req.params as { name: string; version: string };
      const app = await getApp(db, req.user, name);
      return { release: await presentRelease(db, app, await releaseByVersion(db, app, version)) };
    },
  );

  api.post(
    '/v1/apps/:name/rollback',
    {
      schema: {
        summary: 'A new release from an earlier one (default: the one before the current), with no rebuild',
        params: AppNameParams,
        body: Type.Object({ version: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: { 201: Type.Object({ release: ReleaseSchema }), ...withConflict },
      },
    },
    async (req, reply) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      const { version } = (req.body ?? {}) as { version?: string };
      const release = await rollback(db, secrets, req.user, app, version, req.ip);
      ctx.nudge();
      return reply.code(201).send({ release: await presentRelease(db, app, release) });
    },
  );
}

export async function presentRelease(db: Store, app: App, release: Release) {
  const fresh = await db
    .selectFrom('apps')
    .select('serving_release_id')
    .where('id', '=', app.id)
    .executeTakeFirst();
  const user = await db
    .selectFrom('users')
    .select('name')
    .where('id', '=', release.created_by)
    .executeTakeFirst();
  return {
    version: `v${release.version}`,
    status: release.status,
    kind: release.kind,
    description: release.description,
    current: fresh?.serving_release_id === release.id,
    error: release.error,
    createdBy: user?.name ?? 'unknown',
    createdAt: release.created_at,
  };
}
