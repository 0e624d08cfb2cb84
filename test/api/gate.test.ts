// The audience gate's pages through the API (issue 15), as a visitor's browser meets them
// under the app's own host: an invite link, the notice, consent (CSRF, cross-site and script
// posts refused, `next` never leaving the host), the gate cookie, leaving, and the key
// version that ends every cookie at once.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { gateAppOf } from '../../src/domain/gate.js';
import {
  GATE_COOKIE,
  gateKey,
  PENDING_COOKIE,
  RETURN_COOKIE,
  verifyGateCookie,
} from '../../src/gate/cookie.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi, testSecrets } from './test-api.js';

const HOST = 'shop.petri.test:8080';
/** What a browser sends with a person's click on the notice's button. */
const CLICK = { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate', 'sec-fetch-user': '?1' };

describe('the gate under an app host', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;

  const call = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${token}` } });
  const visit = (url: string, cookie = '', host = HOST) =>
    api.inject({ method: 'GET', url, headers: { host, ...(cookie ? { cookie } : {}) } });
  const post = (
    url: string,
    form: Record<string, string>,
    cookie: string,
    headers: Record<string, string> = CLICK,
  ) =>
    api.inject({
      method: 'POST',
      url,
      headers: { host: HOST, cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
      payload: new URLSearchParams(form).toString(),
    });
  /** name=value of the cookies an answer sets (empty value: cleared). */
  const setCookies = (res: LightMyRequestResponse) => {
    const raw = res.headers['set-cookie'];
    const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    return new Map(list.map((c) => [c.split('=')[0] ?? '', c]));
  };
  const cookieValue = (setCookie: string | undefined) =>
    setCookie?.split(';')[0]?.split('=').slice(1).join('=') ?? '';
  const csrfOf = (html: string) => /name="csrf" value="([^"]+)"/.exec(html)?.[1] ?? '';
  const app = () => db.selectFrom('apps').selectAll().where('name', '=', 'shop').executeTakeFirstOrThrow();
  const newLink = async (uses = 1) => {
    const res = await call('POST', '/v1/apps/shop/audience/links', { uses });
    assert.equal(res.statusCode, 201, res.body);
    const url = new URL(res.json().url as string);
    assert.equal(url.host, HOST);
    return { path: url.pathname, id: res.json().link.id as number };
  };
  /** Join with a new link: the pending cookie, and the notice's CSRF token. */
  const joined = async (next = '/cart') => {
    const link = await newLink();
    const join = await visit(`${link.path}?next=${encodeURIComponent(next)}`);
    assert.equal(join.statusCode, 303, join.body);
    const pending = `${PENDING_COOKIE}=${cookieValue(setCookies(join).get(PENDING_COOKIE))}`;
    const notice = await visit(join.headers.location as string, pending);
    assert.equal(notice.statusCode, 200, notice.body);
    return { link, pending, csrf: csrfOf(notice.body), notice };
  };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-gate-'));
    db = await openStore(new DataPaths(dir).store);
    const ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    token = await issueToken(db, ana.id, 'test');
    api = await buildTestApi(dir, db, { domain: 'petri.test', httpPort: 8080 });
    assert.equal((await call('POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    const created = await call('POST', '/v1/apps', {
      name: 'shop',
      team: 'labs',
      description: 'A <new> checkout',
      data: 'personal',
      privacy: 'Your cart, to test the checkout.',
      retention: '30d',
    });
    assert.equal(created.statusCode, 201, created.body);
    const set = await call('PUT', '/v1/apps/shop/audience', { audience: 'invite' });
    assert.equal(set.statusCode, 200, set.body);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an invite link leads to the notice, which says what the experiment is', async () => {
    const link = await newLink();
    const join = await visit(`${link.path}?next=/cart`);
    assert.equal(join.statusCode, 303, join.body);
    assert.equal(join.headers.location, '/.petri/gate?next=%2Fcart');
    assert.equal(join.headers['referrer-policy'], 'no-referrer');
    const pending = setCookies(join).get(PENDING_COOKIE) ?? '';
    assert.match(pending, /; Path=\/\.petri; Max-Age=1800; HttpOnly; SameSite=Lax$/);
    const notice = await visit('/.petri/gate?next=/cart', `${PENDING_COOKIE}=${cookieValue(pending)}`);
    assert.equal(notice.statusCode, 200);
    assert.match(String(notice.headers['content-security-policy']), /default-src 'none'/);
    for (const text of [
      'A &#60;new&#62; checkout',
      'ana (ana@example.org), team labs',
      'Personal data',
      '30 days',
    ]) {
      assert.ok(notice.body.includes(text), text);
    }
    const unknown = await visit('/.petri/join/not-a-secret');
    assert.equal(unknown.statusCode, 404);
  });

  test("opening a link takes none of its uses (a mail scanner's visit); consenting takes one, once", async () => {
    const link = await newLink(1);
    const usesLeft = async () =>
      (
        await db
          .selectFrom('audience_links')
          .select('uses_left')
          .where('id', '=', link.id)
          .executeTakeFirstOrThrow()
      ).uses_left;
    const open = async () => {
      const join = await visit(link.path);
      assert.equal(join.statusCode, 303, join.body);
      const pending = `${PENDING_COOKIE}=${cookieValue(setCookies(join).get(PENDING_COOKIE))}`;
      const notice = await visit('/.petri/gate', pending);
      return { pending, csrf: csrfOf(notice.body) };
    };
    const scanner = await open();
    const first = await open();
    const second = await open();
    assert.equal(await usesLeft(), 1);
    // No thanks takes no use either.
    assert.equal(
      (await post('/.petri/consent', { choice: 'decline', csrf: scanner.csrf }, scanner.pending)).statusCode,
      200,
    );
    assert.equal(await usesLeft(), 1);
    const yes = await post('/.petri/consent', { choice: 'continue', csrf: first.csrf }, first.pending);
    assert.equal(yes.statusCode, 303, yes.body);
    assert.equal(await usesLeft(), 0);
    // The last use is gone: the second person is refused, with why, and nothing is recorded.
    const late = await post('/.petri/consent', { choice: 'continue', csrf: second.csrf }, second.pending);
    assert.equal(late.statusCode, 403);
    assert.match(late.body, /used as many times as it may/);
    assert.equal(setCookies(late).has(GATE_COOKIE), false);
    const again = await visit(link.path);
    assert.equal(again.statusCode, 403);
    assert.match(again.body, /used as many times as it may/);
  });

  test('without an invite or sign-in the notice is not shown: the visitor goes to sign in', async () => {
    const res = await visit('/.petri/gate?next=/cart');
    assert.equal(res.statusCode, 303);
    assert.equal(res.headers.location, 'http://petri.localhost:8080/gate/sso?app=shop&next=%2Fcart');
    assert.doesNotMatch(res.body, /name="csrf"/);
  });

  test('consent without, with a stale or with a foreign CSRF token records nothing', async () => {
    const { pending, csrf, link } = await joined();
    const other = await joined();
    for (const form of <Record<string, string>[]>[
      { choice: 'continue' },
      { choice: 'continue', csrf: 'x'.repeat(32) },
      { choice: 'continue', csrf: other.csrf },
    ]) {
      const res = await post('/.petri/consent', form, pending);
      assert.equal(res.statusCode, 403, JSON.stringify(form));
      assert.match(res.body, /out of date/);
      assert.equal(setCookies(res).has(GATE_COOKIE), false);
    }
    // No pending cookie at all (a post from elsewhere, or after it expired).
    assert.equal((await post('/.petri/consent', { choice: 'continue', csrf }, '')).statusCode, 403);
    const consents = await db
      .selectFrom('audience_consents')
      .selectAll()
      .where('visitor', 'in', [`invite:${link.id}`, `invite:${other.link.id}`])
      .execute();
    assert.deepEqual(consents, []);
  });

  test('a post from another site, or made by a script instead of a click, is refused', async () => {
    const { pending, csrf } = await joined();
    for (const headers of <Record<string, string>[]>[
      { ...CLICK, 'sec-fetch-site': 'cross-site' },
      { ...CLICK, 'sec-fetch-site': 'same-site' },
      { origin: 'http://evil.example' },
      { origin: 'http://other.petri.test:8080' },
      // The app's own scripts run on this host: fetch() and a form a script submits.
      { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' },
      { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'navigate' },
    ]) {
      const res = await post('/.petri/consent', { choice: 'continue', csrf }, pending, headers);
      assert.equal(res.statusCode, 403, JSON.stringify(headers));
      assert.equal(setCookies(res).has(GATE_COOKIE), false);
    }
  });

  test('No thanks records nothing and sets no cookie', async () => {
    const { pending, csrf, link } = await joined();
    const res = await post('/.petri/consent', { choice: 'decline', csrf }, pending);
    assert.equal(res.statusCode, 200);
    assert.match(res.body, /Nothing was recorded/);
    assert.equal(setCookies(res).has(GATE_COOKIE), false);
    const row = await db
      .selectFrom('audience_consents')
      .selectAll()
      .where('visitor', '=', `invite:${link.id}`)
      .executeTakeFirst();
    assert.equal(row, undefined);
  });

  test('Continue records the consent, sets a 12 h cookie of this app, and never leaves the host', async () => {
    const { pending, csrf, link } = await joined('/cart');
    const res = await post(
      '/.petri/consent',
      { choice: 'continue', csrf, next: '//evil.example/x' },
      pending,
    );
    assert.equal(res.statusCode, 303, res.body);
    assert.equal(res.headers.location, '/');
    const set = setCookies(res);
    assert.match(set.get(GATE_COOKIE) ?? '', /; Path=\/; Max-Age=43200; HttpOnly; SameSite=Lax$/);
    assert.match(set.get(PENDING_COOKIE) ?? '', /=; Path=\/\.petri; Max-Age=0/);
    const shop = await app();
    const key = gateKey(testSecrets().derive('audience gate'), 'cookie', shop.id, shop.audience_key_version);
    const read = verifyGateCookie(cookieValue(set.get(GATE_COOKIE)), key, {
      app: 'shop',
      kv: shop.audience_key_version,
    });
    assert.ok(read.ok);
    assert.equal(read.claims.sub, `invite:${link.id}`);
    assert.equal(read.claims.nv, shop.notice_version);
    const row = await db
      .selectFrom('audience_consents')
      .selectAll()
      .where('visitor', '=', `invite:${link.id}`)
      .executeTakeFirstOrThrow();
    assert.equal(row.notice_version, shop.notice_version);
    assert.equal(row.withdrawn_at, null);
    // The pending state is spent with its answer: the same form again is refused.
    const cookie = `${GATE_COOKIE}=${cookieValue(set.get(GATE_COOKIE))}`;
    // Through: the gate sends the visitor straight on.
    const back = await visit('/.petri/gate?next=/cart', cookie);
    assert.equal(back.statusCode, 303);
    assert.equal(back.headers.location, '/cart');
    for (const next of ['https://evil.example/', '/\\evil.example', '//evil.example']) {
      const r = await visit(`/.petri/gate?next=${encodeURIComponent(next)}`, cookie);
      assert.equal(r.headers.location, '/', next);
    }
  });

  test('leaving withdraws the consent (CSRF-checked) and clears the cookie; a new key version ends old cookies', async () => {
    const { pending, csrf, link } = await joined();
    const consent = await post('/.petri/consent', { choice: 'continue', csrf }, pending);
    const cookie = `${GATE_COOKIE}=${cookieValue(setCookies(consent).get(GATE_COOKIE))}`;
    const page = await visit('/.petri/leave', cookie);
    assert.equal(page.statusCode, 200);
    const leaveCsrf = csrfOf(page.body);
    assert.ok(leaveCsrf);
    assert.equal((await post('/.petri/leave', { csrf: 'nope' }, cookie)).statusCode, 403);
    assert.equal(
      (await post('/.petri/leave', { csrf: leaveCsrf }, cookie, { ...CLICK, 'sec-fetch-site': 'cross-site' }))
        .statusCode,
      403,
    );
    const left = await post('/.petri/leave', { csrf: leaveCsrf }, cookie);
    assert.equal(left.statusCode, 200, left.body);
    assert.match(setCookies(left).get(GATE_COOKIE) ?? '', /=; Path=\/; Max-Age=0/);
    const row = await db
      .selectFrom('audience_consents')
      .selectAll()
      .where('visitor', '=', `invite:${link.id}`)
      .executeTakeFirstOrThrow();
    assert.notEqual(row.withdrawn_at, null);

    // Another visitor's cookie works until the link is revoked: the key version moves on.
    const second = await joined();
    const through = await post('/.petri/consent', { choice: 'continue', csrf: second.csrf }, second.pending);
    const cookie2 = `${GATE_COOKIE}=${cookieValue(setCookies(through).get(GATE_COOKIE))}`;
    assert.equal((await visit('/.petri/gate', cookie2)).statusCode, 303);
    const revoked = await call('DELETE', `/v1/apps/shop/audience/links/${second.link.id}`);
    assert.equal(revoked.statusCode, 200, revoked.body);
    assert.equal((await visit('/.petri/gate', cookie2)).statusCode, 303);
    assert.match(String((await visit('/.petri/gate', cookie2)).headers.location), /\/gate\/sso\?app=shop/);
    assert.equal((await visit('/.petri/leave', cookie2)).body.includes('no pass'), true);
  });

  test("a link's visitor comes back after their gate cookie ran out without taking another use, until the link is revoked", async () => {
    const { pending, csrf, link } = await joined('/cart');
    const consent = await post('/.petri/consent', { choice: 'continue', csrf }, pending);
    assert.equal(consent.statusCode, 303, consent.body);
    const line = setCookies(consent).get(RETURN_COOKIE) ?? '';
    assert.match(line, /; Path=\/\.petri; Max-Age=2592000; HttpOnly; SameSite=Lax$/);
    const back = `${RETURN_COOKIE}=${cookieValue(line)}`;
    const usesLeft = async () =>
      (
        await db
          .selectFrom('audience_links')
          .select('uses_left')
          .where('id', '=', link.id)
          .executeTakeFirstOrThrow()
      ).uses_left;
    assert.equal(await usesLeft(), 0);
    // 12 hours later the gate cookie is gone; the way back is not.
    const again = await visit('/.petri/gate?next=/orders', back);
    assert.equal(again.statusCode, 303, again.body);
    assert.equal(again.headers.location, '/orders');
    const shop = await app();
    const key = gateKey(testSecrets().derive('audience gate'), 'cookie', shop.id, shop.audience_key_version);
    const read = verifyGateCookie(cookieValue(setCookies(again).get(GATE_COOKIE)), key, {
      app: 'shop',
      kv: shop.audience_key_version,
    });
    assert.ok(read.ok);
    assert.equal(read.claims.sub, `invite:${link.id}`);
    // Revoked: the way back ends with every cookie the link gave.
    assert.equal((await call('DELETE', `/v1/apps/shop/audience/links/${link.id}`)).statusCode, 200);
    const after = await visit('/.petri/gate?next=/orders', back);
    assert.equal(after.statusCode, 303);
    assert.match(String(after.headers.location), /\/gate\/sso\?app=shop/);
  });

  test('only app hosts have a gate; a public app has nothing to consent to', async () => {
    assert.equal((await visit('/.petri/gate', '', 'petri.test:8080')).statusCode, 404);
    assert.equal((await visit('/.petri/gate', '', 'nope.petri.test')).statusCode, 404);
    assert.equal((await visit('/.petri/gate', '', 'evil.example')).statusCode, 404);
    // The API's host is never an app's, even under the domain and with an app of that name.
    assert.ok(await gateAppOf(db, { domain: 'petri.test', apiHost: 'petri.test' }, 'shop.petri.test'));
    assert.equal(
      await gateAppOf(db, { domain: 'petri.test', apiHost: 'shop.petri.test' }, 'SHOP.petri.test:80'),
      undefined,
    );
    assert.equal((await call('PUT', '/v1/apps/shop/audience', { audience: 'staff' })).statusCode, 200);
    const staff = await visit('/.petri/gate');
    assert.equal(staff.statusCode, 303);
    assert.equal(staff.headers.location, 'http://petri.localhost:8080/gate/sso?app=shop&next=%2F');
    const created = await call('POST', '/v1/apps', { name: 'open', team: 'labs' });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await call('PUT', '/v1/apps/open/audience', { audience: 'public' })).statusCode, 200);
    const open = await visit('/.petri/gate?next=/x', '', 'open.petri.test');
    assert.equal(open.statusCode, 303);
    assert.equal(open.headers.location, '/x');
  });
});
