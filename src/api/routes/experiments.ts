// Experiments: describing one (PATCH /v1/apps/:name/experiment), an admin's approval of its
// data class, the operators' inventory (GET /v1/inventory, JSON or CSV) and the platform's
// report (GET /v1/report).
import { setTimeout } from 'node:timers';
import {
  App,
  AppNameParams,
  ApproveBody,
  ExperimentUpdate,
  errorResponses,
  INVENTORY_CSV_HEADER,
  Inventory,
  InventoryCsv,
  InventoryQuery,
  type InventoryRow,
  Report,
  ReportQuery,
} from '../../contract/index.js';
import { appNotFound } from '../../domain/access.js';
import { appUrl, findAppByName } from '../../domain/apps.js';
import { approveApp, setExperiment } from '../../domain/experiments.js';
import { inventory } from '../../domain/inventory.js';
import { platformReport } from '../../domain/report.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { presentApp } from '../present.js';

/** An add-on's size is asked of its engine; past this the inventory answers without it. */
const ADDON_SIZE_TIMEOUT_MS = 2000;

export function experimentRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  api.patch(
    '/v1/apps/:name/experiment',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          "Describe the experiment (description, data, privacy, retention); admins also set expires and stage, team admins a graduated app's redirect",
        params: AppNameParams,
        body: ExperimentUpdate,
        response: { 200: App, ...errorResponses },
      },
    },
    async (req) => {
      const app = await setExperiment(db, req.user, targetApp(req), req.body, {
        teamRole: req.target.teamRole ?? null,
        config,
        ip: req.ip,
      });
      ctx.nudge();
      return presentApp(db, config, app);
    },
  );

  api.post(
    '/v1/apps/:name/approve',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary:
          "An admin's approval of the data class the app declares (sensitive data serves beyond its team then)",
        params: AppNameParams,
        body: ApproveBody,
        response: { 200: App, ...errorResponses },
      },
      // No body: the app as it is now.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req) => {
      const found = await findAppByName(db, req.params.name);
      if (!found) throw appNotFound(req.params.name);
      const app = await approveApp(db, req.user, found, req.ip, req.body);
      ctx.nudge();
      return presentApp(db, config, app);
    },
  );

  api.get(
    '/v1/inventory',
    {
      config: { access: 'signed-in' },
      schema: {
        summary:
          "Every app with its team, owner, data, egress, add-ons, use and expiry (admins and auditors: all; others: their teams'); format=csv for a spreadsheet",
        querystring: InventoryQuery,
        response: {
          200: {
            description: 'the inventory, as JSON or (format=csv) CSV',
            content: {
              'application/json': { schema: Inventory },
              'text/csv': { schema: InventoryCsv },
            },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { format, ...filters } = req.query;
      await ctx.flushEgress();
      const entries = await inventory(db, req.user, filters);
      // What only the runtime and the engines know, asked once for all apps.
      const usage = await ctx.usage(entries.flatMap((e) => e.instanceIds));
      const sizes = new Map(
        await Promise.all(
          entries
            .flatMap((e) => e.addons)
            .map(async (a) => {
              if (a.status !== 'ready') return [a.id, null] as const;
              let timer: ReturnType<typeof setTimeout> | undefined;
              const use = await Promise.race([
                // A size that cannot be had is left out, never the inventory.
                Promise.resolve()
                  .then(() => ctx.addons.usage(a))
                  .catch(() => undefined),
                new Promise<undefined>((resolve) => {
                  timer = setTimeout(() => resolve(undefined), ADDON_SIZE_TIMEOUT_MS);
                }),
              ]).finally(() => clearTimeout(timer));
              return [a.id, use?.bytes ?? null] as const;
            }),
        ),
      );
      const apps: InventoryRow[] = entries.map(({ id: _id, instanceIds, addons, ...entry }) => {
        const uses = instanceIds.map((i) => usage.get(i)).filter((u) => u !== undefined);
        const memory = uses.flatMap((u) => (u.memoryBytes === undefined ? [] : [u.memoryBytes]));
        const cpu = uses.flatMap((u) => (u.cpuSeconds === undefined ? [] : [u.cpuSeconds]));
        return {
          ...entry,
          url: appUrl(config, entry.name),
          addons: addons.map((a) => ({ name: a.name, type: a.type, sizeBytes: sizes.get(a.id) ?? null })),
          processes: instanceIds.length,
          memoryBytes: memory.length ? memory.reduce((s, m) => s + m, 0) : null,
          cpuSeconds: cpu.length ? Math.round(cpu.reduce((s, c) => s + c, 0) * 100) / 100 : null,
        };
      });
      if (format === 'csv') return reply.type('text/csv; charset=utf-8').send(inventoryCsv(apps));
      return { apps };
    },
  );

  api.get(
    '/v1/report',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary:
          'How the platform is doing over a period: experiments created, deployed, active, graduated, expired, archived; time to first deploy; personal data; outside hosts',
        querystring: ReportQuery,
        response: { 200: Report, ...errorResponses },
      },
    },
    async (req) => {
      await ctx.flushEgress();
      return platformReport(db, req.query.since ?? '365d');
    },
  );
}

/** A spreadsheet's cell: quoted where it could break the row, formulas neutralised. */
function cell(value: string | number | boolean | null): string {
  const s = value === null ? '' : String(value);
  const safe = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function inventoryCsv(rows: InventoryRow[]): string {
  const lines = rows.map((r) =>
    [
      r.name,
      r.team,
      r.owner,
      r.description,
      r.stage,
      r.dataClass,
      r.privacyNote,
      r.retentionDays,
      r.approved,
      r.audience,
      r.egressDeclared.join(' '),
      r.egressReached.join(' '),
      r.egressRefused,
      r.addons.map((a) => `${a.name}:${a.type}${a.sizeBytes === null ? '' : `:${a.sizeBytes}`}`).join(' '),
      r.limits.memoryMiB,
      r.limits.cpus,
      r.processes,
      r.memoryBytes,
      r.cpuSeconds,
      r.requests7d,
      r.mail30d.sent,
      r.mail30d.bounced,
      r.mail30d.refused,
      r.lastRequestAt,
      r.createdAt,
      r.lastDeployAt,
      r.expiresAt,
      r.stack,
    ]
      .map(cell)
      .join(','),
  );
  return `${[INVENTORY_CSV_HEADER, ...lines].join('\n')}\n`;
}
