// The gate's pure parts: where `next` may lead, the cookie's signature and claims, and the
// notice page (escaped, self-contained, accessible).
import assert from 'node:assert/strict';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  cleanName,
  GATE_TTL_SECONDS,
  gateKey,
  signGateCookie,
  signPending,
  verifyGateCookie,
  verifyPending,
} from '../../src/gate/cookie.js';
import { safeNext } from '../../src/gate/next.js';
import { GATE_CSP, messagePage, type NoticeInput, noticePage } from '../../src/gate/pages.js';

describe('gate: next', () => {
  it('keeps a path on the same host, with its query', () => {
    for (const ok of ['/', '/a/b?c=d&e=%2F%2Fx', '/search?q=//x', '/a#frag', '/~me/.petri']) {
      assert.equal(safeNext(ok), ok);
    }
  });

  it('refuses anything that could leave the host or break a header', () => {
    for (const bad of [
      '//evil.example',
      '//evil.example/x',
      '///evil.example',
      'https://evil.example/',
      'http:evil.example',
      'javascript:alert(1)',
      '/\\evil.example',
      '\\\\evil.example',
      '/a\\b',
      '/\t/evil.example',
      '/%0d%0aSet-Cookie:x'.replace('%0d%0a', '\r\n'),
      '/a b',
      '/\u0000',
      '/caf\u00e9',
      'evil.example',
      '',
      '/.petri/consent',
      '/.PETRI/leave',
      '/./.petri/gate',
      `/${'a'.repeat(3000)}`,
      undefined,
      ['/a'],
      42,
    ]) {
      assert.equal(safeNext(bad), '/', `next=${JSON.stringify(bad)}`);
    }
  });
});

describe('gate: cookie', () => {
  const secret = randomBytes(32);
  const key = gateKey(secret, 'cookie', 7, 1);
  const claims = { app: 'shop', sub: 'ada@example.org', name: 'Ada Lovelace', nv: 2, kv: 1 };
  const now = Date.parse('2026-12-02T12:00:00Z');

  it('signs a cookie the same key verifies, with its claims and a 12 h expiry', () => {
    const token = signGateCookie(key, claims, now);
    const read = verifyGateCookie(token, key, { app: 'shop', kv: 1 }, now + 1000);
    assert.ok(read.ok);
    assert.deepEqual({ ...read.claims }, { ...claims, iat: now / 1000, exp: now / 1000 + GATE_TTL_SECONDS });
    // A standard HS256 JWS whose HMAC key is the key's text: what HAProxy's jwt_verify checks.
    const [h, p, s] = token.split('.') as [string, string, string];
    assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });
    assert.equal(createHmac('sha256', key).update(`${h}.${p}`).digest('base64url'), s);
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
  });

  it('refuses an expired cookie', () => {
    const token = signGateCookie(key, claims, now);
    const later = now + GATE_TTL_SECONDS * 1000;
    assert.deepEqual(verifyGateCookie(token, key, { app: 'shop', kv: 1 }, later), {
      ok: false,
      reason: 'expired',
    });
  });

  it("refuses another app's cookie and one of an older key version", () => {
    const other = signGateCookie(gateKey(secret, 'cookie', 8, 1), { ...claims, app: 'blog' }, now);
    assert.equal(verifyGateCookie(other, key, { app: 'shop', kv: 1 }, now).ok, false);
    // Same name, other app id (an app destroyed and made again): another key.
    const reborn = signGateCookie(gateKey(secret, 'cookie', 9, 1), claims, now);
    assert.deepEqual(verifyGateCookie(reborn, key, { app: 'shop', kv: 1 }, now), {
      ok: false,
      reason: 'signature',
    });
    const old = signGateCookie(key, claims, now);
    const rotated = gateKey(secret, 'cookie', 7, 2);
    assert.notEqual(rotated, key);
    assert.deepEqual(verifyGateCookie(old, rotated, { app: 'shop', kv: 2 }, now), {
      ok: false,
      reason: 'signature',
    });
    // Claims that disagree with the key's app or version are refused even when signed.
    assert.equal(verifyGateCookie(old, key, { app: 'blog', kv: 1 }, now).ok, false);
    assert.equal(verifyGateCookie(old, key, { app: 'shop', kv: 2 }, now).ok, false);
    // A pending token is not a gate cookie: another key.
    const pending = signPending(gateKey(secret, 'pending', 7, 1), { ...claims, csrf: 'a'.repeat(22) }, now);
    assert.equal(verifyGateCookie(pending, key, { app: 'shop', kv: 1 }, now).ok, false);
    assert.ok(verifyPending(pending, gateKey(secret, 'pending', 7, 1), { app: 'shop', kv: 1 }, now).ok);
  });

  it('refuses forged cookies: edited claims, alg none, another algorithm, another secret, junk', () => {
    const token = signGateCookie(key, claims, now);
    const [h, p, s] = token.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const edit = (change: Record<string, unknown>) =>
      Buffer.from(JSON.stringify({ ...payload, ...change })).toString('base64url');
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const forged = [
      `${h}.${edit({ sub: 'admin@example.org' })}.${s}`,
      `${h}.${edit({ exp: 9_999_999_999 })}.${s}`,
      `${b64({ alg: 'none', typ: 'JWT' })}.${p}.`,
      `${b64({ alg: 'none', typ: 'JWT' })}.${p}.${s}`,
      `${b64({ alg: 'HS512', typ: 'JWT' })}.${p}.${s}`,
      `${b64({ typ: 'JWT', alg: 'HS256' })}.${p}.${s}`,
      signGateCookie(gateKey(randomBytes(32), 'cookie', 7, 1), claims, now),
      `${h}.${p}`,
      `${h}.${p}.${s}.x`,
      `${h}.${p}.${s}=`,
      '',
      'x'.repeat(5000),
    ];
    for (const f of forged) {
      assert.equal(verifyGateCookie(f, key, { app: 'shop', kv: 1 }, now).ok, false, f.slice(0, 80));
    }
    assert.equal(verifyGateCookie(undefined, key, { app: 'shop', kv: 1 }, now).ok, false);
  });

  it('keeps header breaks out of the name and refuses a visitor that could break one', () => {
    assert.equal(cleanName('Ada\r\nX-Petri-User: root@example.org'), 'Ada X-Petri-User: root@example.org');
    assert.equal(cleanName(' Zo\u00eb\u2028 \u0085 B. '), 'Zo\u00eb B.');
    assert.equal(cleanName('x'.repeat(500)).length, 100);
    const token = signGateCookie(key, { ...claims, name: 'Zo\u00eb\r\nEvil: 1' }, now);
    const read = verifyGateCookie(token, key, { app: 'shop', kv: 1 }, now);
    assert.ok(read.ok);
    assert.equal(read.claims.name, 'Zo\u00eb Evil: 1');
    // The payload is UTF-8 JSON with no escape in it (HAProxy's json_query would misread
    // one): no control character, quote or backslash inside a value.
    const payload = Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8');
    assert.ok(payload.includes('"name":"Zo\u00eb Evil: 1"'), payload);
    assert.doesNotMatch(payload, /[\\\x00-\x1f]/);
    assert.equal(cleanName('Ada "the" \\Boss\\'), 'Ada the Boss');
    for (const sub of ['a@b.c\r\nX: y', 'a b@c.d', 'a@b.c;x', 'a@b.c,d@e.f', '', 'z'.repeat(300)]) {
      assert.throws(() => signGateCookie(key, { ...claims, sub }, now), /visitor/);
    }
    assert.throws(() => signGateCookie(key, { ...claims, app: 'Shop\n' }, now));
  });
});

describe('gate: pages', () => {
  const notice: NoticeInput = {
    app: 'shop',
    description: 'Try our <b>new</b> "checkout" & tell us',
    owner: { name: "Eve O'Neil <eve>", email: 'eve@example.org?subject=x' },
    team: 'growth<script>',
    expiresAt: '2027-03-01T00:00:00.000Z',
    dataClass: 'personal',
    privacyNote: 'We keep your <img src=x onerror=alert(1)> cart.\nNothing else.',
    retentionDays: 30,
    visitor: 'ada@example.org',
    noticeVersion: 3,
    csrf: 'tok"en<',
    next: '/cart?x="><script>',
  };
  const page = noticePage(notice);

  it('says what the issue asks: name, description, owner, team, experiment, expiry, data, retention, whom to ask', () => {
    for (const text of [
      'shop',
      'Try our &#60;b&#62;new&#60;/b&#62; &#34;checkout&#34; &#38; tell us',
      'Eve O&#39;Neil &#60;eve&#62; (eve@example.org?subject=x)',
      'team growth&#60;script&#62;',
      'Experiment',
      'Nobody promises it works or stays available',
      '2027-03-01',
      'Personal data',
      'We keep your &#60;img src=x onerror=alert(1)&#62; cart.\nNothing else.',
      '30 days',
      'mailto:eve%40example.org%3Fsubject%3Dx',
      'version 3',
      '/.petri/leave',
    ]) {
      assert.ok(page.includes(text), `missing: ${text}`);
    }
  });

  it('escapes everything it interpolates', () => {
    assert.doesNotMatch(page, /<script|<img|<b>|onerror=alert\(1\)>/);
    assert.ok(page.includes('value="tok&#34;en&#60;"'));
    assert.ok(page.includes('value="/cart?x=&#34;&#62;&#60;script&#62;"'));
    const message = messagePage('<x>', ['<y>'], { action: '/.petri/leave', csrf: '"', label: '<z>' });
    assert.doesNotMatch(message, /<x>|<y>|<z>|value="""/);
  });

  it('has the consent form: CSRF field, Continue and No thanks as buttons of one POST form', () => {
    assert.match(page, /<form method="post" action="\/\.petri\/consent"/);
    assert.match(page, /<input type="hidden" name="csrf"/);
    assert.match(page, /<button[^>]*type="submit" name="choice" value="continue">Continue<\/button>/);
    assert.match(page, /<button[^>]*type="submit" name="choice" value="decline">No thanks<\/button>/);
  });

  it('loads nothing from anywhere, and its CSP allows exactly its own style', () => {
    const plain = noticePage({ ...notice, privacyNote: 'We keep your cart.' });
    assert.doesNotMatch(plain, /<script|<link|<img|<iframe|src=|@import|url\(/i);
    assert.doesNotMatch(page.replace(/mailto:[^"]*/g, ''), /https?:/);
    const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? '';
    const hash = createHash('sha256').update(style).digest('base64');
    assert.ok(GATE_CSP.includes(`'sha256-${hash}'`), GATE_CSP);
    assert.match(GATE_CSP, /default-src 'none'/);
    assert.match(GATE_CSP, /frame-ancestors 'none'/);
  });

  it('reads on a phone and in a screen reader, with enough contrast', () => {
    assert.match(page, /<html lang="en">/);
    assert.match(page, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
    assert.match(page, /<main>/);
    assert.match(page, /<h1 id="title">/);
    assert.match(page, /:focus-visible\{outline:3px/);
    const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? '';
    const rule = (selector: string) =>
      new RegExp(`(^|\\n)${selector.replace('.', '\\.')}\\{([^}]*)\\}`).exec(style)?.[2] ?? '';
    const pair = (selector: string, background = '#fff') => {
      const r = rule(selector);
      const fg = /(?:^|;)color:(#[0-9a-f]{3,6})/.exec(r)?.[1];
      const bg = /background:(#[0-9a-f]{3,6})/.exec(r)?.[1] ?? background;
      assert.ok(fg, `${selector} has a color`);
      return contrast(fg, bg);
    };
    assert.ok(pair('body') >= 7, 'body text');
    assert.ok(pair('.go') >= 4.5, 'Continue');
    assert.ok(pair('.no') >= 7, 'No thanks');
    assert.ok(pair('.tag') >= 7, 'the Experiment tag');
    assert.ok(pair('small') >= 7, 'the footer');
    assert.ok(pair('a') >= 4.5, 'links');
  });

  it('says so when nothing is kept or the owner gave no retention', () => {
    const none = noticePage({
      ...notice,
      dataClass: 'none',
      privacyNote: null,
      retentionDays: null,
      expiresAt: null,
    });
    assert.match(none, /keeps no data/);
    assert.match(none, /Nothing is kept/);
    assert.doesNotMatch(none, /Why, and what for/);
    assert.match(none, /It may end at any time\./);
  });
});

function contrast(a: string, b: string): number {
  const lum = (hex: string) => {
    const h = hex.length === 4 ? [...hex.slice(1)].map((c) => c + c).join('') : hex.slice(1);
    const [r, g, bl] = [0, 2, 4].map((i) => {
      const c = Number.parseInt(h.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    }) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p) as [number, number];
  return (x + 0.05) / (y + 0.05);
}
