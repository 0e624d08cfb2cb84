// Attack: an unsubscribe is stored as the lowercased address exactly, and the relay compares
// recipients with it exactly. A public app that wants to keep mailing someone who
// unsubscribed sends to the same mailbox spelled another way: with a plus tag
// (bob+x@example.org, delivered to bob by Postfix's recipient_delimiter, Gmail, Fastmail ...).
// (A trailing dot, bob@example.org., is refused by smtp-server's syntax check: not an attack.)
// The recipient's "stop all mail from that app to me" does not stop it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { unsubscribe } from '../../src/domain/mail.js';
import { RawSmtp, type Relay, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['pushy']);
  await unsubscribe(r.db, r.apps.pushy!.id, 'bob@example.org');
});
after(async () => {
  await r?.stop();
});

test('the address that unsubscribed is refused (the control)', async () => {
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  await c.login(r.apps.pushy!);
  await c.cmd('MAIL FROM:<pushy@petri.test>');
  assert.match(await c.cmd('RCPT TO:<BOB@Example.ORG>'), /^550 .*unsubscribed/);
  c.close();
});

for (const variant of ['bob+again@example.org', 'bob+x+y@example.org']) {
  test(`mail to ${variant} is refused once bob@example.org unsubscribed`, async () => {
    const c = await RawSmtp.open(r.mail.relay.smtpPort);
    await c.login(r.apps.pushy!);
    await c.cmd('MAIL FROM:<pushy@petri.test>');
    const reply = await c.cmd(`RCPT TO:<${variant}>`);
    c.close();
    assert.doesNotMatch(
      reply,
      /^250/,
      `${variant} was accepted although bob@example.org unsubscribed from this app: compare the address without its +tag`,
    );
  });
}
