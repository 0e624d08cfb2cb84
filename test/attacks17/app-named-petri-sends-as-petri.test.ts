// Attack: an app's address is NAME@<mail domain>, and any valid app name can be taken,
// including 'petri': the address Petri's own notices come from (notices.ts: "Petri
// <petri@domain>", expiry warnings, alerts, pauses). A tenant who creates an app called
// petri (or postmaster, abuse) sends DKIM-signed mail that is byte for byte Petri's own
// sender, e.g. a fake "your experiment expires: sign in here" to every user of the platform
// (staff audience: every person who may sign in).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mailEnv } from '../../src/domain/mail-credentials.js';
import { RawSmtp, type Relay, secrets, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['petri', 'postmaster']);
});
after(async () => {
  await r?.stop();
});

for (const name of ['petri', 'postmaster']) {
  test(`an app named ${name} cannot send as ${name}@<mail domain>`, async () => {
    const c = await RawSmtp.open(r.mail.relay.smtpPort);
    await c.login(r.apps[name]!);
    assert.match(await c.cmd(`MAIL FROM:<${name}@petri.test>`), /^250/);
    assert.match(await c.cmd('RCPT TO:<bob@example.org>'), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    const reply = await c.cmd(
      [
        `From: Petri <${name}@petri.test>`,
        'To: bob@example.org',
        'Subject: shop expires in 1 day',
        '',
        'The experiment shop expires soon. Sign in at http://evil.example/ to keep it.',
        '.',
      ].join('\r\n'),
    );
    c.close();
    assert.doesNotMatch(
      reply,
      /^250/,
      `the relay queued mail from ${name}@petri.test, the address of Petri's own notices / the domain's role mailbox: app names like petri, postmaster, abuse should be reserved (or apps get their own subdomain)`,
    );
  });
}

test('an app named petri still sends, as petri.app@<mail domain>: the MAIL_FROM it is given', async () => {
  const env = mailEnv(r.config, secrets, r.apps.petri!);
  assert.equal(env.MAIL_FROM, 'petri.app@petri.test');
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  await c.login(r.apps.petri!);
  await c.cmd(`MAIL FROM:<${env.MAIL_FROM}>`);
  await c.cmd('RCPT TO:<bob@example.org>');
  await c.cmd('DATA');
  const reply = await c.cmd(`From: Petri app <${env.MAIL_FROM}>\r\nSubject: hi\r\n\r\nhello\r\n.`);
  c.close();
  assert.match(reply, /^250/);
});
