// Attack: `petri mail rotate` promises "the old ones stop working at once", but the relay
// checks the password only at AUTH. A connection that logged in with leaked credentials
// before the rotation keeps sending on the same session (NOOP keeps it from timing out):
// accept() re-reads the app row for its stage and audience, not its mail key version.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { rotateMailKey } from '../../src/domain/mail.js';
import { RawSmtp, type Relay, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['leaky']);
});
after(async () => {
  await r?.stop();
});

test('a session logged in with the old credentials cannot send after petri mail rotate', async () => {
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  await c.login(r.apps.leaky!);
  await rotateMailKey(r.db, { name: 'ana', via: 'cli' } as never, r.apps.leaky!);
  await c.cmd('NOOP');
  // The relay may end the session (421, closing the connection) at any step from here on.
  const step = (line: string) => c.cmd(line).catch((err: Error) => `closed: ${err.message}`);
  const from = await step('MAIL FROM:<leaky@petri.test>');
  assert.match(from, /^421 .*rotate/, 'MAIL FROM ends the session of a rotated key, saying why');
  await step('RCPT TO:<bob@example.org>');
  await step('DATA');
  const reply = await step('Subject: still here\r\n\r\nsent with the rotated-away password\r\n.');
  c.close();
  assert.doesNotMatch(
    reply,
    /^250/,
    `the old session's message was queued after the rotation (${reply}): check the app's mail key version in accept() (and at MAIL FROM), and drop sessions of a rotated key`,
  );
});
