// /v1/apps/:name/ps, /formation, /restart: the app's processes, their number, restarts.
import {
  AppNameParams,
  errorResponses,
  Formation,
  FormationEnvelope,
  type Process,
  ProcessList,
  RestartBody,
  Restarting,
} from '../../contract/index.js';
import { getFormation, restart, scale } from '../../domain/formation.js';
import { instancesOfApp } from '../../domain/instances.js';
import { releaseVersionsOf } from '../../domain/releases.js';
import type { App } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function psRoutes(api: Api, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/v1/apps/:name/ps',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The app's formation and processes with state, uptime, restarts, memory and CPU",
        params: AppNameParams,
        response: { 200: ProcessList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
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
      config: { access: 'app.write' },
      schema: {
        summary: 'Scale process types: {"web": 3, "worker": 1}',
        params: AppNameParams,
        body: Formation,
        response: { 200: FormationEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const formation = await scale(
        db,
        req.user,
        app,
        req.body,
        ctx.config.ceilings,
        req.ip,
        ctx.config.quotas,
      );
      ctx.nudge();
      return { formation };
    },
  );

  api.post(
    '/v1/apps/:name/restart',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Restart every process (or one type) with zero downtime: new instances first',
        params: AppNameParams,
        body: RestartBody,
        response: { 202: Restarting, ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      // No body at all restarts every type, as {} does.
      const { type } = req.body ?? {};
      const restarting = await restart(db, req.user, app, type, req.ip);
      ctx.nudge();
      return reply.code(202).send({ restarting });
    },
  );
}

async function presentProcesses(ctx: ApiContext, app: App): Promise<Process[]> {
  const rows = await instancesOfApp(ctx.db, app.id);
  const usage = await ctx.usage(
    rows.filter((r) => r.state === 'up' || r.state === 'starting').map((r) => r.id),
  );
  const versions = await releaseVersionsOf(ctx.db, app.id);
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
