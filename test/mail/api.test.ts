// The mail relay's API over a real store: what `petri mail` reads, rotate (the old password
// no longer matches), an admin's limits (a member may not), the report as CSV, the DNS
// records, a captured message's text, and the unsubscribe page (GET never unsubscribes,
// a forged token is refused, POST does it and the relay then refuses that recipient).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createApp } from '../../src/domain/apps.js';
import { isUnsubscribed, reserveMessage } from '../../src/domain/mail.js';
import { mailPassword, unsubscribeUrl } from '../../src/domain/mail-credentials.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App } from '../../src/store/schema.js';
import { addUsers, buildTestApi, testSecrets } from '../api/test-api.js';

type Method = 'GET' | 'POST' | 'PATCH';

describe('mail API', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let app: App;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-mail-api-'));
    db = await openStore(path.join(dir, 'petri.db'));
    api = await buildTestApi(dir, db);
    await addUsers(
      db,
      [
        ['root', 'admin'],
        ['mia', 'member'],
        ['auditor', 'auditor'],
      ],
      tokens,
      ids,
    );
    const mia = await db.selectFrom('users').selectAll().where('id', '=', ids.mia!).executeTakeFirstOrThrow();
    app = await createApp(
      db,
      mia,
      'letters',
      { memoryMiB: 64, cpus: 1, pids: 32 },
      undefined,
      Infinity,
      Infinity,
      {},
      {
        audience: 'public',
      },
    );
    await reserveMessage(
      db,
      app,
      { perHour: 50, perDay: 200, recipients: 10, maxBytes: 1 << 20 },
      {
        id: 'm1',
        recipients: ['bob@example.org'],
        subject: 'Hello Bob',
        raw: Buffer.from('From: letters@petri.localhost\r\nSubject: Hello Bob\r\n\r\ncaptured text\r\n'),
        capture: true,
      },
    );
  });

  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('petri mail: counts, limits and the last messages; show gives a captured text', async () => {
    const res = await call('mia', 'GET', '/v1/apps/letters/mail');
    assert.equal(res.statusCode, 200);
    const body = res.json();
    assert.equal(body.address, 'letters@petri.localhost');
    assert.equal(body.hour.captured, 1);
    assert.deepEqual(body.limits, {
      perHour: 50,
      perDay: 200,
      recipients: 10,
      maxBytes: 1048576,
      restrictToAudience: true,
    });
    assert.equal(body.last[0].subject, 'Hello Bob');
    const show = await call('mia', 'GET', '/v1/apps/letters/mail/m1');
    assert.equal(show.statusCode, 200);
    assert.match(show.json().raw, /captured text/);
    assert.equal((await call('mia', 'GET', '/v1/apps/letters/mail/nope')).statusCode, 404);
  });

  test('rotate: new credentials, the old password no longer matches', async () => {
    const before = mailPassword(testSecrets(), app);
    const res = await call('mia', 'POST', '/v1/apps/letters/mail/rotate');
    assert.equal(res.statusCode, 200);
    assert.match(res.json().note, /petri restart --app letters/);
    const fresh = await db.selectFrom('apps').selectAll().where('id', '=', app.id).executeTakeFirstOrThrow();
    assert.equal(fresh.mail_key_version, 2);
    assert.notEqual(mailPassword(testSecrets(), fresh), before);
  });

  test('limits are an admin’s: set, back to default, refused for a member', async () => {
    assert.equal(
      (await call('mia', 'PATCH', '/v1/apps/letters/mail/limits', { perHour: 500 })).statusCode,
      403,
    );
    const set = await call('root', 'PATCH', '/v1/apps/letters/mail/limits', { perHour: 5, recipients: 2 });
    assert.equal(set.statusCode, 200, set.body);
    assert.equal(set.json().limits.perHour, 5);
    assert.equal(set.json().limits.recipients, 2);
    const back = await call('root', 'PATCH', '/v1/apps/letters/mail/limits', { perHour: null });
    assert.equal(back.json().limits.perHour, 50);
    assert.equal(back.json().limits.recipients, 2);
    const bad = await call('root', 'PATCH', '/v1/apps/letters/mail/limits', { perHour: 0 });
    assert.equal(bad.statusCode, 400);
  });

  test('the report (CSV too) and the DNS records are for admins and auditors', async () => {
    const csv = await call('auditor', 'GET', '/v1/mail/report?format=csv');
    assert.equal(csv.statusCode, 200);
    assert.equal(csv.body, 'app,sent,queued,deferred,bounced,refused,captured\nletters,0,0,0,0,0,1\n');
    assert.equal((await call('mia', 'GET', '/v1/mail/report')).statusCode, 403);
    const dns = await call('root', 'GET', '/v1/mail/dns');
    assert.equal(dns.statusCode, 200);
    const [dkim] = dns.json().records;
    assert.equal(dkim.name, 'petri._domainkey.petri.localhost');
    assert.match(dkim.value, /^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]{300,}$/);
  });

  test('unsubscribe: GET asks, a forged token is refused, POST stops the mail', async () => {
    const link = new URL(
      unsubscribeUrl(
        'http://petri.localhost',
        testSecrets().derive('mail unsubscribe'),
        app.id,
        'Bob@Example.org',
      ),
    );
    const url = `${link.pathname}${link.search}`;
    const ask = await api.inject({ method: 'GET', url });
    assert.equal(ask.statusCode, 200);
    assert.match(ask.body, /bob@example\.org/);
    assert.equal(await isUnsubscribed(db, app.id, 'bob@example.org'), false);
    const forged = await api.inject({
      method: 'POST',
      url: url.replace(/t=[^&]+/, 't=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'),
    });
    assert.equal(forged.statusCode, 400);
    const other = await api.inject({ method: 'POST', url: url.replace(/a=\d+/, 'a=999') });
    assert.equal(other.statusCode, 400);
    const done = await api.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'List-Unsubscribe=One-Click',
    });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal(await isUnsubscribed(db, app.id, 'bob@example.org'), true);
  });
});
