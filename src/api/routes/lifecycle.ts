// An experiment's lifecycle in the API: POST /v1/apps/:name/renew, the Petri-Warning header
// on every answer about an app that expires soon, has expired or was archived, or has an
// alert open (issue 18: crash loop, 5xx, memory), and the
// refusals of what cannot be done to an expired or archived app.
import { AppNameParams, errorResponses, Renewal, RenewBody, WARNING_HEADER } from '../../contract/index.js';
import { expiryWarning, formatPeriod, lifeState, readableTime, renewApp } from '../../domain/lifecycle.js';
import { openAlertMessages } from '../../domain/metrics.js';
import { forgetRepo } from '../../git/repo.js';
import { secureAppDir } from '../../lib/data-dir-modes.js';
import { UserError } from '../../lib/errors.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { presentApp } from '../present.js';

/** What starts processes: refused while the app is expired (a renewal starts it). */
const STARTS_PROCESSES = new Set([
  'POST /v1/apps/:name/wake',
  'POST /v1/apps/:name/restart',
  'GET /v1/apps/:name/run',
]);
const RENEW = 'POST /v1/apps/:name/renew';

export function lifecycleRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  api.post(
    '/v1/apps/:name/renew',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          'Renew an experiment: it expires `for` from now (the team: up to lifecycle.maxDays; admins: any); an expired one starts again with its data, an archived one comes back empty',
        params: AppNameParams,
        body: RenewBody,
        response: { 200: Renewal, ...errorResponses },
      },
      // No body: the default period.
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req) => {
      const app = targetApp(req);
      const was = lifeState(app);
      const renewed = await renewApp(
        db,
        req.user,
        app,
        req.body.for,
        { ...config.lifecycle, quotas: config.quotas },
        req.ip,
      );
      if (was === 'archived') {
        // Its directory and repository went with the archive: a new, empty experiment.
        await secureAppDir(ctx.paths, app.id, config.uidBase);
        forgetRepo(ctx.paths, app.id);
      }
      // The answer's warning is about the renewed app.
      req.target.app = renewed;
      ctx.nudge();
      const expiresAt = renewed.expires_at!;
      return {
        app: await presentApp(db, config, renewed),
        expiresAt,
        // To the second: the time since the renewal was stored is not part of the period.
        period: formatPeriod(Math.round((Date.parse(expiresAt) - Date.now()) / 1000) * 1000),
        was: was === 'archived' ? 'archived' : was === 'expired' ? 'expired' : 'live',
      } as const;
    },
  );
}

/** Before the routes: the warning header and the refusals apply to every app route. */
export function registerLifecycleHooks(api: Api, ctx: ApiContext): void {
  api.addHook('preHandler', async (req) => {
    const app = req.target?.app;
    if (!app) return;
    const route = `${req.method} ${req.routeOptions.url}`;
    const state = lifeState(app);
    const renew = `'petri apps renew ${app.name}'`;
    if (state === 'archived' || state === 'archiving') {
      const access = req.routeOptions.config?.access;
      const changes = req.method !== 'GET' || STARTS_PROCESSES.has(route);
      if (route !== RENEW && changes && (access === 'app.write' || access === 'app.secrets')) {
        throw new UserError(
          'conflict',
          `'${app.name}' was archived${app.archived_at ? ` on ${readableTime(app.archived_at)}` : ''}: its name stays with its team and nothing else changes; ${renew} brings the name back as a new, empty experiment`,
        );
      }
    }
    if (state === 'expired' && STARTS_PROCESSES.has(route)) {
      throw new UserError(
        'conflict',
        `'${app.name}' expired on ${readableTime(app.expired_at!)}: its processes stay stopped until ${renew}`,
      );
    }
  });

  api.addHook('onSend', async (req, reply, payload) => {
    const app = req.target?.app;
    if (app) {
      // The expiry first, then the alerts the metrics opened (a crash loop, 5xx, memory).
      const alerts = (await openAlertMessages(ctx.db, app.id)).map((m) => `'${app.name}' ${m}`);
      const warnings = [expiryWarning(app, ctx.config.lifecycle), ...alerts].filter((w) => w !== undefined);
      if (warnings.length > 0) reply.header(WARNING_HEADER, warnings.length === 1 ? warnings[0] : warnings);
    }
    return payload;
  });
}
