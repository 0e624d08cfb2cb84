// Attack: every refused transaction is a row in mail_messages (recordRefusal, a synchronous=
// FULL transaction), and a new MAIL FROM starts a new transaction. An app whose mail is
// paused (or over its hour's limit) can send MAIL FROM in a loop on one connection: each
// one is refused, and each refusal is written to the store, without any bound. A tenant can
// grow the store and hold its single writer with fsyncs as long as it likes; the pause that
// is meant to stop a runaway loop stops none of its cost.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawSmtp, type Relay, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['looper']);
});
after(async () => {
  await r?.stop();
});

const rows = async (appId: number) =>
  Number(
    (
      await r.db
        .selectFrom('mail_messages')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('app_id', '=', appId)
        .executeTakeFirstOrThrow()
    ).n,
  );

test("a paused app's refused MAIL FROMs do not each add a row to the store", async () => {
  const app = r.apps.looper!;
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  await c.login(app);
  // Ten refusals in a row (a forged From, say, through bad addresses here) pause the app.
  for (let i = 0; i < 10; i++) {
    assert.match(await c.cmd('MAIL FROM:<looper@petri.test>'), /^250/);
    assert.match(await c.cmd(`RCPT TO:<a,b${i}@example.org>`), /^5/);
    assert.match(await c.cmd('RSET'), /^250/);
  }
  const paused = await c.cmd('MAIL FROM:<looper@petri.test>');
  assert.match(paused, /^451.*paused/, 'the app is paused');
  const before = await rows(app.id);
  const attempts = 500;
  // The relay may close a connection refused too often (421); the loop then reconnects.
  let conn = c;
  let closed = 0;
  for (let i = 0; i < attempts; i++) {
    const reply = await conn.cmd('MAIL FROM:<looper@petri.test>');
    if (reply.startsWith('421')) {
      closed++;
      conn.close();
      conn = await RawSmtp.open(r.mail.relay.smtpPort);
      await conn.login(app);
      continue;
    }
    assert.match(reply, /^451/);
  }
  conn.close();
  assert.ok(closed > 0, 'a connection refused again and again is closed (421)');
  const added = (await rows(app.id)) - before;
  assert.ok(
    added <= 20,
    `${attempts} refused MAIL FROMs of a paused app added ${added} rows to mail_messages: refusals while paused (and repeated ones) should be counted, not stored one by one`,
  );
});
