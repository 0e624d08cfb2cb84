// Attack: the relay's brute-force lockout counts failed logins per source address, and then
// refuses every AUTH from that address, right credentials or not. Sandboxes that share an
// address (network.enabled false: every app reaches the relay from 127.0.0.1; several
// instances behind one address) share the lockout: ten wrong passwords from one tenant
// stop every other app's mail for ten minutes (sign-up mails, password resets).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawSmtp, type Relay, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['mallory', 'shop']);
});
after(async () => {
  await r?.stop();
});

test("one app's failed logins do not lock another app out of the relay", async () => {
  for (let i = 0; i < 11; i++) {
    const c = await RawSmtp.open(r.mail.relay.smtpPort);
    await c.cmd('EHLO mallory');
    await c.cmd(`AUTH PLAIN ${Buffer.from(`\0shop\0guess${i}`).toString('base64')}`);
    c.close();
  }
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  const login = await c.login(r.apps.shop!).then(
    () => 'ok',
    (err: Error) => err.message,
  );
  c.close();
  assert.equal(
    login,
    'ok',
    `shop, with its right password, could not log in after another tenant's wrong guesses from the same address: ${login}. Count failures per (address, user) and let a right password through`,
  );
});
