// The Fastify HTTP API: schema-validated input, bearer tokens, errors as
// {"error":{"code","message"}} with the right status, and the OpenAPI document. Every error
// has that shape, also those Fastify's router and Node's HTTP parser answer by themselves.
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyReply,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { ErrorBody } from '../contract/index.js';
import { type ERROR_CODES, isUserError } from '../lib/errors.js';
import { registerAuditHooks } from './audit-hooks.js';
import { registerAccess, registerAuth } from './auth.js';
import type { Api, ApiContext } from './context.js';
import { lazyCompilers, rememberCompilers } from './lazy-compilers.js';
import { addonServerRoutes } from './routes/addon-servers.js';
import { addonRoutes } from './routes/addons.js';
import { appRoutes } from './routes/apps.js';
import { audienceRoutes } from './routes/audiences.js';
import { auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { authOidcRoutes } from './routes/auth-oidc.js';
import { certificateRoutes } from './routes/certificates.js';
import { dashboardRoutes } from './routes/dashboard.js';
import { deployRoutes } from './routes/deploys.js';
import { domainRoutes } from './routes/domains.js';
import { egressRoutes } from './routes/egress.js';
import { experimentRoutes } from './routes/experiments.js';
import { gateRoutes } from './routes/gate.js';
import { gitRoutes } from './routes/git.js';
import { graduationRoutes } from './routes/graduation.js';
import { lifecycleRoutes, registerLifecycleHooks } from './routes/lifecycle.js';
import { logRoutes } from './routes/logs.js';
import { mailRoutes } from './routes/mail.js';
import { metricsRoutes, registerApiMetrics } from './routes/metrics.js';
import { psRoutes } from './routes/ps.js';
import { releaseRoutes } from './routes/releases.js';
import { runRoutes } from './routes/run.js';
import { stackRoutes } from './routes/stacks.js';
import { statusRoutes } from './routes/status.js';
import { teamRoutes } from './routes/teams.js';
import { registerMetricsTokenScope, tokenRoutes } from './routes/tokens.js';
import { userRoutes } from './routes/users.js';
import { webAuthRoutes } from './routes/web-auth.js';
import { Uploads } from './uploads.js';

type BuildValidator = NonNullable<
  NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>['buildValidator']
>;

/** Fastify's own validator compiler (its dependency, so its version is the one Fastify
 * expects), twice: query strings, path parameters and headers arrive as text and are
 * converted to the schema's numbers and booleans; JSON bodies are taken as sent, so
 * {"name": true} is refused instead of becoming an app named "true" (and null, ""). */
const fastifyValidator = createRequire(createRequire(import.meta.url).resolve('fastify'))(
  '@fastify/ajv-compiler',
) as () => BuildValidator;

const buildValidator: BuildValidator = (externalSchemas) => {
  const pool = fastifyValidator();
  // removeAdditional: false: an unknown field is refused (additionalProperties), not dropped.
  const converting = pool(externalSchemas, {
    customOptions: { coerceTypes: 'array', removeAdditional: false },
  });
  const exact = pool(externalSchemas, { customOptions: { coerceTypes: false, removeAdditional: false } });
  return (route) => (route.httpPart === 'body' ? exact(route) : converting(route));
};

export async function buildApi(ctx: ApiContext, logger: Logger): Promise<Api> {
  // Each route's validators and serializers compile on its first request (lazy-compilers.ts).
  const compilers = lazyCompilers(buildValidator);
  const api = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Random request ids: the audit trail, the X-Request-Id answer header and the log name a
    // request alike, across restarts.
    genReqId: () => randomUUID(),
    // Behind Petri's router (HAProxy on this host) requests come from loopback, and the
    // client's address is in the X-Forwarded-For the router sets (it drops any the client
    // sent): sign-in limits per address and the audit trail see the client, not the router.
    trustProxy: 'loopback',
    // Uploads are streamed and capped by the unpacker; JSON bodies stay small.
    bodyLimit: 1024 * 1024,
    schemaController: {
      compilersFactory: {
        buildValidator: compilers.buildValidator,
        buildSerializer: compilers.buildSerializer,
      },
    },
    // A bad %-escape in the path or an over-long path parameter: answered before routing.
    frameworkErrors: (err, _req, reply) =>
      (reply as FastifyReply)
        .code(400)
        .send(errorBody('bad_request', `${err.message}; check the URL's %-escapes and length`)),
    // Node's HTTP parser refused the request (headers too large, not HTTP, too slow): no
    // request exists, so the answer is written on the socket.
    clientErrorHandler: answerClientError,
    // Request lines would be noise at info level; errors are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();
  rememberCompilers(api, compilers);
  await api.register(swagger, {
    openapi: {
      info: { title: 'Petri API', version: '1' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    // Shared schemas appear under their contract names (App, Deploy ...), not def-0, def-1.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  api.addSchema(ErrorBody);
  await api.register(websocket);

  api.setErrorHandler((err: FastifyError, req, reply) => {
    if (isUserError(err)) return reply.code(err.status).send(errorBody(err.code, err.message));
    if (err.validation) {
      const first = err.validation[0];
      const field = first?.instancePath ? first.instancePath.slice(1).replace(/\//g, '.') : undefined;
      const where = err.validationContext ?? 'request';
      const params = first?.params as { missingProperty?: string; additionalProperty?: string } | undefined;
      if (params?.additionalProperty) {
        const at = field ? `${field}.${params.additionalProperty}` : params.additionalProperty;
        return reply
          .code(400)
          .send(
            errorBody('bad_request', `unknown ${where} field '${at}'; see /v1/openapi.json for the fields`),
          );
      }
      const name = field || params?.missingProperty || where;
      return reply
        .code(400)
        .send(errorBody('bad_request', `invalid ${where} field '${name}': ${first?.message ?? err.message}`));
    }
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorBody('payload_too_large', 'request body too large'));
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .code(415)
        .send(
          errorBody(
            'bad_request',
            `unsupported Content-Type ${req.headers['content-type'] ? `'${req.headers['content-type']}'` : '(none)'}; send JSON with Content-Type: application/json`,
          ),
        );
    }
    if (err.statusCode && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody('bad_request', err.message));
    }
    req.log.error({ err }, 'request failed');
    return reply.code(500).send(errorBody('internal', 'internal error; the server log has the details'));
  });
  api.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send(errorBody('not_found', `no route ${req.method} ${req.url.split('?')[0]}; see /v1/openapi.json`)),
  );

  // One set of upload slots for uploads and pushes alike; a stopping server ends them all.
  const uploads = new Uploads(ctx.config.maxConcurrentUploads, ctx.config.uploadTimeoutMs);
  api.addHook('preClose', async () => uploads.stopAll());
  // First of the hooks: the others run in the request's audit scope (see audit-hooks.ts).
  registerAuditHooks(api, ctx.db);
  registerApiMetrics(api, ctx);
  // Before any route: every route must declare its access level (see auth.ts).
  registerAccess(api, ctx);
  gitRoutes(api, ctx, uploads); // before registerAuth: its onRequest hook turns git's Basic auth into a bearer token
  registerAuth(api, ctx);
  registerMetricsTokenScope(api);
  // Every answer about an app that expires soon, expired or was archived says so.
  registerLifecycleHooks(api, ctx);
  api.get('/v1/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, async () =>
    api.swagger(),
  );
  userRoutes(api, ctx); // /v1/whoami and /v1/users
  tokenRoutes(api, ctx);
  authOidcRoutes(api, ctx); // public: how a session token is had
  authRoutes(api, ctx); // LDAP, local passwords, invitations; /invite/:secret's page
  appRoutes(api, ctx);
  deployRoutes(api, ctx, uploads);
  logRoutes(api, ctx);
  releaseRoutes(api, ctx);
  psRoutes(api, ctx);
  egressRoutes(api, ctx);
  domainRoutes(api, ctx);
  certificateRoutes(api, ctx); // /v1/certs
  runRoutes(api, ctx);
  addonRoutes(api, ctx);
  addonServerRoutes(api, ctx);
  teamRoutes(api, ctx);
  auditRoutes(api, ctx);
  stackRoutes(api, ctx);
  graduationRoutes(api, ctx);
  lifecycleRoutes(api, ctx);
  experimentRoutes(api, ctx);
  gateRoutes(api, ctx); // public: /.petri/... under an app's host, the audience gate's pages
  webAuthRoutes(api, ctx); // /login, /logout, /gate/sso on the API host; GET /v1/session
  audienceRoutes(api, ctx);
  dashboardRoutes(api); // public: the dashboard's page and files (it reads /v1 like the CLI)
  metricsRoutes(api, ctx);
  statusRoutes(api, ctx); // public: /status and /v1/status
  mailRoutes(api, ctx); // /v1/apps/:name/mail...; public: /mail/unsubscribe, the List-Unsubscribe page
  return api;
}

function errorBody(code: keyof typeof ERROR_CODES, message: string) {
  return { error: { code, message } };
}

function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset or a closed socket: nobody is left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message]: [number, keyof typeof ERROR_CODES, string] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [
          431,
          'headers_too_large',
          'request headers are larger than the server accepts (16 KiB in all); send fewer or shorter headers',
        ]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'the request was not received in time; send it again']
        : [400, 'bad_request', 'the request is not valid HTTP/1.1; check the client'];
  const body = JSON.stringify(errorBody(code, message));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}
