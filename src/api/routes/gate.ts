// The audience gate's pages under an app's own host (issue 15): the router sends /.petri/...
// on any app host here, Host and all. No bearer token: the visitor is who the gate's own
// cookies say.
//
// GET  /.petri/join/:secret  an invite link: takes one of its uses, remembers the visitor as
//                            invite:<link id> (or a personal link's invitee) in the pending
//                            cookie, on to the notice
// GET  /.petri/gate?next=    the notice with the consent form, for a visitor the gate knows;
//                            a visitor it does not know goes to sign in: the API host's
//                            /gate/sso (routes/web-auth.ts), which comes back with a ticket
// GET  /.petri/sso?ticket=   the ticket redeemed (single use, 60 s, this app only): straight
//                            through with the gate cookie when the visitor consented to this
//                            notice already, else on to the notice
// POST /.petri/consent       Continue: records the consent, sets the gate cookie, on to next;
//                            No thanks: nothing recorded
// GET  /.petri/leave         what leaving does, with its button; POST withdraws the consent
//
// An app that awaits an admin's review is gated too: /gate/sso lets only its team through.
import { createHmac, randomBytes } from 'node:crypto';
import formbody from '@fastify/formbody';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import {
  consentOf,
  endAppPasses,
  recordConsent,
  spendLink,
  touchVisit,
  withdrawConsent,
} from '../../domain/audiences.js';
import { awaitsReview } from '../../domain/experiments.js';
import {
  type GateApp,
  gateAdmission,
  gateAppOf,
  linkVisitor,
  RETURN_KV,
  usableLink,
  wayBackHolds,
} from '../../domain/gate.js';
import { redeemGateTicket } from '../../domain/web-sessions.js';
import {
  cookieValues,
  GATE_COOKIE,
  GATE_TTL_SECONDS,
  gateKey,
  PENDING_COOKIE,
  PENDING_TTL_SECONDS,
  type PendingClaims,
  RETURN_COOKIE,
  RETURN_TTL_SECONDS,
  sameToken,
  signGateCookie,
  signPending,
  signReturn,
  validVisitor,
  verifyGateCookie,
  verifyPending,
  verifyReturn,
} from '../../gate/cookie.js';
import { safeNext } from '../../gate/next.js';
import { messagePage, noticePage } from '../../gate/pages.js';
import { isUserError } from '../../lib/errors.js';
import type { Api, ApiContext } from '../context.js';
import { apiOrigin, clearCookie, page, see, setCookie } from './web-auth.js';

const NextQuery = Type.Object({ next: Type.Optional(Type.String({ maxLength: 4096 })) });
const SsoQuery = Type.Object({
  ticket: Type.Optional(Type.String({ maxLength: 256 })),
  next: Type.Optional(Type.String({ maxLength: 4096 })),
});
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
    // The way back is not tied to the key version, which lock-outs of others raise (someone
    // disabled, taken off the team, or leaving): the gate checks its link or invitee instead.
    back: gateKey(gateSecret(), 'return', app.id, RETURN_KV),
  });
  const expect = (app: GateApp['app']) => ({ app: app.name, kv: app.audience_key_version });
  const answered = new AnsweredForms();

  /** The app of the request's host, or a 404 page (answered) when there is none. */
  const appOf = async (req: FastifyRequest, reply: FastifyReply): Promise<GateApp | undefined> => {
    const found = await gateAppOf(ctx.db, ctx.config, req.headers.host);
    if (found && found.app.archived_at === null) return found;
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
        if (awaitsReview(app)) return page(reply, 403, awaitsReviewPage(app.name));
        if (app.audience === 'public') return see(reply, next);
        // Opening the link takes none of its uses (mail scanners open links too): consenting does.
        const link = await usableLink(ctx.db, app.id, req.params.secret);
        if (link === undefined) {
          const refusal = await linkRefusal(ctx, app.id, req.params.secret);
          return page(
            reply,
            refusal.status,
            messagePage('This invite link does not work', [refusal.message]),
          );
        }
        const pending = signPending(keys(app).pending, {
          app: app.name,
          sub: linkVisitor(link),
          name: link.email ?? 'Invited visitor',
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
        if (app.audience === 'public' && !awaitsReview(app)) return see(reply, next);
        const k = keys(app);
        // Through already, with this notice. The router sent the visitor here all the same:
        // it checks the LAST petri_gate of the Cookie header, and another app may have set
        // one for the parent domain (its host is a sibling of this one). Straight on with the
        // same cookies would loop, so the parent domain's copies are expired and this host's
        // cookie is set anew (the newest of its name, sent last), then on.
        const gateTokens = cookies(req, GATE_COOKIE);
        const through = firstValid(gateTokens, (t) => verifyGateCookie(t, k.cookie, expect(app)));
        if (through && through.nv === app.notice_version) {
          expireTossed(reply, req, ctx.config.domain);
          const token = gateTokens.find((t) => verifyGateCookie(t, k.cookie, expect(app)).ok) ?? '';
          const left = Math.max(1, through.exp - Math.floor(Date.now() / 1000));
          clearCookie(reply, req, GATE_COOKIE, '/');
          setCookie(reply, req, GATE_COOKIE, token, '/', Math.min(left, GATE_TTL_SECONDS));
          return see(reply, next);
        }
        if (gateTokens.length > 1) expireTossed(reply, req, ctx.config.domain);
        // Several pending states: a sibling app may have tossed its own (someone else's) to
        // have this visitor consent as them. None counts; the visitor signs in again.
        const pending = onlyValid(req, reply, ctx.config.domain, (t) =>
          verifyPending(t, k.pending, expect(app)),
        );
        if (!pending) {
          // An invite link's visitor whose gate cookie ran out: back in without the link.
          const back = firstValid(cookies(req, RETURN_COOKIE), (t) =>
            verifyReturn(t, k.back, { app: app.name, kv: RETURN_KV }),
          );
          if (back && (await wayBackHolds(ctx.db, app.id, back.sub))) {
            const consent = await consentOf(ctx.db, app.id, back.sub);
            if (consent && consent.withdrawn_at === null && consent.notice_version === app.notice_version) {
              await touchVisit(ctx.db, app.id, back.sub);
              const cookie = signGateCookie(k.cookie, {
                app: app.name,
                sub: back.sub,
                name: back.name,
                nv: app.notice_version,
                kv: app.audience_key_version,
              });
              setCookie(reply, req, GATE_COOKIE, cookie, '/', GATE_TTL_SECONDS);
              return see(reply, next);
            }
            // A new notice (or they left): they read it again, and no use of the link is taken.
            const again = signPending(k.pending, {
              app: app.name,
              sub: back.sub,
              name: back.name,
              kv: app.audience_key_version,
              csrf: randomBytes(24).toString('base64url'),
              back: true,
            });
            setCookie(reply, req, PENDING_COOKIE, again, '/.petri', PENDING_TTL_SECONDS);
            return see(reply, `/.petri/gate?next=${encodeURIComponent(next)}`);
          }
          // Not known here: signing in with the organisation's account, on the API host, which
          // comes back to /.petri/sso with a ticket.
          return see(reply, ssoUrl(ctx, app.name, next, req));
        }
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

    scope.get(
      '/.petri/sso',
      { config, schema: { hide: true, querystring: SsoQuery } },
      async (req, reply) => {
        const found = await appOf(req, reply);
        if (!found) return reply;
        const { app } = found;
        const next = safeNext(req.query.next);
        const user = await redeemGateTicket(ctx.db, app, req.query.ticket ?? '');
        // Asked again: the person may have been removed from the list since /gate/sso.
        if (!user || user.disabled_at !== null || (await gateAdmission(ctx.db, app, user)) !== 'ok') {
          return page(
            reply,
            403,
            messagePage(
              'This sign-in link does not work',
              [
                `It was used already, it is older than a minute, it is for another experiment than ${app.name}, or ${app.name} no longer lets you in. Nothing was recorded.`,
              ],
              undefined,
              {
                href: `/.petri/gate?next=${encodeURIComponent(next)}`,
                label: `Sign in to ${app.name} again`,
              },
            ),
          );
        }
        const visitor = user.email ?? `user:${user.id}`;
        if (!validVisitor(visitor)) {
          return page(
            reply,
            403,
            messagePage('Your account cannot visit experiments', [
              'Its e-mail address has characters an experiment could not be told safely; ask an admin.',
            ]),
          );
        }
        const k = keys(app);
        const consent = await consentOf(ctx.db, app.id, visitor);
        if (consent && consent.withdrawn_at === null && consent.notice_version === app.notice_version) {
          // A returning visitor: this notice was answered already, so straight through.
          await touchVisit(ctx.db, app.id, visitor);
          const cookie = signGateCookie(k.cookie, {
            app: app.name,
            sub: visitor,
            name: user.name,
            nv: app.notice_version,
            kv: app.audience_key_version,
          });
          setCookie(reply, req, GATE_COOKIE, cookie, '/', GATE_TTL_SECONDS);
          return see(reply, next);
        }
        const pending = signPending(k.pending, {
          app: app.name,
          sub: visitor,
          name: user.name,
          kv: app.audience_key_version,
          csrf: randomBytes(24).toString('base64url'),
        });
        setCookie(reply, req, PENDING_COOKIE, pending, '/.petri', PENDING_TTL_SECONDS);
        return see(reply, `/.petri/gate?next=${encodeURIComponent(next)}`);
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
        const pending = onlyValid(req, reply, ctx.config.domain, (t) =>
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
          // One pending state takes one use, however often its form is posted (a replay, or
          // the same cookie copied to other browsers): the first post's answer stands.
          if (!answered.take(pending.csrf, pending.exp * 1000)) {
            return page(
              reply,
              409,
              messagePage(
                'You answered this notice already',
                [`Nothing more was recorded. Open ${app.name} again.`],
                undefined,
                { href: next, label: `Open ${app.name}` },
              ),
            );
          }
          // The link's use is taken now, atomically: the last use goes to one visitor only.
          let link: { id: number; email: string | null };
          try {
            link = await spendLink(ctx.db, app.id, pending.link);
          } catch (err) {
            answered.drop(pending.csrf);
            if (!isUserError(err)) throw err;
            return page(
              reply,
              err.code === 'not_found' ? 404 : 403,
              messagePage('This invite link does not work any more', [err.message, 'Nothing was recorded.']),
            );
          }
          if (linkVisitor(link) !== pending.sub) {
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
        if (pending.link !== undefined || pending.back) {
          const pass = { app: app.name, sub: pending.sub, name: pending.name, kv: RETURN_KV };
          setCookie(reply, req, RETURN_COOKIE, signReturn(k.back, pass), '/.petri', RETURN_TTL_SECONDS);
        }
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
        if (claims.ok) {
          await withdrawConsent(ctx.db, app.id, claims.claims.sub);
          // Their cookies in other browsers end too (everyone else's with them: those with a
          // live web session or a link's way back come through again in a few redirects).
          await endAppPasses(ctx.db, app.id);
          await gateKeysChanged(ctx);
        }
        clearCookie(reply, req, GATE_COOKIE, '/');
        clearCookie(reply, req, RETURN_COOKIE, '/.petri');
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

/** The invite-link consents this process took a use for, by their pending state's CSRF
 * token, until that state expires (30 minutes): a pending state is good for one use. Kept in
 * memory: a restart forgets them, which lets a replay within the pending state's half hour
 * take one more use. */
class AnsweredForms {
  private readonly seen = new Map<string, number>();

  /** True the first time `csrf` is answered (until `expiresMs`), false after. */
  take(csrf: string, expiresMs: number, nowMs = Date.now()): boolean {
    if (this.seen.size > 1000) {
      for (const [k, until] of this.seen) if (until <= nowMs) this.seen.delete(k);
    }
    const until = this.seen.get(csrf);
    if (until !== undefined && until > nowMs) return false;
    this.seen.set(csrf, expiresMs);
    return true;
  }

  /** Forgets `csrf` (its use was not taken after all). */
  drop(csrf: string): void {
    this.seen.delete(csrf);
  }
}

/** How long a change that ends gate cookies waits for the router to have the new keys
 * before it answers anyway (the reconciler's pass then ends the cookies a moment later). */
const ROUTES_WAIT_MS = 5_000;

/** After a change that raised apps' key versions (an invitee removed, a link revoked, the
 * audience changed, someone disabled or leaving): waits until the router has the new keys,
 * so the change holds at the very next request, not a reconciler pass later. */
export async function gateKeysChanged(ctx: ApiContext): Promise<void> {
  if (!ctx.routesNow) return ctx.nudge();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ROUTES_WAIT_MS);
  });
  try {
    await Promise.race([ctx.routesNow(), late]);
  } catch {
    ctx.nudge();
  } finally {
    clearTimeout(timer);
  }
}

/** What an unusable link's visitor is told: spendLink's own refusal (it takes no use when it
 * refuses), with its status. */
async function linkRefusal(
  ctx: ApiContext,
  appId: number,
  secret: string,
): Promise<{ status: number; message: string }> {
  try {
    await spendLink(ctx.db, appId, secret);
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

/** Expires the gate's cookies set for the parent domain (by a sibling app's response: the
 * gate itself only sets host-only ones), at the paths the gate uses. */
function expireTossed(reply: FastifyReply, req: FastifyRequest, domain: string): void {
  for (const [name, path] of [
    [GATE_COOKIE, '/'],
    [PENDING_COOKIE, '/.petri'],
    [RETURN_COOKIE, '/.petri'],
  ] as const) {
    clearCookie(reply, req, name, path, domain);
  }
}

/** The pending state when the request carries exactly one and it is valid; with several
 * (a sibling host added one) none, and every copy is expired. */
function onlyValid(
  req: FastifyRequest,
  reply: FastifyReply,
  domain: string,
  check: (t: string) => { ok: true; claims: PendingClaims } | { ok: false },
): PendingClaims | undefined {
  const tokens = cookies(req, PENDING_COOKIE);
  if (tokens.length > 1) {
    expireTossed(reply, req, domain);
    clearCookie(reply, req, PENDING_COOKIE, '/.petri');
    return undefined;
  }
  return firstValid(tokens, check);
}

/** Every value of the cookie `name` (a sibling host may have added one of the same name). */
function cookies(req: FastifyRequest, name: string): string[] {
  return cookieValues(req.headers.cookie, name);
}

/** The API host's sign-in for this app's visitor, coming back to `next` on the app's host:
 * the origin the visitor is at when it is a custom domain of the app (/gate/sso checks it).
 * Over HTTPS when the visitor is on it (apiOrigin). */
function ssoUrl(ctx: ApiContext, app: string, next: string, req: FastifyRequest): string {
  const url = `${apiOrigin(ctx.config, req)}/gate/sso?app=${encodeURIComponent(app)}&next=${encodeURIComponent(next)}`;
  const host = req.headers.host ?? '';
  if (host.split(':')[0]?.toLowerCase() === `${app}.${ctx.config.domain}`) return url;
  const proto = req.headers['x-forwarded-proto'] === 'https' ? 'https' : 'http';
  return `${url}&origin=${encodeURIComponent(`${proto}://${host}`)}`;
}

function awaitsReviewPage(app: string): string {
  return messagePage(`${app} awaits review`, [
    `${app} holds sensitive data, and a Petri administrator has not reviewed it yet. Until then only its own team can use it.`,
  ]);
}
