// The API's side of the audit trail (domain/audit.ts):
// - every request runs in an audit scope (its id, address, user and token, API or git), so
//   recordAudit anywhere below a route knows the request without being told;
// - every changing request (not GET, HEAD or OPTIONS; a `petri run` WebSocket upgrade; a git
//   push's receive-pack) that recorded no event of its own gets a generic one with its
//   outcome, so refusals and failures are on the record too (401, 403, 404: denied; 429:
//   denied, a limit said no; other 4xx and 5xx: failed). Reads are not recorded.
// Register before any other hook: the scope must be open when they run.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  type AuditOutcome,
  type AuditScope,
  anyRecorded,
  auditScope,
  flushSuppressedRefusals,
  type Principal,
  recordAudit,
  tokenHolder,
} from '../domain/audit.js';
import type { Store } from '../store/db.js';

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
const GIT_ROUTE = /^\/v1\/apps\/:name\/git\//;
const GIT_RPC = '/v1/apps/:name/git/:service';
const TEXT_MAX = 300;

interface RequestAudit {
  scope: AuditScope;
  /** The error the request was answered with, if any (from its body). */
  error?: { code: string; message: string };
}

/** What the access hook (auth.ts) loaded, read structurally: it may be absent. */
interface Targeted {
  target?: { app?: { team_id: number | null }; team?: { id: number } } | null;
}

export function registerAuditHooks(api: FastifyInstance, db: Store): void {
  const requests = new WeakMap<FastifyRequest, RequestAudit>();

  api.addHook('onRequest', (req, reply, done) => {
    const route = req.routeOptions.url;
    const params = req.params as Record<string, unknown> | undefined;
    const scope: AuditScope = {
      requestId: req.id,
      ip: req.ip,
      via: route && GIT_ROUTE.test(route) ? 'git' : 'api',
      app: route?.startsWith('/v1/apps/:name') && typeof params?.name === 'string' ? params.name : undefined,
      principal: () => principalOf(req),
      targetTeamId: () => {
        const target = (req as Targeted).target;
        return target?.app?.team_id ?? target?.team?.id ?? undefined;
      },
      recorded: [],
    };
    requests.set(req, { scope });
    reply.header('x-request-id', req.id);
    // What runs after this hook runs in the scope: the other hooks, and the handler too once
    // the body is read (Fastify's body parser carries the context over the stream's events).
    auditScope.run(scope, done);
  });

  api.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string' || !isChange(req)) return payload;
    const audit = requests.get(req);
    if (audit) audit.error = errorOf(payload);
    return payload;
  });

  api.addHook('onResponse', async (req, reply) => {
    const audit = requests.get(req);
    if (!audit || !isChange(req)) return;
    try {
      await recordOutcome(db, req, reply.statusCode, audit);
    } catch (err) {
      req.log.error({ err }, 'recording the audit event failed');
    }
  });

  // Anonymous refusals counted but not yet written (domain/audit-refusals.ts) are written now.
  api.addHook('onClose', async () => {
    await flushSuppressedRefusals(db).catch((err: unknown) =>
      api.log.error({ err }, 'writing the count of anonymous refusals failed'),
    );
  });
}

/** Whether the request asks for a change (and so is recorded). */
function isChange(req: FastifyRequest): boolean {
  if (READS.has(req.method))
    return req.method === 'GET' && req.headers.upgrade?.toLowerCase() === 'websocket';
  // git fetches and clones POST too (upload-pack): a read.
  const route = req.routeOptions.url;
  if (route === GIT_RPC) return (req.params as { service?: string }).service === 'git-receive-pack';
  return !route?.endsWith('/git/git-upload-pack');
}

function principalOf(req: FastifyRequest): Principal | undefined {
  const user = req.user as FastifyRequest['user'] | null;
  if (!user) return undefined;
  return { userId: user.id, name: user.name, tokenId: req.token?.id ?? null };
}

/** The generic event of a changing request, unless it recorded its own (a refused or
 * failed request: its own refusal, still in the store after any rollback). */
async function recordOutcome(db: Store, req: FastifyRequest, status: number, audit: RequestAudit) {
  const { scope } = audit;
  if (status < 400 && scope.recorded.length > 0) return;
  if (
    status >= 400 &&
    (await anyRecorded(
      db,
      scope.recorded.filter((e) => e.outcome !== 'ok').map((e) => e.hash),
    ))
  )
    return;
  const bearer = req.headers.authorization?.startsWith('Bearer ')
    ? req.headers.authorization.slice(7).trim()
    : undefined;
  // A refused token is still someone's (revoked, expired, its user disabled): theirs, not
  // anonymous; such refusals are budgeted per user (domain/audit-refusals.ts).
  const principal = principalOf(req);
  const who = principal ?? (status === 401 && bearer ? await tokenHolder(db, bearer) : undefined);
  const route = req.routeOptions.url;
  const params = (req.params ?? {}) as Record<string, unknown>;
  const pattern =
    route === GIT_RPC ? route.replace(':service', String(params.service)) : (route ?? '(unknown route)');
  const path = clip(req.url.split('?')[0] ?? '');
  const target =
    (typeof params.name === 'string' && route?.startsWith('/v1/apps/:name') ? params.name : undefined) ??
    (typeof params.team === 'string' ? params.team : undefined) ??
    path;
  const detail: Record<string, unknown> = { path };
  if (audit.error) detail.error = audit.error;
  await auditScope.run(scope, () =>
    recordAudit(
      db,
      who ? { name: who.name, userId: who.userId, tokenId: who.tokenId } : { name: 'anonymous' },
      `${req.method} ${pattern}`,
      target,
      detail,
      {
        outcome: outcomeOf(status),
        status,
        anonymous: who === undefined,
        deadToken: principal === undefined && who !== undefined,
      },
    ),
  );
}

function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'ok';
  // Refused for who you are, or what you may do (a 404 may hide an app you may not see),
  // or a limit said no (429): the platform said no, nothing broke.
  if (status === 401 || status === 403 || status === 404 || status === 429) return 'denied';
  return 'failed';
}

function errorOf(payload: string): { code: string; message: string } | undefined {
  try {
    const body = JSON.parse(payload) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code !== 'string') return undefined;
    return { code: body.error.code, message: clip(String(body.error.message ?? '')) };
  } catch {
    return undefined;
  }
}

function clip(text: string): string {
  return text.length > TEXT_MAX ? `${text.slice(0, TEXT_MAX)}…` : text;
}
