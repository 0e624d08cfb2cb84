// The audience gate's pages under an app's own host (issue 15): the router sends /.petri/...
// on any app host here, Host and all. No bearer token: the visitor is who the gate's own
// cookies say.
//
// GET  /.petri/join/:secret  an invite link: takes one of its uses, remembers the visitor as
//                            invite:<link id> (the pending cookie), on to the notice
// GET  /.petri/gate?next=    the notice with the consent form, for a visitor the gate knows
// POST /.petri/consent       Continue: records the consent, sets the gate cookie, on to next;
//                            No thanks: nothing recorded
// GET  /.petri/leave         what leaving does, with its button; POST withdraws the consent
//
// Signing in with the organisation's SSO at the gate (staff apps, and invitees by e-mail)
// needs a server-side OIDC callback: not yet; such a visitor is told so.
import { createHmac, randomBytes } from 'node:crypto';
import formbody from '@fastify/formbody';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { recordConsent, useLink, withdrawConsent } from '../../domain/audiences.js';
import { awaitsReview } from '../../domain/experiments.js';
import { type GateApp, gateAppOf, usableLinkId } from '../../domain/gate.js';
import {
  GATE_COOKIE,
  GATE_TTL_SECONDS,
  gateKey,
  PENDING_COOKIE,
  PENDING_TTL_SECONDS,
  sameToken,
  signGateCookie,
  signPending,
  verifyGateCookie,
  verifyPending,
} from '../../gate/cookie.js';
import { safeNext } from '../../gate/next.js';
import { gateHeaders, messagePage, noticePage } from '../../gate/pages.js';
import { isUserError } from '../../lib/errors.js';
import type { Api, ApiContext } from '../context.js';

const NextQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) });
const FormBody = Type.Object({
  csrf: Type.Optional(Type.String({ maxLength: 256 })),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
  choice: Type.Optional(Type.String({ maxLength: 32 })),
});

export function gateRoutes(api: Api, ctx: ApiContext): void {
  // Derived on first use, not at registration: building the API for its OpenAPI document
  // (the CLI's contract test) needs no secrets.
  let derived: ReturnType<ApiContext['secrets']['derive']> | undefined;
  const gateSecret = () => {
    derived ??= ctx.secrets.derive('audience gate');
    return derived;
  };
  const keys = (app: GateApp['app']) => ({
    cookie: gateKey(gateSecret(), 'cookie', app.id, app.audience_key_version),
    pending: gateKey(gateSecret(), 'pending', app.id, app.audience_key_version),
  });
  const expect = (app: GateApp['app']) => ({ app: app.name, kv: app.audience_key_version });

  /** The app of the request's host, or a 404 page (answered) when there is none. */
  const appOf = async (req: FastifyRequest, reply: FastifyReply): Promise<GateApp | undefined> => {
    const found = await gateAppOf(ctx.db, ctx.config, req.headers.host);
    if (found && found.app.archived_at === null && !awaitsReview(found.app)) return found;
    page(
      reply,
      404,
      messagePage('No experiment here', ['There is no experiment at this address to sign in to.']),
    );
    return undefined;
  };

  api.register(async (plain) => {
    await plain.register(formbody, { bodyLimit: 16_384 });
    const scope = plain.withTypeProvider<TypeBoxTypeProvider>();
    const config = { access: 'public' as const };

    scope.get(
      '/.petri/join/:secret',
      {
        config,
        schema: {
          hide: true,
          params: Type.Object({ secret: Type.String({ maxLength: 512 }) }),
          querystring: NextQuery,
        },
      },
      async (req, reply) => {
        const found = await appOf(req, reply);
        if (!found) return reply;
        const { app } = found;
        const next = safeNext(req.query.next);
        if (app.audience === 'public') return see(reply, next);
        // Opening the link takes none of its uses (mail scanners open links too): consenting does.
        const linkId = await usableLinkId(ctx.db, app.id, req.params.secret);
        if (linkId === undefined) {
          const refusal = await linkRefusal(ctx, app.id, req.params.secret);
          return page(
            reply,
            refusal.status,
            messagePage('This invite link does not work', [refusal.message]),
          );
        }
        const pending = signPending(keys(app).pending, {
          app: app.name,
          sub: `invite:${linkId}`,
          name: 'Invited visitor',
          kv: app.audience_key_version,
          csrf: randomBytes(24).toString('base64url'),
          link: req.params.secret,
        });
        setCookie(reply, req, PENDING_COOKIE, pending, '/.petri', PENDING_TTL_SECONDS);
        return see(reply, `/.petri/gate?next=${encodeURIComponent(next)}`);
      },
    );

    scope.get(
      '/.petri/gate',
      { config, schema: { hide: true, querystring: NextQuery } },
      async (req, reply) => {
        const found = await appOf(req, reply);
        if (!found) return reply;
        const { app } = found;
        const next = safeNext(req.query.next);
        if (app.audience === 'public') return see(reply, next);
        const k = keys(app);
        // Through already, with this notice: straight on.
        const through = firstValid(cookies(req, GATE_COOKIE), (t) =>
          verifyGateCookie(t, k.cookie, expect(app)),
        );
        if (through && through.nv === app.notice_version) return see(reply, next);
        const pending = firstValid(cookies(req, PENDING_COOKIE), (t) =>
          verifyPending(t, k.pending, expect(app)),
        );
        if (!pending) return page(reply, 401, signInNeeded(found));
        return page(
          reply,
          200,
          noticePage({
            app: app.name,
            description: app.description,
            owner: found.owner,
            team: found.team,
            expiresAt: app.expires_at,
            dataClass: app.data_class,
            privacyNote: app.privacy_note,
            retentionDays: app.retention_days,
            visitor: pending.sub.startsWith('invite:') ? 'a visitor with an invite link' : pending.sub,
            noticeVersion: app.notice_version,
            csrf: pending.csrf,
            next,
          }),
        );
      },
    );

    scope.post(
      '/.petri/consent',
      { config, schema: { hide: true, body: FormBody }, attachValidation: true },
      async (req, reply) => {
        const found = await appOf(req, reply);
        if (!found) return reply;
        const { app } = found;
        const body = req.validationError ? {} : (req.body ?? {});
        const next = safeNext(body.next);
        const k = keys(app);
        const pending = firstValid(cookies(req, PENDING_COOKIE), (t) =>
          verifyPending(t, k.pending, expect(app)),
        );
        const refused = crossSite(req);
        if (refused) return page(reply, 403, messagePage('Consent not recorded', [refused]));
        if (!pending || !sameToken(body.csrf, pending.csrf)) {
          return page(
            reply,
            403,
            messagePage('This form is out of date', [
              'Nothing was recorded: the notice you answered is no longer the current one, or it was not sent from this page. Open the experiment again to read the notice and answer it.',
            ]),
          );
        }
        clearCookie(reply, req, PENDING_COOKIE, '/.petri');
        if (body.choice !== 'continue') {
          return page(
            reply,
            200,
            messagePage('Nothing was recorded', [
              `You chose not to use ${app.name}. Petri recorded nothing about you and the experiment did not learn who you are.`,
            ]),
          );
        }
        if (pending.link !== undefined) {
          // The link's use is taken now, atomically: the last use goes to one visitor only.
          let linkId: number;
          try {
            linkId = await useLink(ctx.db, app.id, pending.link);
          } catch (err) {
            if (!isUserError(err)) throw err;
            return page(
              reply,
              err.code === 'not_found' ? 404 : 403,
              messagePage('This invite link does not work any more', [err.message, 'Nothing was recorded.']),
            );
          }
          if (`invite:${linkId}` !== pending.sub) {
            return page(
              reply,
              403,
              messagePage('Consent not recorded', ['This invite link is not the one you opened.']),
            );
          }
        }
        await recordConsent(ctx.db, app.id, pending.sub, app.notice_version);
        const cookie = signGateCookie(k.cookie, {
          app: app.name,
          sub: pending.sub,
          name: pending.name,
          nv: app.notice_version,
          kv: app.audience_key_version,
        });
        setCookie(reply, req, GATE_COOKIE, cookie, '/', GATE_TTL_SECONDS);
        return see(reply, next);
      },
    );

    scope.get('/.petri/leave', { config, schema: { hide: true } }, async (req, reply) => {
      const found = await appOf(req, reply);
      if (!found) return reply;
      const { app } = found;
      const k = keys(app);
      const token = cookies(req, GATE_COOKIE).find((t) => verifyGateCookie(t, k.cookie, expect(app)).ok);
      if (!token) return page(reply, 200, notThrough(app.name));
      return page(
        reply,
        200,
        messagePage(
          `Leave ${app.name}`,
          [
            `Leaving withdraws your consent to ${app.name}'s notice: its owner sees that you left, and the experiment no longer learns who you are. Data it already keeps about you stays until you ask its owner, ${found.owner.email ?? found.owner.name}, to delete it.`,
          ],
          { action: '/.petri/leave', csrf: leaveToken(k.pending, token), label: `Leave ${app.name}` },
        ),
      );
    });

    scope.post(
      '/.petri/leave',
      { config, schema: { hide: true, body: FormBody }, attachValidation: true },
      async (req, reply) => {
        const found = await appOf(req, reply);
        if (!found) return reply;
        const { app } = found;
        const body = req.validationError ? {} : (req.body ?? {});
        const k = keys(app);
        const refused = crossSite(req);
        if (refused) return page(reply, 403, messagePage('You have not left', [refused]));
        const token = cookies(req, GATE_COOKIE).find(
          (t) =>
            verifyGateCookie(t, k.cookie, expect(app)).ok && sameToken(body.csrf, leaveToken(k.pending, t)),
        );
        if (!token) {
          return page(
            reply,
            403,
            messagePage('This form is out of date', [
              `Nothing changed. Open /.petri/leave on ${app.name} again and press its button.`,
            ]),
          );
        }
        const claims = verifyGateCookie(token, k.cookie, expect(app));
        if (claims.ok) await withdrawConsent(ctx.db, app.id, claims.claims.sub);
        clearCookie(reply, req, GATE_COOKIE, '/');
        return page(
          reply,
          200,
          messagePage(`You left ${app.name}`, [
            'Your consent is withdrawn and this browser no longer carries your pass to the experiment. Coming back shows you its notice again.',
          ]),
        );
      },
    );
  });
}

/** What an unusable link's visitor is told: useLink's own refusal (it takes no use when it
 * refuses), with its status. */
async function linkRefusal(
  ctx: ApiContext,
  appId: number,
  secret: string,
): Promise<{ status: number; message: string }> {
  try {
    await useLink(ctx.db, appId, secret);
  } catch (err) {
    if (!isUserError(err)) throw err;
    return { status: err.code === 'not_found' ? 404 : 403, message: err.message };
  }
  // Usable after all (it became so a moment ago): it was taken, so say nothing went wrong.
  return { status: 409, message: 'Open the link again.' };
}

/** Why a form post is refused as not coming from the gate's own page, if it is. Browsers say
 * where a request comes from (Sec-Fetch-*, Origin) and scripts cannot change it: a post from
 * another site, or one a script made instead of a person clicking (the app's own scripts run
 * on this host too), is refused. */
function crossSite(req: FastifyRequest): string | undefined {
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') {
    return 'The answer came from another site, not from the notice on this one. Nothing was recorded.';
  }
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (host !== req.headers.host) {
      return 'The answer came from another site, not from the notice on this one. Nothing was recorded.';
    }
  }
  const mode = req.headers['sec-fetch-mode'];
  if (mode !== undefined && (mode !== 'navigate' || req.headers['sec-fetch-user'] !== '?1')) {
    return 'Only a click on the page’s button answers it; a script cannot. Nothing was recorded.';
  }
  return undefined;
}

function signInNeeded(found: GateApp): string {
  const { app } = found;
  return messagePage(`${app.name} is for ${app.audience === 'invite' ? 'invited people' : 'staff'}`, [
    app.audience === 'invite'
      ? `Open the invite link you were sent for ${app.name} to read its notice. If you have none, ask ${found.owner.email ?? found.owner.name}.`
      : `${app.name} is open to the people of this organisation once they sign in.`,
    'Signing in with your organisation’s account here is not available yet.',
  ]);
}

function notThrough(app: string): string {
  return messagePage(`You are not signed in to ${app}`, [
    `This browser carries no pass to ${app}, so there is nothing to withdraw here. If you consented in another browser, leave there, or ask the experiment's owner.`,
  ]);
}

/** The leave form's CSRF token: bound to the very cookie it withdraws, an HMAC under the
 * app's pending key (never the cookie key, so it is no gate cookie). */
function leaveToken(key: string, cookie: string): string {
  return createHmac('sha256', Buffer.from(key, 'ascii')).update(`leave ${cookie}`).digest('base64url');
}

function firstValid<T>(
  tokens: string[],
  check: (t: string) => { ok: true; claims: T } | { ok: false },
): T | undefined {
  for (const t of tokens) {
    const r = check(t);
    if (r.ok) return r.claims;
  }
  return undefined;
}

/** Every value of the cookie `name` (a sibling host may have added one of the same name). */
function cookies(req: FastifyRequest, name: string): string[] {
  const header = req.headers.cookie;
  if (!header) return [];
  const out: string[] = [];
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    if (part.slice(0, at).trim() === name) out.push(part.slice(at + 1).trim());
  }
  return out.slice(0, 10);
}

function secure(req: FastifyRequest): string {
  return req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
}

function setCookie(
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

function clearCookie(reply: FastifyReply, req: FastifyRequest, name: string, path: string): void {
  appendCookie(reply, `${name}=; Path=${path}; Max-Age=0; HttpOnly; SameSite=Lax${secure(req)}`);
}

function appendCookie(reply: FastifyReply, cookie: string): void {
  const had = reply.getHeader('set-cookie');
  const list = had === undefined ? [] : Array.isArray(had) ? had.map(String) : [String(had)];
  reply.header('set-cookie', [...list, cookie]);
}

/** 303 to a path on this host (already checked by safeNext, or the gate's own). */
function see(reply: FastifyReply, location: string): FastifyReply {
  return reply
    .code(303)
    .headers({ location, 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' })
    .send();
}

function page(reply: FastifyReply, status: number, body: string): FastifyReply {
  return reply.code(status).headers(gateHeaders()).send(body);
}
