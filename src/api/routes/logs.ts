// /v1/apps/:name/logs: the app's recent lines, and a live tail.
import { PassThrough } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { getApp } from '../../domain/apps.js';
import type { ApiContext } from '../context.js';
import { AppNameParams, errorResponses } from '../schemas.js';
import { closedSignal } from './deploys.js';

export function logRoutes(api: FastifyInstance, ctx: ApiContext): void {
  api.get(
    '/v1/apps/:name/logs',
    {
      schema: {
        summary: 'App logs as NDJSON lines {time, source, text}; follow=true keeps the stream open',
        params: AppNameParams,
        querystring: Type.Object({
          lines: Type.Integer({ minimum: 0, maximum: 10_000, default: 100 }),
          follow: Type.Boolean({ default: false }),
          source: Type.Optional(
            Type.String({ description: 'only lines of this source, e.g. web.1 or build' }),
          ),
        }),
        response: errorResponses,
      },
    },
    async (req, reply) => {
      const app = await getApp(ctx.db, req.user, (req.params as { name: string }).name);
      const { lines, follow, source } = req.query as { lines: number; follow: boolean; source?: string };
      const sources = source ? [source] : undefined;
      const out = new PassThrough();
      const write = (l: { time: string; source: string; text: string }) => {
        if (!sources || sources.includes(l.source)) out.write(`${JSON.stringify(l)}\n`);
      };
      for (const line of lines > 0 ? ctx.logs.read(app.name, { lines, sources }) : []) write(line);
      if (!follow) out.end();
      else {
        const closed = closedSignal(req);
        ctx.logs.follow(app.name, write, closed).finally(() => out.end());
      }
      return reply.type('application/x-ndjson').send(out);
    },
  );
}
