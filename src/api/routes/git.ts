// `git push` deploys: Git smart HTTP on /v1/apps/:name/git (info/refs, git-receive-pack,
// git-upload-pack) over the app's bare repository, and the internal endpoint Petri's
// pre-receive hook calls to turn a pushed commit into a deploy and follow it.
//
// Auth: git speaks HTTP Basic, so for the smart-HTTP routes only, a Basic password is
// taken as the API token (any username) and handed to the global bearer check, and a 401
// carries `WWW-Authenticate: Basic` so git asks its credential helper. Fetching (info/refs
// of git-upload-pack, git-upload-pack) is app.read; pushing (info/refs of
// git-receive-pack, git-receive-pack) is app.write, so a viewer may clone but not push.
// The hook authenticates with a random ticket that lives in memory for one receive-pack
// process. This module's onRequest hook must be registered before registerAuth (see
// server.ts).
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppNameParams, Binary, errorResponses, GitInfoRefsQuery } from '../../contract/index.js';
import { appNotFound } from '../../domain/access.js';
import { findApp } from '../../domain/apps.js';
import { checkQueuedDeploys, newDeployId, queueDeploy } from '../../domain/deploys.js';
import { recheckGrants } from '../../domain/stream-access.js';
import { type GitService, isGitService, serviceHeader } from '../../git/pkt-line.js';
import type { HookEvent } from '../../git/push.js';
import { readPushHead, refusePush } from '../../git/push-head.js';
import { ensureRepo, gitEnv, spawnService } from '../../git/repo.js';
import { unpackUntrusted } from '../../lib/archive.js';
import { errorMessage, UserError } from '../../lib/errors.js';
import { killGroup } from '../../lib/exec.js';
import type { Store } from '../../store/db.js';
import type { App, User } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { followDeploy } from '../follow-deploy.js';
import { openStreams } from '../open-streams.js';
import { presentDeploy } from '../present.js';
import { closedSignal, ndjsonLine } from '../streams.js';
import { discardRest, type Upload, type Uploads } from '../uploads.js';

const INFO_REFS = '/v1/apps/:name/git/info/refs';
const SERVICES: GitService[] = ['git-upload-pack', 'git-receive-pack'];
const rpcRoute = (service: GitService) => `/v1/apps/:name/git/${service}`;
const HOOK_DEPLOY = '/v1/apps/:name/git/deploy';
const SMART_HTTP = new Set([INFO_REFS, ...SERVICES.map(rpcRoute)]);
const REQUEST_TYPES = ['application/x-git-receive-pack-request', 'application/x-git-upload-pack-request'];
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/** What a running receive-pack's hook may do: one deploy of one app, as the pusher. */
interface Ticket {
  appId: number;
  appName: string;
  user: User;
  /** The token the push came with: the deploy is decided again with it before it is queued. */
  tokenId: number | null;
  ip: string;
  used: boolean;
  /** The push's slot: its signal stops the hook's unpack too (time cap, hang-up, shutdown). */
  upload: Upload;
}

export function gitRoutes(api: Api, ctx: ApiContext, uploads: Uploads): void {
  const { db, config, paths } = ctx;
  const streams = openStreams(api, ctx);
  // The hook's deploy stream follows a build for as long as it runs: a stopping server ends it.
  const stopping = new AbortController();
  api.addHook('preClose', async () => stopping.abort());
  const tickets = new Map<string, Ticket>();
  const repoOptions = { maxPackBytes: config.maxUploadBytes };
  const hookApi = `http://${config.apiBind === '0.0.0.0' ? '127.0.0.1' : config.apiBind}:${config.apiPort}`;

  // Git's request bodies reach the handlers as streams: packs can be large, and are
  // bounded by receive.maxInputSize rather than the JSON body limit.
  api.addContentTypeParser(REQUEST_TYPES, (_req, payload, done) => done(null, payload));

  api.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.url ?? '';
    if (SMART_HTTP.has(route)) {
      // Basic → Bearer for these routes only; the global hook then checks the token as usual.
      const token = basicPassword(req.headers.authorization);
      if (token !== undefined) req.headers.authorization = `Bearer ${token}`;
      return;
    }
    if (route !== HOOK_DEPLOY) return;
    const header = req.headers.authorization ?? '';
    const ticket = header.startsWith('Bearer ') ? tickets.get(header.slice(7).trim()) : undefined;
    if (!ticket) return; // not the hook: the global hook answers 401 to a stranger
    // Answered here, before the global bearer check, which knows only API tokens. A hook
    // runs before validation, for every route: its params and query are untyped here.
    const { name } = req.params as { name: string };
    const sha = (req.query as { sha?: string }).sha ?? '';
    if (name !== ticket.appName || !SHA.test(sha) || ticket.used) {
      throw new UserError('forbidden', 'this push may deploy its own app once, from a commit id');
    }
    ticket.used = true;
    const app = await findApp(db, ticket.appId);
    if (!app) throw appNotFound(name);
    // The pusher, whose push was let through as app.write; no API token.
    req.user = ticket.user;
    req.token = null;
    reply.header('cache-control', 'no-cache');
    return reply
      .type('application/x-ndjson')
      .send(
        Readable.from(
          ndjson(
            deployPush(ctx, app, ticket, req.raw, AbortSignal.any([closedSignal(req), stopping.signal])),
          ),
        ),
      );
  });

  api.addHook('onSend', async (req, reply) => {
    if (reply.statusCode === 401 && SMART_HTTP.has(req.routeOptions.url ?? '')) {
      reply.header('www-authenticate', 'Basic realm="Petri"');
    }
  });

  api.get(
    INFO_REFS,
    {
      // Pushing starts here: git asks for git-receive-pack's refs first. Anything but a
      // plain fetch's query needs the push's level (a repeated or odd ?service= too).
      config: {
        access: (req) =>
          (req.query as { service?: unknown }).service === 'git-upload-pack' ? 'app.read' : 'app.write',
      },
      schema: {
        summary:
          'Git smart HTTP: the ref advertisement (?service=git-receive-pack or git-upload-pack); HTTP Basic, the API token as password',
        params: AppNameParams,
        querystring: GitInfoRefsQuery,
        response: {
          200: Binary(
            "the ref advertisement in git's pkt-line format",
            'application/x-git-receive-pack-advertisement',
            'application/x-git-upload-pack-advertisement',
          ),
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const { service } = req.query;
      const app = targetApp(req);
      if (!isGitService(service)) {
        throw new UserError('forbidden', 'only smart HTTP is served: use git 1.6.6 or newer');
      }
      const repo = await ensureRepo(paths, app.id, repoOptions);
      const child = spawnService(service, repo, gitEnv(paths), true);
      child.stdin!.end();
      const [out, err, code] = await Promise.all([
        collect(child.stdout!),
        collect(child.stderr!),
        new Promise<number | null>((resolve) => child.on('close', resolve)),
      ]);
      if (code !== 0)
        throw new Error(`git ${service} --advertise-refs failed (${code}): ${err.toString().trim()}`);
      return sendGit(
        reply,
        `application/x-${service}-advertisement`,
        Buffer.concat([serviceHeader(service), out]),
      );
    },
  );

  for (const service of SERVICES) {
    api.post(
      rpcRoute(service),
      {
        config: { access: service === 'git-receive-pack' ? 'app.write' : 'app.read' },
        schema: {
          summary:
            service === 'git-receive-pack'
              ? 'Git smart HTTP: git-receive-pack (push: builds and deploys main or master)'
              : 'Git smart HTTP: git-upload-pack (fetch, clone)',
          params: AppNameParams,
          response: {
            200: Binary("git's answer in pkt-line format", `application/x-${service}-result`),
            ...errorResponses,
          },
        },
      },
      async (req, reply) => rpc(req, reply, service),
    );
  }

  async function rpc(req: FastifyRequest, reply: FastifyReply, service: GitService) {
    const app = targetApp(req);
    if (req.headers['content-type'] !== `application/x-${service}-request`) {
      throw new UserError('bad_request', `send the request as application/x-${service}-request`);
    }
    const repo = await ensureRepo(paths, app.id, repoOptions);
    const upload = uploads.begin(req, reply, service === 'git-receive-pack' ? 'push' : 'fetch');
    // The content-type parser above hands git's body over as the request stream itself.
    let body = req.body as Readable;
    if (req.headers['content-encoding'] === 'gzip') {
      const gunzip = createGunzip();
      body.pipe(gunzip);
      body.on('error', (err: Error) => gunzip.destroy(err));
      body = gunzip;
    }
    let head: Buffer | undefined;
    if (service === 'git-receive-pack') {
      // Checked before git reads a byte: a refusal costs nothing but this read.
      const push = await readPushHead(body, upload.signal).catch((err: unknown) => {
        upload.end();
        throw err instanceof UserError ? err : new UserError('bad_request', errorMessage(err));
      });
      if (push.objects !== undefined && push.objects > config.maxPushObjects) {
        upload.end();
        discardRest(req, body);
        return sendGit(
          reply,
          'application/x-git-receive-pack-result',
          refusePush(
            push,
            `push refused: its pack has ${push.objects} objects, more than the ${config.maxPushObjects} allowed; push fewer commits at a time (or squash history)`,
          ),
        );
      }
      head = push.bytes;
    }
    let ticketId: string | undefined;
    const extra: Record<string, string> = {};
    if (service === 'git-receive-pack') {
      ticketId = randomBytes(32).toString('base64url');
      tickets.set(ticketId, {
        appId: app.id,
        appName: app.name,
        user: req.user,
        tokenId: req.token?.id ?? null,
        ip: req.ip,
        used: false,
        upload,
      });
      Object.assign(extra, { PETRI_GIT_API: hookApi, PETRI_GIT_TICKET: ticketId, PETRI_GIT_APP: app.name });
    }
    const child = spawnService(service, repo, gitEnv(paths, extra), false);
    // Past the time cap, on a hang-up or at shutdown, git and its hook end at once.
    const stop = () => {
      if (child.exitCode === null && child.signalCode === null) killGroup(child.pid, 'SIGKILL');
    };
    upload.signal.addEventListener('abort', stop, { once: true });
    // A push or fetch lasts as long as the pusher's access (open-streams.ts): when it ends,
    // git and its hook are stopped, and the hook's ticket no longer deploys.
    const done = streams.add(
      {
        userId: req.user.id,
        tokenId: req.token?.id ?? null,
        appId: app.id,
        appName: app.name,
        access: service === 'git-receive-pack' ? 'app.write' : 'app.read',
        end: () => {
          if (ticketId) tickets.delete(ticketId);
          stop();
        },
      },
      app.team_id,
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-4000);
    });
    child.on('close', (code, signal) => {
      done();
      upload.signal.removeEventListener('abort', stop);
      upload.end();
      if (ticketId) tickets.delete(ticketId);
      if (code !== 0) req.log.warn({ app: app.name, service, code, signal, stderr }, 'git service failed');
    });
    child.on('error', (err) => req.log.error({ err }, 'git service did not start'));
    // A pusher that hangs up ends receive-pack and its hook (a queued deploy goes on).
    reply.raw.on('close', stop);
    child.on('error', () => {
      upload.end();
      done();
    });
    body.on('error', stop);
    child.stdin!.on('error', () => {}); // git stops reading when it refuses a push; its answer says why
    if (head) child.stdin!.write(head);
    body.pipe(child.stdin!);
    return sendGit(reply, `application/x-${service}-result`, child.stdout);
  }

  api.post(
    HOOK_DEPLOY,
    {
      // The hook itself is answered by the onRequest hook above, on its ticket; anyone else
      // signed in reaches the handler and is refused.
      config: { access: 'signed-in' },
      schema: {
        hide: true,
        summary:
          "Internal: Petri's pre-receive hook deploys a pushed commit (a per-push ticket, not an API token)",
        params: AppNameParams,
        response: errorResponses,
      },
    },
    // Reached only without a valid ticket (the onRequest hook answers the hook itself).
    async () => {
      throw new UserError('forbidden', "this endpoint is for Petri's git hook");
    },
  );
}

/**
 * Unpacks the hook's tar (the commit's tree) exactly as an upload is, queues a deploy,
 * and follows it as the /stream route does, ending with the release's URL or the reason.
 */
async function* deployPush(
  ctx: ApiContext,
  app: App,
  ticket: Ticket,
  tar: IncomingMessage,
  closed: AbortSignal,
): AsyncGenerator<HookEvent> {
  const { db, config, paths } = ctx;
  const id = newDeployId();
  // unpackUntrusted reads gzip, as uploads come; level 1 costs little on a local stream.
  const gzip = createGzip({ level: 1 });
  tar.on('error', (err) => gzip.destroy(err));
  tar.pipe(gzip);
  try {
    await checkQueuedDeploys(db, app, config.ceilings);
    // The push's caps: the tree git exports may be far larger than the pack that carried it.
    await unpackUntrusted(gzip, paths.deploySource(app.id, id), {
      maxBytes: config.maxUnpackedBytes,
      maxEntries: config.maxUploadEntries,
      signal: ticket.upload.signal,
    });
  } catch (err) {
    tar.unpipe(gzip);
    tar.resume();
    await rm(paths.deployDir(app.id, id), { recursive: true, force: true });
    yield { type: 'end', ok: false, message: `push refused: ${errorMessage(err)}` };
    return;
  }
  // Decided again right before the deploy is queued: the push may have taken long enough
  // for the pusher to lose access (their open push is also ended then: open-streams.ts).
  const check = (
    await recheckGrants(db, [
      {
        userId: ticket.user.id,
        tokenId: ticket.tokenId,
        appId: app.id,
        appName: app.name,
        access: 'app.write',
      },
    ])
  )[0]!;
  if (!check.ok) {
    await rm(paths.deployDir(app.id, id), { recursive: true, force: true });
    yield { type: 'end', ok: false, message: `push refused: ${check.reason.message}` };
    return;
  }
  const deploy = await queueDeploy(db, ticket.user, app, id, ticket.ip);
  ctx.nudge();
  yield* followDeployForHook(db, ctx, app, deploy.id, closed);
}

/** The deploy's progress as the hook shows it: its lines, then one line saying how it ended. */
async function* followDeployForHook(
  db: Store,
  ctx: ApiContext,
  app: App,
  id: string,
  closed: AbortSignal,
): AsyncGenerator<HookEvent> {
  for await (const event of followDeploy({ db, paths: ctx.paths }, app, id, closed, 100)) {
    if (event.type === 'log') {
      yield { type: 'log', source: event.source, text: event.text };
      continue;
    }
    const { deploy } = event;
    const shown = await presentDeploy(db, ctx.config, app, deploy);
    yield deploy.status === 'succeeded'
      ? { type: 'end', ok: true, message: `deployed ${shown.release ?? ''}: ${shown.url}` }
      : { type: 'end', ok: false, message: `deploy failed: ${deploy.error ?? 'no reason recorded'}` };
  }
}

async function* ndjson(events: AsyncIterable<HookEvent>): AsyncGenerator<string> {
  for await (const event of events) yield ndjsonLine(event);
}

/** The password of an HTTP Basic header (git sends the API token there), if it is one. */
export function basicPassword(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const password = decoded.slice(colon + 1);
  return password === '' ? undefined : password;
}

/** Git's answers are bytes in its own protocol (documented as Binary), never cached. */
function sendGit(reply: FastifyReply, type: string, payload: Buffer | Readable | null): FastifyReply {
  reply.header('cache-control', 'no-cache, max-age=0, must-revalidate');
  reply.header('expires', 'Fri, 01 Jan 1980 00:00:00 GMT');
  reply.header('pragma', 'no-cache');
  return reply.type(type).send(payload);
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}
