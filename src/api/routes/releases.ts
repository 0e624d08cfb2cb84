// /v1/apps/:name/config, /releases, /rollback: what an app runs with, and its history.
import {
  AppNameParams,
  ConfigChange,
  ConfigEnvelope,
  ErrorBody,
  errorResponses,
  MaybeReleaseEnvelope,
  ReleaseEnvelope,
  ReleaseList,
  ReleaseParams,
  type Release as ReleaseView,
  RollbackBody,
} from '../../contract/index.js';
import { userName } from '../../domain/auth.js';
import { changeConfig, readConfig } from '../../domain/config-vars.js';
import { isServingRelease, listReleases, releaseByVersion, rollback } from '../../domain/releases.js';
import type { Store } from '../../store/db.js';
import type { App, Release } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function releaseRoutes(api: Api, ctx: ApiContext): void {
  const { db, secrets } = ctx;
  const withConflict = { ...errorResponses, 409: ErrorBody };

  api.get(
    '/v1/apps/:name/config',
    {
      config: { access: 'app.secrets' },
      schema: {
        summary: "The app's config vars (members and admins of its team, platform admins)",
        params: AppNameParams,
        response: { 200: ConfigEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      return { config: readConfig(secrets, app.config_sealed) };
    },
  );

  api.patch(
    '/v1/apps/:name/config',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Set and unset config vars: a new release, swapped in with zero downtime',
        params: AppNameParams,
        body: ConfigChange,
        response: { 201: MaybeReleaseEnvelope, ...withConflict },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const { set = {}, unset = [] } = req.body;
      const release = await changeConfig(db, secrets, req.user, app, set, unset, req.ip);
      ctx.nudge();
      return reply.code(201).send({ release: release ? await presentRelease(db, app, release) : null });
    },
  );

  api.get(
    '/v1/apps/:name/releases',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The app's releases, newest first",
        params: AppNameParams,
        response: { 200: ReleaseList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const releases = await listReleases(db, app);
      return { releases: await Promise.all(releases.map((r) => presentRelease(db, app, r))) };
    },
  );

  api.get(
    '/v1/apps/:name/releases/:version',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'One release (v3)',
        params: ReleaseParams,
        response: { 200: ReleaseEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const { version } = req.params;
      const app = targetApp(req);
      return { release: await presentRelease(db, app, await releaseByVersion(db, app, version)) };
    },
  );

  api.post(
    '/v1/apps/:name/rollback',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'A new release from an earlier one (default: the one before the current), with no rebuild',
        params: AppNameParams,
        body: RollbackBody,
        response: { 201: ReleaseEnvelope, ...withConflict },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      // No body at all (petri rollback with no version) is the same as {}.
      const { version } = req.body ?? {};
      const release = await rollback(db, secrets, req.user, app, version, req.ip);
      ctx.nudge();
      return reply.code(201).send({ release: await presentRelease(db, app, release) });
    },
  );
}

export async function presentRelease(db: Store, app: App, release: Release): Promise<ReleaseView> {
  return {
    version: `v${release.version}`,
    status: release.status,
    kind: release.kind,
    description: release.description,
    current: await isServingRelease(db, app.id, release.id),
    error: release.error,
    createdBy: (await userName(db, release.created_by)) ?? 'unknown',
    createdAt: release.created_at,
  };
}
