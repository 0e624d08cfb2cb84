// Signing in on the web, on the API host: a browser's session (the petri_session cookie) for
// the dashboard and for the audience gate's single sign-on.
//
// GET  /login?next=          the sign-in page: single sign-on's button, the password form
// POST /login/password       a local account's (or LDAP's) name and password: a session
// GET  /login/oidc?next=     to the provider, with the API host's own callback
// GET  /login/oidc/callback  the provider's answer: a session, on to next
// POST /logout               the session ends
// GET  /v1/session           who the session is, and its CSRF token (X-CSRF-Token)
// GET  /gate/sso?app=&next=  the gate's SSO: a signed-in person the app admits is sent back
//                            to APP_HOST/.petri/sso with a single-use ticket for that app
//
// `next` is only ever a path on the API host (gate/next.ts), and the app host's `next` is
// checked again where the gate uses it. The forms are refused when they come from another
// origin: the apps' hosts are the same site as the API host, so SameSite cookies alone do
// not keep an app from posting a sign-in (login CSRF) or a sign-out.
import formbody from '@fastify/formbody';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorResponses } from '../../contract/index.js';
import { decide } from '../../domain/access.js';
import { appUrl, overHttps, routerOrigin } from '../../domain/apps.js';
import { customOrigin } from '../../domain/domains.js';
import { awaitsReview } from '../../domain/experiments.js';
import { type GateApp, gateAdmission, gateAppNamed } from '../../domain/gate.js';
import { passwordAccount } from '../../domain/sign-in.js';
import {
  authenticateWebSession,
  createWebSession,
  endWebSession,
  issueGateTicket,
  SESSION_MAX_MS,
  sessionCookieName,
  type WebSession,
} from '../../domain/web-sessions.js';
import { cookieValues } from '../../gate/cookie.js';
import { safeNext } from '../../gate/next.js';
import { gateHeaders, loginPage, messagePage } from '../../gate/pages.js';
import type { PetriConfig } from '../../lib/config.js';
import { isUserError } from '../../lib/errors.js';
import type { User } from '../../store/schema.js';
import type { Api, ApiContext } from '../context.js';

/** The browser's OIDC sign-in in progress (its login flow's id), on /login/oidc only. */
const FLOW_COOKIE = 'petri_login_flow';
const FLOW_PATH = '/login/oidc';
const FLOW_TTL_S = 600;

const NextQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) });
const PasswordForm = Type.Object({
  login: Type.String({ minLength: 1, maxLength: 254 }),
  password: Type.String({ maxLength: 1024 }),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
});
const SsoQuery = Type.Object({
  app: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
  /** Where the visitor was: a verified custom domain of the app (else its own host). */
  origin: Type.Optional(Type.String({ maxLength: 300 })),
});

/** What the pages answer, for the OpenAPI document: HTML, or a redirect (303) on. */
const PAGE = { description: 'an HTML page', content: { 'text/html': { schema: Type.String() } } };
const pageResponses = {
  200: PAGE,
  303: { description: 'on to the next page (Location)', type: 'null' },
  '4xx': {
    description: 'an HTML page saying what went wrong',
    content: { 'text/html': { schema: Type.String() } },
  },
};
const redirectResponses = { 303: pageResponses[303], '4xx': pageResponses['4xx'] };

export const SessionView = Type.Object({
  user: Type.Object({
    name: Type.String(),
    email: Type.Union([Type.String(), Type.Null()]),
    role: Type.String(),
    provider: Type.String(),
  }),
  csrf: Type.Union([Type.String(), Type.Null()], {
    description:
      "The session's CSRF token: send it as X-CSRF-Token with every change. Null for a bearer token, which needs none.",
  }),
  idleEndsAt: Type.Union([Type.String(), Type.Null()]),
  expiresAt: Type.Union([Type.String(), Type.Null()]),
});

export function webAuthRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  api.get(
    '/v1/session',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: "Who is signed in, and (for a browser's web session) the X-CSRF-Token its changes need",
        response: { 200: SessionView, ...errorResponses },
      },
    },
    async (req) => ({
      user: {
        name: req.user.name,
        email: req.user.email,
        role: req.user.role,
        provider: req.user.provider,
      },
      csrf: req.webSession?.csrf ?? null,
      idleEndsAt: req.webSession?.idleEndsAt ?? null,
      expiresAt: req.webSession?.expiresAt ?? null,
    }),
  );

  api.register(async (plain) => {
    await plain.register(formbody, { bodyLimit: 16_384 });
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    const open = { access: 'public' as const };

    scope.get(
      '/login',
      {
        config: open,
        schema: {
          summary: 'The sign-in page (HTML)',
          security: [],
          querystring: NextQuery,
          response: pageResponses,
        },
      },
      async (req, reply) => {
        const next = apiNext(req.query.next);
        if (await signedIn(ctx, req, reply)) return see(reply, next);
        return page(reply, 200, login(ctx, next));
      },
    );

    scope.post(
      '/login/password',
      {
        config: open,
        schema: {
          summary: 'Signs a browser in with an e-mail (or LDAP user name) and password: a web session',
          security: [],
          body: PasswordForm,
          response: redirectResponses,
        },
        attachValidation: true,
      },
      async (req, reply) => {
        const body = req.validationError ? undefined : req.body;
        const next = apiNext(body?.next ?? (req.body as { next?: unknown } | undefined)?.next);
        const refused = otherOrigin(req);
        if (refused) return page(reply, 403, login(ctx, next, { error: refused }));
        if (!body || body.password.length === 0) {
          return page(
            reply,
            400,
            login(ctx, next, {
              error: 'type your e-mail (or user name) and your password',
              login: body?.login,
            }),
          );
        }
        let user: User;
        try {
          user = await passwordSignIn(ctx, body.login.trim(), body.password, req.ip);
        } catch (err) {
          if (!isUserError(err)) throw err;
          return page(reply, err.status, login(ctx, next, { error: err.message, login: body.login }));
        }
        await startSession(ctx, req, reply, user, 'password');
        return see(reply, next);
      },
    );

    scope.get(
      '/login/oidc',
      {
        config: open,
        schema: {
          summary: "Starts a browser's single sign-on: to the provider, back at /login/oidc/callback",
          security: [],
          querystring: NextQuery,
          response: redirectResponses,
        },
      },
      async (req, reply) => {
        const next = apiNext(req.query.next);
        const oidc = ctx.identity?.oidc;
        if (!oidc) {
          return page(
            reply,
            404,
            login(ctx, next, { error: 'this Petri has no single sign-on; use a password' }),
          );
        }
        // The provider sends the browser back to the API host's one registered address; the
        // flow's cookie must be set on that host, or the callback could not find it.
        const canonical = new URL(apiOrigin(config, req)).host;
        if (req.headers.host?.toLowerCase() !== canonical) {
          return see(reply, `${apiOrigin(config, req)}${req.url}`);
        }
        let started: { flow: string; authorizeUrl: string };
        try {
          started = await oidc.startWeb(
            { redirectUri: `${apiOrigin(config, req)}/login/oidc/callback`, next },
            req.ip,
          );
        } catch (err) {
          if (!isUserError(err)) throw err;
          return page(reply, err.status, login(ctx, next, { error: err.message }));
        }
        setCookie(reply, req, FLOW_COOKIE, started.flow, FLOW_PATH, FLOW_TTL_S);
        return see(reply, started.authorizeUrl);
      },
    );

    scope.get(
      '/login/oidc/callback',
      {
        config: open,
        schema: {
          summary: "The provider's answer to a browser's single sign-on: a web session, on to next",
          security: [],
          querystring: Type.Object({}, { additionalProperties: Type.String({ maxLength: 4096 }) }),
          response: redirectResponses,
        },
      },
      async (req, reply) => {
        const oidc = ctx.identity?.oidc;
        clearCookie(reply, req, FLOW_COOKIE, FLOW_PATH);
        if (!oidc) return page(reply, 404, login(ctx, '/', { error: 'this Petri has no single sign-on' }));
        const query = new URLSearchParams(req.url.split('?')[1] ?? '');
        let done: { user: User; next: string };
        try {
          done = await oidc.finishWeb(
            { flows: cookieValues(req.headers.cookie, FLOW_COOKIE), query },
            req.ip,
          );
        } catch (err) {
          if (!isUserError(err)) throw err;
          return page(reply, err.status, login(ctx, '/', { error: err.message }));
        }
        await startSession(ctx, req, reply, done.user, 'single sign-on');
        return see(reply, apiNext(done.next));
      },
    );

    scope.post(
      '/logout',
      {
        config: open,
        schema: {
          summary: 'Signs a browser out: its web session ends',
          security: [],
          response: redirectResponses,
        },
      },
      async (req, reply) => {
        const refused = otherOrigin(req);
        if (refused) return page(reply, 403, messagePage('You are still signed in', [refused]));
        for (const value of sessionCookies(req)) await endWebSession(db, value);
        clearSessions(ctx, req, reply);
        return see(reply, '/login');
      },
    );

    scope.get(
      '/gate/sso',
      {
        config: open,
        schema: {
          summary:
            "The audience gate's single sign-on: back to the app's host with a single-use ticket, after /login if need be",
          security: [],
          querystring: SsoQuery,
          response: redirectResponses,
        },
        attachValidation: true,
      },
      async (req, reply) => {
        if (req.validationError) {
          return page(
            reply,
            400,
            messagePage('No experiment named', [
              'This address names no experiment; open the experiment again.',
            ]),
          );
        }
        const appNext = safeNext(req.query.next);
        const found = await gateAppNamed(db, req.query.app);
        if (!found || found.app.archived_at !== null) {
          return page(
            reply,
            404,
            messagePage('No experiment here', [`There is no experiment named ${req.query.app}.`]),
          );
        }
        const { app } = found;
        // Back over HTTPS whenever the visitor is on it or the router redirects there: the
        // ticket in the URL must never cross plain HTTP, not even to a custom domain.
        const secure = overHttps(config, https(req));
        const home =
          (await customOrigin(db, app.id, req.query.origin, secure)) ?? appUrl(config, app.name, secure);
        if (app.audience === 'public' && !awaitsReview(app)) return see(reply, `${home}${appNext}`);
        const who = await signedIn(ctx, req, reply);
        if (!who) {
          const from = req.query.origin ? `&origin=${encodeURIComponent(req.query.origin)}` : '';
          const back = `/gate/sso?app=${encodeURIComponent(app.name)}&next=${encodeURIComponent(appNext)}${from}`;
          return see(reply, `/login?next=${encodeURIComponent(back)}`);
        }
        const refusal = await gateRefusal(ctx, found, who.user);
        if (refusal) return page(reply, 403, refusal);
        const ticket = await issueGateTicket(db, app.id, who.user.id, app.audience_key_version);
        return see(reply, `${home}/.petri/sso?ticket=${ticket}&next=${encodeURIComponent(appNext)}`);
      },
    );
  });
}

/** The page that tells a signed-in person why the app does not let them in, if it does not. */
async function gateRefusal(ctx: ApiContext, found: GateApp, user: User): Promise<string | undefined> {
  const { app, owner } = found;
  switch (await gateAdmission(ctx.db, app, user)) {
    case 'ok':
      return undefined;
    case 'awaits_review':
      return messagePage(`${app.name} awaits review`, [
        `${app.name} holds sensitive data, and a Petri administrator has not reviewed it yet. Until then only its own team can use it.`,
        'Try again once it has been approved; its owner can tell you when.',
      ]);
    case 'not_a_person':
      return messagePage('Not for service accounts', [`${app.name} is for people; a bot cannot visit it.`]);
    case 'not_invited':
      return messagePage(`${app.name} is for invited people`, [
        `You are signed in as ${user.email ?? user.name}, who is not on ${app.name}'s list.`,
        `Ask its owner, ${owner.email ?? owner.name}, to invite you, or open the invite link you were sent.`,
      ]);
  }
}

/** The person a request's web session signs in, checked as the API checks every request:
 * the session live, the account enabled, and re-checked with its provider when due;
 * undefined when it does not pass (the browser signs in again).
 *
 * A request with more than one session cookie is signed in by none: another host under the
 * same parent domain (an app's page) may have set one for the parent domain, with a longer
 * path so that it comes first, to sign the visitor in as someone else (login CSRF). Every
 * copy is expired on `reply` and the browser signs in again. */
export async function signedIn(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<{ user: User; session: WebSession } | undefined> {
  const values = sessionCookies(req);
  if (values.length > 1) {
    clearSessions(ctx, req, reply);
    return undefined;
  }
  const value = values[0];
  if (value === undefined) return undefined;
  try {
    const found = await authenticateWebSession(ctx.db, value);
    if (decide(found.user, 'signed-in') !== 'ok') return undefined;
    let user = found.user;
    if (ctx.identity?.recheckDue(user)) user = await ctx.identity.recheck(user, null);
    return { user, session: found.session };
  } catch (err) {
    if (!isUserError(err)) throw err;
    return undefined;
  }
}

/** The values of the request's session cookie: __Host-petri_session over https (and only
 * that name), petri_session over http. */
export function sessionCookies(req: FastifyRequest): string[] {
  return cookieValues(req.headers.cookie, sessionCookieName(https(req)));
}

/** Paths a session cookie set by another host for the parent domain may have, besides the
 * prefixes of the request's own path: the API's and the pages'. */
const SESSION_PATHS = ['/', '/v1', '/gate', '/gate/sso', '/login', '/dashboard', '/app'];

/** Expires the session cookie: this host's own, and (over http, where the name is not
 * __Host-) copies set for the parent domains at the paths a tossed one is likely to have. */
function clearSessions(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply): void {
  const name = sessionCookieName(https(req));
  if (!https(req)) {
    const own = (req.url.split('?')[0] ?? '/').split('/').filter(Boolean);
    const paths = new Set(SESSION_PATHS);
    for (let i = 1; i <= Math.min(own.length, 4); i++) paths.add(`/${own.slice(0, i).join('/')}`);
    const domains = new Set([ctx.config.domain, ctx.config.apiHost].map((d) => d.toLowerCase()));
    for (const domain of domains) {
      for (const path of paths) clearCookie(reply, req, name, path, domain);
    }
  }
  clearCookie(reply, req, name, '/');
}

/** A local account's or LDAP's name and password: a local account with that e-mail signs in
 * with its password; any other name is the directory's, when there is one. */
async function passwordSignIn(ctx: ApiContext, login: string, password: string, ip: string): Promise<User> {
  const identity = ctx.identity;
  if (!identity) throw new Error('the API was built without its identity (sign-ins)');
  if (identity.ldap && !(await passwordAccount(ctx.db, login))) return identity.ldapUser(login, password, ip);
  return identity.passwordUser(login, password, ip);
}

async function startSession(
  ctx: ApiContext,
  req: FastifyRequest,
  reply: FastifyReply,
  user: User,
  how: string,
): Promise<void> {
  const { cookie } = await createWebSession(ctx.db, user.id, `web sign-in (${how}) from ${req.ip}`);
  setCookie(reply, req, sessionCookieName(https(req)), cookie, '/', Math.floor(SESSION_MAX_MS / 1000));
}

function login(ctx: ApiContext, next: string, more: { error?: string; login?: string } = {}): string {
  const providers = ctx.identity?.providers();
  let forApp: string | undefined;
  if (next.startsWith('/gate/sso?')) forApp = new URLSearchParams(next.slice(10)).get('app') ?? undefined;
  return loginPage({
    next,
    oidc: providers?.oidc ?? false,
    ldap: providers?.ldap ?? false,
    ...(more.error ? { error: more.error } : {}),
    ...(more.login ? { login: more.login } : {}),
    ...(forApp ? { forApp } : {}),
  });
}

/** `next` on the API host: a path of this host (never another), and never the sign-in pages
 * themselves (a signed-in visit to /login goes on to next, which must not be /login). */
function apiNext(raw: unknown): string {
  const next = safeNext(raw);
  const path = next.split(/[?#]/)[0]?.toLowerCase() ?? '/';
  return path.startsWith('/login') || path === '/logout' ? '/' : next;
}

/** The API host's origin as browsers reach it through the router (what the OIDC callback is
 * registered with): over HTTPS, with its port, when the request came over it or the router
 * redirects there anyway. */
export function apiOrigin(
  config: Pick<PetriConfig, 'apiHost' | 'httpPort' | 'httpsPort' | 'tls'>,
  req?: FastifyRequest,
): string {
  return routerOrigin(
    config,
    config.apiHost.toLowerCase(),
    overHttps(config, req !== undefined && https(req)),
  );
}

/** Why a form post is refused as coming from another origin (an app's page: the apps' hosts
 * are the same site as this one), if it is. Browsers say where a request comes from
 * (Sec-Fetch-Site, Origin) and a page cannot change it. */
export function otherOrigin(req: FastifyRequest): string | undefined {
  const site = req.headers['sec-fetch-site'];
  const said = 'This form was sent from another site or page, not from Petri’s own; nothing was done.';
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return said;
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== req.headers.host) return said;
  }
  return undefined;
}

/** Whether the request came over https (the router says so in X-Forwarded-Proto, which it
 * sets on every request). */
export function https(req: FastifyRequest): boolean {
  return req.headers['x-forwarded-proto'] === 'https';
}

function secure(req: FastifyRequest): string {
  return https(req) ? '; Secure' : '';
}

export function setCookie(
  reply: FastifyReply,
  req: FastifyRequest,
  name: string,
  value: string,
  path: string,
  maxAge: number,
): void {
  appendCookie(
    reply,
    `${name}=${value}; Path=${path}; Max-Age=${maxAge}; HttpOnly; SameSite=Lax${secure(req)}`,
  );
}

/** Expires the cookie `name` at `path`: this host's own, or with `domain` the copy set for
 * that (parent) domain, which a sibling host may have set. */
export function clearCookie(
  reply: FastifyReply,
  req: FastifyRequest,
  name: string,
  path: string,
  domain?: string,
): void {
  const scope = domain === undefined ? '' : `; Domain=${domain}`;
  appendCookie(reply, `${name}=${scope}; Path=${path}; Max-Age=0; HttpOnly; SameSite=Lax${secure(req)}`);
}

/** One more Set-Cookie line: Fastify appends each set-cookie it is given to those before
 * (handing it the list again would repeat them all: 31 lines for a sign-out, which HAProxy
 * refused as a bad response). */
function appendCookie(reply: FastifyReply, cookie: string): void {
  reply.header('set-cookie', cookie);
}

/** 303 to a path of this host (already checked) or an address Petri made. */
export function see(reply: FastifyReply, location: string): FastifyReply {
  return reply
    .code(303)
    .headers({ location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' })
    .send();
}

export function page(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).headers(gateHeaders()).send(body);
}
