// `petri audience invite EMAIL --send` (issue 15's "one-time e-mailed link"): each invitee is
// mailed their personal single-use link by Petri's mail relay (here in capture mode: the
// message is kept in the relay's queue, as without a smarthost). Refused, with what to do
// instead, when the relay is off.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { MailNotices } from '../../src/mail/notices.js';
import { openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from './test-api.js';

describe('audience invitations by mail', () => {
  let dir: string;
  let db: Store;
  let withMail: FastifyInstance;
  let withoutMail: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const post = (api: FastifyInstance, url: string, payload: object) =>
    api.inject({ method: 'POST', url, payload, headers: { authorization: `Bearer ${tokens.ana}` } });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-audience-mail-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(db, [['ana', 'member']], tokens, ids);
    const config = loadConfig({ dataDir: dir });
    const notices = new MailNotices({ db, config: config.mail, logger: createLogger('silent') });
    withMail = await buildTestApi(dir, db, {}, { mailNotices: notices });
    withoutMail = await buildTestApi(dir, db);
    const created = await post(withMail, '/v1/apps', { name: 'club', description: 'a reading club' });
    assert.equal(created.statusCode, 201, created.body);
  });
  after(async () => {
    await withMail?.close();
    await withoutMail?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('each invitee is mailed their own link, which names the app and who invited them', async () => {
    const res = await post(withMail, '/v1/apps/club/audience/invitees', {
      emails: ['Zoe@Example.net', 'max@example.net'],
      send: true,
    });
    assert.equal(res.statusCode, 200, res.body);
    const links = res.json().links as { email: string; url: string }[];
    assert.deepEqual(links.map((l) => l.email).sort(), ['max@example.net', 'zoe@example.net']);
    const mailed = await db
      .selectFrom('mail_messages')
      .select(['recipients', 'subject', 'raw'])
      .orderBy('created_at')
      .execute();
    assert.equal(mailed.length, 2);
    for (const link of links) {
      const message = mailed.find((m) => JSON.parse(m.recipients).includes(link.email));
      assert.ok(message, `no mail to ${link.email}`);
      assert.equal(message.subject, 'You are invited to try club');
      const raw = Buffer.from(message.raw as Uint8Array)
        .toString('utf8')
        .replace(/=\r?\n/g, '');
      assert.ok(raw.includes(link.url), "the mail carries that person's own link");
      assert.match(raw, /ana@example\.org invites you to try the experiment club: a reading club/);
    }
  });

  test('with the relay off, sending is refused and nobody is put on the list', async () => {
    const res = await post(withoutMail, '/v1/apps/club/audience/invitees', {
      emails: ['eve@example.net'],
      send: true,
    });
    assert.equal(res.statusCode, 409);
    assert.match(res.json().error.message, /mail relay is off .* --link/);
    const list = await withoutMail.inject({
      method: 'GET',
      url: '/v1/apps/club/audience',
      headers: { authorization: `Bearer ${tokens.ana}` },
    });
    assert.ok(!JSON.stringify(list.json()).includes('eve@example.net'));
  });
});
