// /v1/apps/:name/deploys: upload a source archive, follow its build and release.
import { rm } from 'node:fs/promises';
import { PassThrough, Readable } from 'node:stream';
import {
  AppNameParams,
  DeployEnvelope,
  DeployEvent,
  DeployList,
  DeployParams,
  DeployQuery,
  ErrorBody,
  errorResponses,
  Ndjson,
} from '../../contract/index.js';
import {
  checkQueuedDeploys,
  getDeploy,
  latestDeploys,
  newDeployId,
  queueDeploy,
} from '../../domain/deploys.js';
import { unpackUntrusted } from '../../lib/archive.js';
import { UserError } from '../../lib/errors.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { followDeploy } from '../follow-deploy.js';
import { openStreams } from '../open-streams.js';
import { presentDeploy } from '../present.js';
import { closedSignal, ndjsonLine, sendNdjson } from '../streams.js';
import { discardRest, type Uploads } from '../uploads.js';

const ARCHIVE_TYPES = [
  'application/gzip',
  'application/x-gzip',
  'application/x-tar+gzip',
  'application/octet-stream',
];

export function deployRoutes(api: Api, ctx: ApiContext, uploads: Uploads): void {
  const { db, config, paths } = ctx;
  const streams = openStreams(api, ctx);
  // Deploy streams follow a build for as long as it runs: a stopping server ends them.
  const stopping = new AbortController();
  api.addHook('preClose', async () => stopping.abort());

  // The archive reaches the handler as a stream: it is checked entry by entry while it is
  // unpacked, never buffered whole.
  api.addContentTypeParser(ARCHIVE_TYPES, (_req, payload, done) => done(null, payload));

  api.post(
    '/v1/apps/:name/deploys',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          'Deploy: upload the source as a gzip-compressed tar archive (Content-Type: application/gzip)',
        params: AppNameParams,
        querystring: DeployQuery,
        response: {
          202: DeployEnvelope,
          408: ErrorBody,
          413: ErrorBody,
          429: ErrorBody,
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const length = Number(req.headers['content-length'] ?? 0);
      if (length > config.maxUploadBytes) throw tooLarge(config.maxUploadBytes);
      if (!ARCHIVE_TYPES.includes((req.headers['content-type'] ?? '').split(';')[0]!.trim())) {
        throw new UserError(
          'bad_request',
          'upload the source as a gzip-compressed tar with Content-Type: application/gzip',
        );
      }
      await checkQueuedDeploys(db, app, config.ceilings);
      const upload = uploads.begin(req, reply, 'upload');
      const id = newDeployId();
      const dir = paths.deploySource(app.id, id);
      // Through a PassThrough: a refusal ends the unpacker's pipeline without destroying
      // the request, whose rest is then discarded while the client reads the answer. (The
      // archive content-type parser hands the body over as the request stream itself.)
      const body = req.body as Readable;
      const input = new PassThrough();
      body.pipe(input);
      try {
        await unpackUntrusted(input, dir, {
          maxBytes: config.maxUnpackedBytes,
          maxEntries: config.maxUploadEntries,
          maxInputBytes: config.maxUploadBytes,
          signal: upload.signal,
        });
      } catch (err) {
        body.unpipe(input);
        discardRest(req, body);
        await rm(paths.deployDir(app.id, id), { recursive: true, force: true });
        throw err;
      } finally {
        upload.end();
      }
      const { noCache } = req.query;
      const deploy = await queueDeploy(db, req.user, app, id, req.ip, { noCache });
      ctx.nudge();
      return reply.code(202).send({ deploy: await presentDeploy(db, config, app, deploy) });
    },
  );

  api.get(
    '/v1/apps/:name/deploys',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'List the latest deploys of an app, newest first',
        params: AppNameParams,
        response: { 200: DeployList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const deploys = await latestDeploys(db, app);
      return { deploys: await Promise.all(deploys.map((d) => presentDeploy(db, config, app, d))) };
    },
  );

  api.get(
    '/v1/apps/:name/deploys/:id',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'Show a deploy',
        params: DeployParams,
        response: { 200: DeployEnvelope, ...errorResponses },
      },
    },
    async (req) => {
      const { id } = req.params;
      const app = targetApp(req);
      return { deploy: await presentDeploy(db, config, app, await getDeploy(db, app, id)) };
    },
  );

  api.get(
    '/v1/apps/:name/deploys/:id/stream',
    {
      config: { access: 'app.read' },
      schema: {
        summary:
          'Follow a deploy: NDJSON lines {"type":"log",time,source,text} while it runs, then {"type":"end",deploy}',
        params: DeployParams,
        response: {
          200: Ndjson(DeployEvent, 'log events while the deploy runs, then its end event'),
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const app = targetApp(req);
      await getDeploy(db, app, id);
      // For as long as the caller's access lasts (open-streams.ts); then a last line says why.
      const ended = new AbortController();
      let reason: string | undefined;
      const done = streams.add(
        {
          userId: req.user.id,
          tokenId: req.token?.id ?? null,
          appId: app.id,
          appName: app.name,
          access: 'app.read',
          end: (why) => {
            reason = why.message;
            ended.abort();
          },
        },
        app.team_id,
      );
      const closed = AbortSignal.any([closedSignal(req), stopping.signal, ended.signal]);
      // Also when the client left before the stream was read from (the generator never ran).
      closed.addEventListener('abort', done, { once: true });
      async function* events() {
        try {
          for await (const event of followDeploy({ db, paths }, app, id, closed)) {
            yield event.type === 'log'
              ? ndjsonLine<DeployEvent>(event)
              : ndjsonLine<DeployEvent>({
                  type: 'end',
                  deploy: await presentDeploy(db, config, app, event.deploy),
                });
          }
          if (reason !== undefined) {
            const time = new Date().toISOString();
            yield ndjsonLine<DeployEvent>({
              type: 'log',
              time,
              source: 'petri',
              text: `stream ended: ${reason}`,
            });
          }
        } finally {
          done();
        }
      }
      return sendNdjson(reply, Readable.from(events()));
    },
  );
}

function tooLarge(max: number): UserError {
  return new UserError(
    'payload_too_large',
    `upload exceeds the limit of ${Math.round(max / 1024 / 1024)} MiB; leave build outputs and dependencies out with .petriignore`,
  );
}
