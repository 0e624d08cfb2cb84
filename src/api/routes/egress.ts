// /v1/apps/:name/egress and /v1/egress/report: whom experiments talk to, declared against
// attempted, for the app's team and for the operator.
import {
  AppEgress,
  AppNameParams,
  EGRESS_CSV_HEADER,
  EgressReport,
  EgressReportCsv,
  EgressReportQuery,
  errorResponses,
} from '../../contract/index.js';
import { declaredEgress, type EgressAttempt, egressAttempts } from '../../domain/egress.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function egressRoutes(api: Api, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/v1/apps/:name/egress',
    {
      config: { access: 'app.read' },
      schema: {
        summary:
          'Hosts the app declared in petri.toml, and every host it tried to reach through the egress proxy',
        params: AppNameParams,
        response: { 200: AppEgress, ...errorResponses },
      },
    },
    async (req) => {
      await ctx.flushEgress();
      const app = targetApp(req);
      return { declared: await declaredEgress(db, app), attempts: await egressAttempts(db, app) };
    },
  );

  api.get(
    '/v1/egress/report',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: "Every app's egress in one table (admins and auditors); format=csv for a spreadsheet",
        querystring: EgressReportQuery,
        response: {
          200: {
            description: 'the attempts, as JSON or (format=csv) CSV',
            content: {
              'application/json': { schema: EgressReport },
              'text/csv': { schema: EgressReportCsv },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      await ctx.flushEgress();
      const attempts = await egressAttempts(db);
      if (req.query.format === 'csv') {
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
  const header = EGRESS_CSV_HEADER;
  return `${[header, ...rows.map((r) => [r.app, r.host, r.port, r.allowed, r.count, r.lastSeen, r.lastReason].map(cell).join(','))].join('\n')}\n`;
}
