// /v1/apps/:name/ps, /formation, /restart: the app's processes, their number, restarts.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { getApp } from '../../domain/apps.js';
import { getFormation, restart, scale } from '../../domain/formation.js';
import { instancesOfApp } from '../../domain/instances.js';
import type { App } from '../../store/schema.js';
import type { ApiContext } from '../context.js';
import { AppNameParams, errorResponses } from '../schemas.js';

const Formation = Type.Record(Type.String(), Type.Integer({ minimum: 0 }));

const ProcessStatus = Type.Object({
  name: Type.String(),
  type: Type.String(),
  release: Type.String(),
  state: Type.String(),
  startedAt: Type.Union([Type.String(), Type.Null()]),
  uptimeSeconds: Type.Union([Type.Number(), Type.Null()]),
  restarts: Type.Integer(),
  memoryBytes: Type.Union([Type.Number(), Type.Null()]),
  cpuSeconds: Type.Union([Type.Number(), Type.Null()]),
  port: Type.Union([Type.Integer(), Type.Null()]),
  address: Type.Union([Type.String(), Type.Null()]),
  lastExit: Type.Union([Type.String(), Type.Null()]),
  lastLines: Type.Array(Type.String()),
});

export function psRoutes(api: FastifyInstance, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/v1/apps/:name/ps',
    {
      schema: {
        summary: "The app's formation and processes with state, uptime, restarts, memory and CPU",
        params: AppNameParams,
        response: {
          200: Type.Object({
            formation: Formation,
            processes: Type.Array(ProcessStatus),
            sleepingSince: Type.Union([Type.String(), Type.Null()], {
              description: 'while the app sleeps: no process runs until the next request',
            }),
          }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      return {
        formation: await getFormation(db, app),
        processes: await presentProcesses(ctx, app),
        sleepingSince: app.sleeping_since,
      };
    },
  );

  api.patch(
    '/v1/apps/:name/formation',
    {
      schema: {
        summary: 'Scale process types: {"web": 3, "worker": 1}',
        params: AppNameParams,
        body: Formation,
        response: { 200: Type.Object({ formation: Formation }), ...errorResponses },
      },
    },
    async (req) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      const formation = await scale(
        db,
        req.user,
        app,
        req.body as Record<string, number>,
        ctx.config.ceilings,
        req.ip,
      );
      ctx.nudge();
      return { formation };
    },
  );

  api.post(
    '/v1/apps/:name/restart',
    {
      schema: {
        summary: 'Restart every process (or one type) with zero downtime: new instances first',
        params: AppNameParams,
        body: Type.Object({ type: Type.Optional(Type.String()) }, { additionalProperties: false }),
        response: { 202: Type.Object({ restarting: Type.Array(Type.String()) }), ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      const { type } = (req.body ?? {}) as { type?: string };
      const restarting = await restart(db, req.user, app, type, req.ip);
      ctx.nudge();
      return reply.code(202).send({ restarting });
    },
  );
}

async function presentProcesses(ctx: ApiContext, app: App) {
  const rows = await instancesOfApp(ctx.db, app.id);
  const usage = await ctx.usage(
    rows.filter((r) => r.state === 'up' || r.state === 'starting').map((r) => r.id),
  );
  const versions = new Map(
    (
      await ctx.db.selectFrom('releases').select(['id', 'version']).where('app_id', '=', app.id).execute()
    ).map((r) => [r.id, r.version]),
  );
  return rows.map((r) => {
    const name = `${r.type}.${r.idx}`;
    const use = usage.get(r.id);
    const lastLines =
      r.state === 'crashed' ? ctx.logs.read(app.name, { lines: 5, sources: [name] }).map((l) => l.text) : [];
    return {
      name,
      type: r.type,
      release: `v${versions.get(r.release_id) ?? '?'}`,
      state: r.state,
      startedAt: r.started_at,
      uptimeSeconds:
        r.state === 'up' && r.ready_at ? Math.round((Date.now() - Date.parse(r.ready_at)) / 1000) : null,
      restarts: r.restarts,
      memoryBytes: use?.memoryBytes ?? null,
      cpuSeconds: use?.cpuSeconds ?? null,
      port: r.type === 'web' ? r.port : null,
      address: r.address,
      lastExit: r.exit_reason,
      lastLines,
    };
  });
}
