// /v1/apps: create, list, show, limits, destroy.
import {
  App,
  AppEnvelope,
  AppList,
  AppNameParams,
  AppUpdate,
  CreateAppBody,
  DestroyAppQuery,
  ErrorBody,
  errorResponses,
  NoContent,
} from '../../contract/index.js';
import { listApps } from '../../domain/app-access.js';
import {
  actorOf,
  createApp,
  destroyApp,
  findApp,
  setLimits,
  setSettings,
  sleepApp,
  wakeApp,
} from '../../domain/apps.js';
import { describeNewApp } from '../../domain/experiments.js';
import { secureAppDir } from '../../lib/data-dir-modes.js';
import { UserError } from '../../lib/errors.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { openStreams } from '../open-streams.js';
import { presentApp, presentApps } from '../present.js';

export function appRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  api.get(
    '/v1/apps',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'List apps',
        response: { 200: AppList, ...errorResponses },
      },
    },
    async (req) => {
      const apps = await listApps(db, req.user);
      return { apps: await presentApps(db, config, apps) };
    },
  );

  api.post(
    '/v1/apps',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'Create an app',
        body: CreateAppBody,
        response: { 201: App, 409: ErrorBody, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { name, team, description, data, privacy, retention } = req.body;
      // Checked before the app is made: a refused description makes no app.
      const experiment = describeNewApp(name, { description, data, privacy, retention }, config);
      const app = await createApp(
        db,
        req.user,
        name,
        config.defaultLimits,
        req.ip,
        config.ceilings.instancesPerOwner,
        config.ceilings.appsPerOwner,
        { team, quotas: config.quotas },
        experiment,
      );
      // Before anything is made in it: only the app's own uid may pass through its directory.
      await secureAppDir(ctx.paths, app.id, config.uidBase);
      ctx.nudge();
      return reply.code(201).send(await presentApp(db, config, app));
    },
  );

  api.get(
    '/v1/apps/:name',
    {
      config: { access: 'app.read' },
      schema: { summary: 'Show an app', params: AppNameParams, response: { 200: App, ...errorResponses } },
    },
    async (req) => {
      const app = targetApp(req);
      return presentApp(db, config, app);
    },
  );

  api.patch(
    '/v1/apps/:name',
    {
      config: { access: 'app.write' },
      schema: {
        summary: "Change an app's limits and settings; running instances get limits at their next start",
        params: AppNameParams,
        body: AppUpdate,
        response: { 200: App, ...errorResponses },
      },
    },
    async (req) => {
      let app = targetApp(req);
      const { limits, settings } = req.body;
      if (limits) app = await setLimits(db, req.user, app, limits, config, req.ip);
      if (settings) app = await setSettings(db, req.user, app, settings, req.ip);
      // A new idle period is the idle loop's to apply (the loops look at once).
      ctx.nudge();
      return presentApp(db, config, app);
    },
  );

  api.post(
    '/v1/apps/:name/sleep',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Put the app to sleep now: its processes stop, its route stays, the first request wakes it',
        params: AppNameParams,
        response: { 200: AppEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      if (app.serving_release_id === null) {
        throw new UserError('conflict', `'${app.name}' has no release that serves; deploy it first`);
      }
      if (app.desired_release_id !== app.serving_release_id) {
        throw new UserError(
          'conflict',
          `a release of '${app.name}' is on its way; put it to sleep once it serves`,
        );
      }
      const asleep = await sleepApp(db, actorOf(req.user, req.ip), app, 'petri apps sleep');
      ctx.nudge();
      return { app: await presentApp(db, config, asleep) };
    },
  );

  api.post(
    '/v1/apps/:name/wake',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Wake a sleeping app: its processes start again (the answer does not wait for them)',
        params: AppNameParams,
        response: { 200: AppEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      await wakeApp(db, actorOf(req.user, req.ip), app, 'petri apps wake');
      ctx.nudge();
      return { app: await presentApp(db, config, (await findApp(db, app.id)) ?? app) };
    },
  );

  api.delete(
    '/v1/apps/:name',
    {
      config: { access: 'app.admin' },
      schema: {
        summary: 'Destroy an app, its releases, instances and logs',
        params: AppNameParams,
        querystring: DestroyAppQuery,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { name } = req.params;
      const app = targetApp(req);
      const { confirm } = req.query;
      if (confirm !== app.name) {
        throw new UserError(
          'bad_request',
          `destroying '${name}' needs confirm=${name} (petri apps destroy ${name} --confirm ${name})`,
        );
      }
      // Every add-on's data is backed up (kept for the retention period) before it goes;
      // if one cannot be, the app stays.
      await ctx.addons.destroyAllOf(req.user, app, req.ip);
      await destroyApp(db, req.user, app, req.ip);
      ctx.logs.remove(app.name);
      // Its open streams (logs, deploys, one-offs, pushes) end with it (open-streams.ts).
      await openStreams(api, ctx).accessChanged({ appId: app.id });
      ctx.nudge();
      return reply.code(204).send(null);
    },
  );
}
