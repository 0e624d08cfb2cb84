// Who is asking, and may they: the API's hooks around domain/access.ts.
//
// - onRoute: every route declares `config: { access }` (see domain/access.ts); a route
//   without one stops the server from starting, so none is left open by omission.
// - onRequest: the bearer token becomes `req.user` and `req.token` (refused: a missing,
//   unknown, revoked or expired token, a disabled user). Without an Authorization header,
//   a browser's web session cookie does the same (req.token null, req.webSession set), and
//   its changes need the session's X-CSRF-Token. A person who signs in with OIDC or
//   LDAP is re-checked with their provider, whichever token they use, when their last check
//   is older than identity.recheckSeconds. Public routes take no token.
// - preParsing: the route's level is applied to the app (`:name`) or team (`:team`) it
//   names, which is loaded once and handed to the handler as `req.target`. It runs before
//   the body is read, parsed or validated, so who-you-are is answered before what-you-sent
//   (a viewer's malformed JSON or upload is refused as the viewer's, unread).
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ACCESS_LEVELS, type Access, decide, refusal } from '../domain/access.js';
import { appWithRole, teamWithRole } from '../domain/app-access.js';
import { authenticate } from '../domain/auth.js';
import { authenticateWebSession, sessionCookieName, type WebSession } from '../domain/web-sessions.js';
import { cookieValues } from '../gate/cookie.js';
import { UserError } from '../lib/errors.js';
import type { App, Team, TeamRole, Token, User } from '../store/schema.js';
import type { ApiContext } from './context.js';

/** A route's access level, or (where the level depends on what is asked, e.g. git's
 * info/refs?service=) a function of the request that picks it. */
export type RouteAccess = Access | ((req: FastifyRequest) => Access);

/** What the route names, loaded and checked by the access hook. */
export interface Target {
  app?: App;
  team?: Team;
  /** The caller's role in the app's or team's team (null: not in it). */
  teamRole?: TeamRole | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The signed-in user (unset on public routes). */
    user: User;
    /** The token the request came with (null: git's per-push hook ticket). */
    token: Token | null;
    /** The app (`:name`) or team (`:team`) of the route, once the caller may reach it. */
    target: Target;
    /** The browser's web session, when the request came with its cookie instead of a token. */
    webSession: WebSession | null;
  }
  interface FastifyContextConfig {
    /** Who may call the route: see domain/access.ts. Every route declares one. */
    access: RouteAccess;
  }
}

/** Decorators and the hooks that need no token: call before any route is added. */
export function registerAccess(api: FastifyInstance, ctx: ApiContext): void {
  api.decorateRequest('user', null as unknown as User);
  api.decorateRequest('token', null);
  api.decorateRequest('target', null as unknown as Target);
  api.decorateRequest('webSession', null);

  api.addHook('onRoute', (route) => {
    const access = route.config?.access;
    if (typeof access === 'function') return;
    if (!access || !(ACCESS_LEVELS as readonly string[]).includes(access)) {
      throw new Error(
        `route ${String(route.method)} ${route.url} declares no access level: add config: { access: ... } (one of ${ACCESS_LEVELS.join(', ')}; see src/domain/access.ts)`,
      );
    }
  });

  api.addHook('preParsing', async (req) => {
    req.target = {};
    const access = accessOf(req);
    // No route (the not-found handler), or open to anyone: nothing to check.
    if (access === undefined || access === 'public') return;
    if (access.startsWith('app.')) {
      const name = paramOf(req, 'name');
      const found = await appWithRole(ctx.db, req.user.id, name);
      const decision = found ? decide(req.user, access, found.teamRole) : 'not_found';
      if (decision !== 'ok') {
        throw refusal(decision, access, req.user, { app: name, teamRole: found?.teamRole ?? null });
      }
      req.target = { app: found!.app, teamRole: found!.teamRole };
      return;
    }
    if (access.startsWith('team.')) {
      const name = paramOf(req, 'team');
      const found = await teamWithRole(ctx.db, req.user.id, name);
      const decision = found ? decide(req.user, access, found.teamRole) : 'not_found';
      if (decision !== 'ok') {
        throw refusal(decision, access, req.user, { team: name, teamRole: found?.teamRole ?? null });
      }
      req.target = { team: found!.team, teamRole: found!.teamRole };
      return;
    }
    const decision = decide(req.user, access);
    if (decision !== 'ok') throw refusal(decision, access, req.user);
  });
}

/** The bearer check, on every request but public routes'. Call after hooks that must run
 * before it (git's Basic → Bearer and its hook ticket: routes/git.ts). */
export function registerAuth(api: FastifyInstance, ctx: ApiContext): void {
  const { identity } = ctx;
  api.addHook('onRequest', async (req: FastifyRequest) => {
    if (accessOf(req) === 'public') return;
    const header = req.headers.authorization;
    // A browser signed in on the web (the dashboard) sends its session cookie and no token.
    const session = header === undefined ? await webSessionOf(ctx, req) : undefined;
    const bearer = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const { user, token } = session ?? (await authenticate(ctx.db, bearer));
    req.webSession = session?.session ?? null;
    // authenticate refuses disabled users; so does decide(), should a disabled user get here.
    const decision = decide(user, 'signed-in');
    if (decision !== 'ok') throw refusal(decision, 'signed-in', user);
    // Any token of someone who signs in with OIDC or LDAP (a session or an API token; git's
    // Basic-auth pushes and petri run's WebSocket upgrade come through here too) is re-checked
    // with their provider once the person's last check is older than recheckSeconds. The
    // request goes on as the account is now: a role the admin groups took back is gone already.
    let current = user;
    if (identity && (user.provider === 'oidc' || user.provider === 'ldap')) {
      const everyMs = ctx.config.identity.recheckSeconds * 1000;
      const checked = user.checked_at === null ? 0 : Date.parse(user.checked_at);
      if (Date.now() - checked >= everyMs) current = (await identity.recheck(user, token)) ?? user;
    }
    req.user = current;
    req.token = token;
  });
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The web session of a request that came with the petri_session cookie (and no
 * Authorization header), checked as a token is: unknown, ended or a disabled account are
 * refused. A change (POST, PUT, PATCH, DELETE) must also carry the session's X-CSRF-Token,
 * which only the session's own pages can read (GET /v1/session); a WebSocket (petri run),
 * which no browser lets a page add a header to, must come from the API's own origin. Other
 * app hosts are the same site as the API host, so SameSite alone would not stop them.
 */
async function webSessionOf(ctx: ApiContext, req: FastifyRequest) {
  const https = req.headers['x-forwarded-proto'] === 'https';
  const values = cookieValues(req.headers.cookie, sessionCookieName(https));
  if (values.length === 0) return undefined;
  // Another host under the same parent domain (an app's page) may have added a session
  // cookie of its own, to act as someone else in this browser: with several, none counts.
  if (values.length > 1) {
    throw new UserError(
      'unauthorized',
      'several sign-ins (session cookies) were sent with this request, so none is used: sign in again at /login',
    );
  }
  const found = await authenticateWebSession(ctx.db, values[0] ?? '');
  if (UNSAFE.has(req.method) && !sameSecret(req.headers['x-csrf-token'], found.session.csrf)) {
    throw new UserError(
      'forbidden',
      req.headers['x-csrf-token'] === undefined
        ? "a change made with a web session needs the header X-CSRF-Token (the 'csrf' of GET /v1/session); nothing was changed"
        : "the X-CSRF-Token is not this session's (it is stale, or from another session): read it again from GET /v1/session; nothing was changed",
    );
  }
  if (req.headers.upgrade !== undefined) {
    const origin = req.headers.origin;
    let host: string | undefined;
    try {
      host = origin ? new URL(origin).host : undefined;
    } catch {
      host = undefined;
    }
    if (host === undefined || host !== req.headers.host) {
      throw new UserError(
        'forbidden',
        'a WebSocket with a web session must come from the Petri page itself (its Origin is not this host); nothing was started',
      );
    }
  }
  return { user: found.user, token: null, session: found.session };
}

function sameSecret(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The route's level for this request; undefined for the not-found handler. */
function accessOf(req: FastifyRequest): Access | undefined {
  const declared = (req.routeOptions.config as { access?: RouteAccess } | undefined)?.access;
  return typeof declared === 'function' ? declared(req) : declared;
}

function paramOf(req: FastifyRequest, name: string): string {
  const value = (req.params as Record<string, unknown> | undefined)?.[name];
  if (typeof value !== 'string') {
    throw new Error(`route ${req.routeOptions.url} declares an app or team level but has no :${name}`);
  }
  return value;
}

/** The app the route names (`:name`), loaded by the access hook: for handlers of app.* routes. */
export function targetApp(req: FastifyRequest): App {
  const app = req.target?.app;
  if (!app) throw new Error(`route ${req.routeOptions.url} reads the app but declares no app.* access level`);
  return app;
}

/** The team the route names (`:team`), loaded by the access hook: for handlers of team.* routes. */
export function targetTeam(req: FastifyRequest): Team {
  const team = req.target?.team;
  if (!team)
    throw new Error(`route ${req.routeOptions.url} reads the team but declares no team.* access level`);
  return team;
}
