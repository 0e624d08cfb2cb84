// /v1/auth/*: the sign-ins that need no browser (LDAP, local passwords, accepting an
// invitation with a new password), which sign-ins this server offers, and a local account's
// password change; /invite/:secret: the page an invitation link opens, with a form that sets
// the new account's password. Public but for the password change: these are how a token is
// had in the first place.
import formbody from '@fastify/formbody';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import {
  AuthProviders,
  errorResponses,
  InvitationAcceptBody,
  LdapSignInBody,
  PasswordChangeBody,
  PasswordChanged,
  PasswordSignInBody,
  SignedIn,
} from '../../contract/index.js';
import { apiPublicUrl } from '../../domain/invitations.js';
import type { Identity } from '../../identity/index.js';
import { TooManyAttempts } from '../../identity/rate-limit.js';
import { isUserError, UserError } from '../../lib/errors.js';
import type { Invitation } from '../../store/schema.js';
import type { Api, ApiContext } from '../context.js';

export function authRoutes(api: Api, ctx: ApiContext): void {
  const identity = (): Identity => {
    if (!ctx.identity) throw new UserError('unavailable', 'sign-in is not available on this server');
    return ctx.identity;
  };

  api.get(
    '/v1/auth/providers',
    {
      config: { access: 'public' },
      schema: {
        summary: 'The ways of signing in this server offers (the CLI chooses among them)',
        security: [],
        response: { 200: AuthProviders, ...errorResponses },
      },
    },
    async () => identity().providers(),
  );

  api.post(
    '/v1/auth/ldap',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Signs in with an LDAP user name and password: a session token',
        description:
          'Refused: 401 for a wrong or empty password or an unknown name (alike), 403 without an invitation, allowed group or domain, 429 past the failed attempts allowed (Retry-After says when to retry).',
        security: [],
        body: LdapSignInBody,
        response: { 200: SignedIn, ...errorResponses },
      },
    },
    async (req, reply) =>
      limited(reply, () => identity().signInWithLdap(req.body.username, req.body.password, req.ip)),
  );

  api.post(
    '/v1/auth/password',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Signs in to a local account with its e-mail and password: a session token',
        security: [],
        body: PasswordSignInBody,
        response: { 200: SignedIn, ...errorResponses },
      },
    },
    async (req, reply) =>
      limited(reply, () => identity().signInWithPassword(req.body.email, req.body.password, req.ip)),
  );

  api.post(
    '/v1/auth/invitations/accept',
    {
      config: { access: 'public' },
      schema: {
        summary:
          "Accepts an invitation: makes the invited e-mail's local account with this password, and signs it in",
        description:
          'An invitation works once and for 7 days: a second use or an expired one is refused (403).',
        security: [],
        body: InvitationAcceptBody,
        response: { 200: SignedIn, ...errorResponses },
      },
    },
    async (req, reply) =>
      limited(reply, () => identity().acceptInvitation(req.body.invitation, req.body.password, req.ip)),
  );

  api.post(
    '/v1/auth/password/change',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: "Changes a local account's password; the account's other sign-in sessions end",
        body: PasswordChangeBody,
        response: { 200: PasswordChanged, ...errorResponses },
      },
    },
    async (req, reply) =>
      limited(reply, () =>
        identity().changePassword(req.user, req.token, req.body.current, req.body.new, req.ip),
      ),
  );

  // The invitation page: plain HTML, no script. Form bodies are parsed in this scope only:
  // the API itself takes JSON.
  void api.register(async (plain) => {
    await plain.register(formbody, { bodyLimit: 8192 });
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    const InviteParams = Type.Object({ secret: Type.String({ maxLength: 512 }) });

    scope.get(
      '/invite/:secret',
      { config: { access: 'public' }, schema: { hide: true, params: InviteParams } },
      async (req, reply) => {
        try {
          const found = await identity().invitation(req.params.secret, req.ip);
          return page(reply, 200, invitationPage(ctx, found));
        } catch (err) {
          return refusedPage(reply, err);
        }
      },
    );

    scope.post(
      '/invite/:secret',
      {
        config: { access: 'public' },
        schema: {
          hide: true,
          params: InviteParams,
          body: Type.Object({
            password: Type.String({ maxLength: 1024 }),
            confirm: Type.String({ maxLength: 1024 }),
          }),
        },
        // A bad form gets the page again with what to fix, not a JSON error.
        attachValidation: true,
      },
      async (req, reply) => {
        const id = identity();
        let found: Awaited<ReturnType<Identity['invitation']>>;
        try {
          found = await id.invitation(req.params.secret, req.ip);
        } catch (err) {
          return refusedPage(reply, err);
        }
        if (req.validationError) {
          return page(reply, 400, invitationPage(ctx, found, 'fill in the password twice'));
        }
        if (req.body.password !== req.body.confirm) {
          return page(
            reply,
            400,
            invitationPage(ctx, found, 'the two passwords differ; type the same one twice'),
          );
        }
        try {
          const user = await id.createFromInvitation(req.params.secret, req.body.password, req.ip);
          return page(reply, 200, welcomePage(ctx, user.email ?? user.name));
        } catch (err) {
          if (err instanceof TooManyAttempts) reply.header('retry-after', String(err.retryAfterSeconds));
          if (isUserError(err) && err.code === 'bad_request') {
            return page(reply, 400, invitationPage(ctx, found, err.message));
          }
          return refusedPage(reply, err);
        }
      },
    );
  });
}

/** Runs a sign-in; a 429 carries Retry-After (the message says it in words). */
async function limited<T>(reply: FastifyReply, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof TooManyAttempts) reply.header('retry-after', String(err.retryAfterSeconds));
    throw err;
  }
}

interface FoundInvitation {
  invitation: Invitation;
  team: string | null;
  invitedBy: string;
}

function invitationPage(ctx: ApiContext, found: FoundInvitation, problem?: string): string {
  const { invitation, team, invitedBy } = found;
  const url = apiPublicUrl(ctx.config);
  const providers = ctx.identity?.providers();
  const grants = team
    ? `as ${esc(invitation.role)}, in team <b>${esc(team)}</b> (${esc(invitation.team_role ?? 'member')})`
    : `as ${esc(invitation.role)}`;
  const sso = providers?.oidc
    ? `<h2>Sign in with single sign-on</h2>
<p>If ${esc(invitation.email)} is your organisation account, sign in with SSO instead of setting a password: in a terminal, run</p>
<pre>petri login --url ${esc(url)}</pre>`
    : '';
  const ldap = providers?.ldap
    ? `<h2>Sign in with LDAP</h2>
<p>If ${esc(invitation.email)} is the e-mail of your directory account, run</p>
<pre>petri login --url ${esc(url)} --ldap YOUR-USER-NAME</pre>`
    : '';
  return `<h1>You are invited to Petri</h1>
<p><b>${esc(invitedBy)}</b> invited <b>${esc(invitation.email)}</b> to Petri ${grants}.
This invitation works once, until ${esc(invitation.expires_at.slice(0, 16).replace('T', ' '))} UTC.</p>
${sso}${ldap}
<h2>${sso || ldap ? 'Or set a password' : 'Set a password'}</h2>
<p>Make a local account for ${esc(invitation.email)} with a password (at least 10 characters).</p>
${problem ? `<p class="problem">${esc(problem)}</p>` : ''}
<form method="post">
<label>Password <input type="password" name="password" autocomplete="new-password" minlength="10" maxlength="1024" required></label>
<label>Again <input type="password" name="confirm" autocomplete="new-password" minlength="10" maxlength="1024" required></label>
<button type="submit">Create my account</button>
</form>`;
}

function welcomePage(ctx: ApiContext, email: string): string {
  const url = apiPublicUrl(ctx.config);
  return `<h1>Your account is ready</h1>
<p>${esc(email)} can now sign in to Petri. In a terminal, run</p>
<pre>petri login --url ${esc(url)} --email ${esc(email)}</pre>
<p>and type the password you just chose.</p>`;
}

function refusedPage(reply: FastifyReply, err: unknown): FastifyReply {
  if (!isUserError(err)) throw err;
  if (err instanceof TooManyAttempts) reply.header('retry-after', String(err.retryAfterSeconds));
  const title =
    err.code === 'not_found'
      ? 'This invitation link does not work'
      : err.code === 'too_many_requests'
        ? 'Too many attempts'
        : err.code === 'conflict'
          ? 'You have an account already'
          : 'This invitation cannot be used';
  return page(reply, err.status, `<h1>${esc(title)}</h1>\n<p>${esc(err.message)}</p>`);
}

/** A whole page, sent with headers that keep the link's secret where it is: no referrer to
 * other sites, no caching, no framing, and nothing but this page's own form and style. */
function page(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply
    .code(status)
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY')
    .header('x-content-type-options', 'nosniff')
    .header(
      'content-security-policy',
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    )
    .send(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Petri invitation</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; color: #222; }
pre { background: #f4f4f4; padding: .5rem .75rem; overflow-x: auto; }
label { display: block; margin: .5rem 0; }
input { display: block; width: 100%; padding: .4rem; font: inherit; }
button { margin-top: .75rem; padding: .5rem 1rem; font: inherit; }
.problem { color: #a00; font-weight: bold; }
</style>
</head>
<body>
${body}
</body>
</html>
`);
}

/** Text for HTML, in content and in quoted attributes. */
export function esc(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}
