// /v1/apps/:name/egress and /v1/egress/report: whom experiments talk to, declared against
// attempted, for the app's owner and for the operator.
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { getApp } from '../../domain/apps.js';
import { declaredEgress, type EgressAttempt, egressAttempts } from '../../domain/egress.js';
import { UserError } from '../../lib/errors.js';
import type { ApiContext } from '../context.js';
import { AppNameParams, errorResponses } from '../schemas.js';

const Attempt = Type.Object({
  app: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  allowed: Type.Boolean(),
  count: Type.Integer(),
  lastSeen: Type.String(),
  lastReason: Type.Union([Type.String(), Type.Null()]),
});

export function egressRoutes(api: FastifyInstance, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/v1/apps/:name/egress',
    {
      schema: {
        summary:
          'Hosts the app declared in petri.toml, and every host it tried to reach through the egress proxy',
        params: AppNameParams,
        response: {
          200: Type.Object({ declared: Type.Array(Type.String()), attempts: Type.Array(Attempt) }),
          ...errorResponses,
        },
      },
    },
    async (req) => {
      await ctx.flushEgress();
      const app = await getApp(db, req.user, (req.params as { name: string }).name);
      return { declared: await declaredEgress(db, app), attempts: await egressAttempts(db, app) };
    },
  );

  api.get(
    '/v1/egress/report',
    {
      schema: {
        summary: "Every app's egress in one table (admins); format=csv for a spreadsheet",
        querystring: Type.Object({
          format: Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json' }),
        }),
        response: { 200: Type.Object({ attempts: Type.Array(Attempt) }), ...errorResponses },
      },
    },
    async (req, reply) => {
      if (req.user.role !== 'admin') throw new UserError('forbidden', 'the egress report is for admins');
      await ctx.flushEgress();
      const attempts = await egressAttempts(db);
      if ((req.query as { format: string }).format === 'csv') {
        return reply.type('text/csv; charset=utf-8').send(toCsv(attempts));
      }
      return { attempts };
    },
  );
}

function toCsv(rows: EgressAttempt[]): string {
  const cell = (v: string | number | boolean | null) => {
    const s = v === null ? '' : String(v);
    // Quote every field that could break the row, and neutralise spreadsheet formulas.
    const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
    return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
  };
  const header = 'app,host,port,allowed,count,last_seen,last_reason';
  return `${[header, ...rows.map((r) => [r.app, r.host, r.port, r.allowed, r.count, r.lastSeen, r.lastReason].map(cell).join(','))].join('\n')}\n`;
}
