// The gate's cookies: compact JWTs (JWS, HS256) signed with a key of the app's own.
//
// Why HS256: the router checks the cookie itself next (HAProxy 2.6's jwt_verify converter),
// and for the HMAC algorithms jwt_verify takes the secret as a string, which may come from a
// variable filled from a map: keys can be added and replaced through the runtime API with no
// reload. ES256 needs each public key as a certificate file named in the config at start, so
// rotating a key would need a reload.
//
// The key of an app is HKDF-SHA256 of the server's secret with the app's id and its
// audience key version: bumping the version (an invitee removed, a link revoked, the audience
// or the notice changed) makes every cookie signed before it fail its signature at once, and
// another app's cookie never verifies. The key is used as the ASCII text of its base64url
// form, which is what HAProxy will be handed (a map value is text).
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** The cookie that lets a visitor through to the app (host-only, Path=/, HttpOnly). */
export const GATE_COOKIE = 'petri_gate';
/** The gate's own state between sign-in (or an invite link) and consent: Path=/.petri. */
export const PENDING_COOKIE = 'petri_gate_pending';
/** An invite link's visitor's way back (Path=/.petri): once their 12-hour gate cookie runs
 * out, the gate lets them in again without taking another of the link's uses. Signed under
 * the app's key version, so a revoked link or a removed invitee ends it too. */
export const RETURN_COOKIE = 'petri_gate_return';

/** 12 hours: a visitor comes back through the gate (quickly, while signed in) twice a day. */
export const GATE_TTL_SECONDS = 12 * 3600;
/** Time to read a notice and decide. */
export const PENDING_TTL_SECONDS = 30 * 60;
/** How long a link's visitor may come back without the link. */
export const RETURN_TTL_SECONDS = 30 * 86_400;
/** Longer than any cookie this module writes; longer ones are refused unread. */
const TOKEN_MAX = 4096;
/** A visitor's name as the app will read it in X-Petri-User-Name. */
export const NAME_MAX = 100;

export type KeyPurpose = 'cookie' | 'pending' | 'return';

/** The app's signing key for one purpose and key version (base64url text, 43 characters). */
export function gateKey(
  serverSecret: Buffer,
  purpose: KeyPurpose,
  appId: number,
  keyVersion: number,
): string {
  if (serverSecret.length < 32) throw new Error('the gate needs a server secret of at least 32 bytes');
  if (!Number.isSafeInteger(appId) || !Number.isSafeInteger(keyVersion)) {
    throw new Error('app id and key version must be integers');
  }
  const info = `petri gate ${purpose} app ${appId} kv ${keyVersion}`;
  return Buffer.from(hkdfSync('sha256', serverSecret, 'petri-gate-v1', info, 32)).toString('base64url');
}

/** What the gate cookie says: whose it is, for which app, notice and key version. */
export interface GateClaims {
  /** App name. */
  app: string;
  /** The visitor: an e-mail address, or invite:<link id>. */
  sub: string;
  /** The visitor's name (X-Petri-User-Name). */
  name: string;
  /** Notice version consented to. */
  nv: number;
  /** Audience key version it was signed under. */
  kv: number;
  iat: number;
  exp: number;
}

/** The pending state: who the visitor is before they consent, and the form's CSRF token. */
export interface PendingClaims {
  app: string;
  sub: string;
  name: string;
  kv: number;
  csrf: string;
  /** The invite link's secret, for a visitor who came with one: its use is taken only when
   * they consent (a mail scanner opening the link takes none). */
  link?: string;
  /** A link's visitor back without the link (RETURN_COOKIE): consenting renews their pass. */
  back?: true;
  iat: number;
  exp: number;
}

/** An invite link's secret as it appears in /.petri/join/SECRET. */
export const LINK_SECRET = /^[A-Za-z0-9_-]{1,512}$/;

const HEADER = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));

/** A visitor id: an e-mail address or invite:<id>, printable ASCII without separators that
 * could end a header or a cookie. */
const VISITOR = /^[\x21-\x2b\x2d-\x3a\x3c-\x7e]{1,254}$/;

export function validVisitor(sub: string): boolean {
  return VISITOR.test(sub);
}

/** A name safe to put in a header: no control characters (C0, DEL, C1, line and paragraph
 * separators, invisible format characters), whitespace runs as one space, at most NAME_MAX
 * characters. */
export function cleanName(name: string): string {
  const cleaned = name
    // Controls (C0, DEL, C1), line and paragraph separators, and the invisible format
    // characters (bidi overrides, zero-width joiners): HAProxy copies the name into a header.
    .replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}\p{Cn}]/gu, ' ')
    // Quotes and backslashes: JSON escapes them, and HAProxy's json_query leaves \" and \\
    // escaped, so the app would read a name that is not the one shown at the gate.
    .replace(/["\\]/g, '')
    .replace(/\s+/g, ' ')
    .trim();
  return [...cleaned].slice(0, NAME_MAX).join('');
}

export function signGateCookie(
  key: string,
  input: { app: string; sub: string; name: string; nv: number; kv: number },
  nowMs = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  return sign(key, { ...claimsOf(input), nv: input.nv, kv: input.kv, iat, exp: iat + GATE_TTL_SECONDS });
}

export function signPending(
  key: string,
  input: { app: string; sub: string; name: string; kv: number; csrf: string; link?: string; back?: true },
  nowMs = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  if (!/^[A-Za-z0-9_-]{16,128}$/.test(input.csrf)) throw new Error('a CSRF token is base64url text');
  if (input.link !== undefined && !LINK_SECRET.test(input.link)) throw new Error('not an invite link secret');
  return sign(key, {
    ...claimsOf(input),
    kv: input.kv,
    csrf: input.csrf,
    ...(input.link !== undefined ? { link: input.link } : {}),
    ...(input.back ? { back: true } : {}),
    iat,
    exp: iat + PENDING_TTL_SECONDS,
  });
}

/** A link visitor's way back: who they are to the app (no consent, no CSRF: the gate checks
 * the recorded consent each time). */
export interface ReturnClaims {
  app: string;
  sub: string;
  name: string;
  kv: number;
  iat: number;
  exp: number;
}

export function signReturn(
  key: string,
  input: { app: string; sub: string; name: string; kv: number },
  nowMs = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  return sign(key, { ...claimsOf(input), kv: input.kv, ret: true, iat, exp: iat + RETURN_TTL_SECONDS });
}

export function verifyReturn(
  token: string | undefined,
  key: string,
  expect: { app: string; kv: number },
  nowMs = Date.now(),
): Verified<ReturnClaims> {
  const read = verify(token, key);
  if (!read.ok) return read;
  if (read.claims.ret !== true) return { ok: false, reason: 'malformed' };
  const base = checkBase(read.claims, expect, nowMs);
  if (base) return { ok: false, reason: base };
  return { ok: true, claims: read.claims as unknown as ReturnClaims };
}

export type Refusal = 'malformed' | 'algorithm' | 'signature' | 'expired' | 'other_app' | 'other_version';
export type Verified<T> = { ok: true; claims: T } | { ok: false; reason: Refusal };

/** The claims of a gate cookie signed with `key` for this app and key version, still valid. */
export function verifyGateCookie(
  token: string | undefined,
  key: string,
  expect: { app: string; kv: number },
  nowMs = Date.now(),
): Verified<GateClaims> {
  const read = verify(token, key);
  if (!read.ok) return read;
  const c = read.claims;
  if (typeof c.nv !== 'number' || !Number.isSafeInteger(c.nv)) return { ok: false, reason: 'malformed' };
  const base = checkBase(c, expect, nowMs);
  if (base) return { ok: false, reason: base };
  return { ok: true, claims: c as unknown as GateClaims };
}

export function verifyPending(
  token: string | undefined,
  key: string,
  expect: { app: string; kv: number },
  nowMs = Date.now(),
): Verified<PendingClaims> {
  const read = verify(token, key);
  if (!read.ok) return read;
  const c = read.claims;
  if (typeof c.csrf !== 'string') return { ok: false, reason: 'malformed' };
  if (c.link !== undefined && (typeof c.link !== 'string' || !LINK_SECRET.test(c.link))) {
    return { ok: false, reason: 'malformed' };
  }
  const base = checkBase(c, expect, nowMs);
  if (base) return { ok: false, reason: base };
  return { ok: true, claims: c as unknown as PendingClaims };
}

/** Constant-time comparison of a form's CSRF token with the pending state's. */
export function sameToken(a: unknown, b: string): boolean {
  if (typeof a !== 'string') return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function claimsOf(input: { app: string; sub: string; name: string }) {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(input.app)) throw new Error(`not an app name: '${input.app}'`);
  if (!validVisitor(input.sub)) throw new Error('a visitor is an e-mail address or invite:<id>');
  return { app: input.app, sub: input.sub, name: cleanName(input.name) || input.sub };
}

function checkBase(
  c: Record<string, unknown>,
  expect: { app: string; kv: number },
  nowMs: number,
): Refusal | undefined {
  if (typeof c.app !== 'string' || typeof c.sub !== 'string' || typeof c.name !== 'string')
    return 'malformed';
  if (typeof c.kv !== 'number' || typeof c.exp !== 'number' || typeof c.iat !== 'number') return 'malformed';
  if (!validVisitor(c.sub) || cleanName(c.name) !== c.name) return 'malformed';
  if (c.app !== expect.app) return 'other_app';
  if (c.kv !== expect.kv) return 'other_version';
  if (c.exp <= Math.floor(nowMs / 1000)) return 'expired';
  return undefined;
}

function sign(key: string, claims: object): string {
  // Plain UTF-8 JSON: the router reads the claims with HAProxy 2.6's json_query, which copies
  // UTF-8 as is but turns a \u escape above \u00ff into nothing (cleanName keeps out the
  // characters JSON would have to escape).
  const body = `${HEADER}.${b64(JSON.stringify(claims))}`;
  return `${body}.${mac(key, body)}`;
}

function verify(token: string | undefined, key: string): Verified<Record<string, unknown>> {
  if (typeof token !== 'string' || token.length > TOKEN_MAX) return { ok: false, reason: 'malformed' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) {
    return { ok: false, reason: 'malformed' };
  }
  const [header, payload, signature] = parts as [string, string, string];
  // Only the one header this module writes: no alg=none, no other algorithm, no kid or crit.
  if (header !== HEADER) return { ok: false, reason: 'algorithm' };
  const expected = Buffer.from(mac(key, `${header}.${payload}`));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
    return { ok: false, reason: 'signature' };
  }
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    return { ok: false, reason: 'malformed' };
  }
  return { ok: true, claims: claims as Record<string, unknown> };
}

function mac(key: string, data: string): string {
  return createHmac('sha256', Buffer.from(key, 'ascii')).update(data).digest('base64url');
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

/** Every value of the cookie `name` in a Cookie header, at most 10 (a sibling host under the
 * same domain may have added one of the same name, so there may be several). */
export function cookieValues(header: string | undefined, name: string): string[] {
  if (!header) return [];
  const out: string[] = [];
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    if (part.slice(0, at).trim() === name) out.push(part.slice(at + 1).trim());
    if (out.length >= 10) break;
  }
  return out;
}
