// POST /v1/apps/:name/graduate: the handoff bundle of an app (team admins), which moves it to
// the `graduating` stage. The bundle is made from the store, the slug and the add-ons'
// backups, so the app need not run: a sleeping or expired app graduates as well.
import type { FastifyReply } from 'fastify';
import { AppNameParams, ErrorBody, errorResponses } from '../../contract/common.js';
import { GRADUATION_HEADERS, GraduationBundle } from '../../contract/graduation.js';
import { GraduationService } from '../../services/graduation.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function graduationRoutes(api: Api, ctx: ApiContext): void {
  const service = new GraduationService({
    db: ctx.db,
    config: ctx.config,
    secrets: ctx.secrets,
    paths: ctx.paths,
    addons: ctx.addons,
  });

  api.post(
    '/v1/apps/:name/graduate',
    {
      config: { access: 'app.admin' },
      schema: {
        summary:
          'Moves the app to the graduating stage (its expiry suspended) and answers its handoff bundle: a fresh backup of each add-on, the slug, a Dockerfile, Kubernetes manifests, data.md and HANDOFF.md (team admins)',
        params: AppNameParams,
        response: { 200: GraduationBundle, ...errorResponses, 409: ErrorBody, 502: ErrorBody },
      },
    },
    async (req, reply) => {
      // The observed egress in HANDOFF.md includes what the proxy counted until now.
      await ctx.flushEgress();
      const bundle = await service.graduate(req.user, targetApp(req), req.ip);
      reply
        .type('application/gzip')
        .header('content-disposition', `attachment; filename="${bundle.filename}"`)
        .header('cache-control', 'no-store')
        .header(GRADUATION_HEADERS.release, `v${bundle.release}`)
        .header(GRADUATION_HEADERS.stage, bundle.stage)
        .header(
          GRADUATION_HEADERS.backups,
          bundle.backups.map((b) => `${b.addon}=${b.backup} ${b.fresh ? 'fresh' : 'earlier'}`).join(', '),
        );
      // The schema's binary body is a string to the type provider; the stream is sent as is.
      return (reply as FastifyReply).send(bundle.stream);
    },
  );
}
