// Attack: the From check reads the header with nodemailer's lenient addressparser, which
// takes `ceo@bank.com <app@petri.test>` as the name "ceo@bank.com" and the address
// app@petri.test, so it passes. A strict RFC 5322 parser reads the same header otherwise:
// Python's email package (policy.default, used by Django, Mailman, many filters and
// archivers) says its address is ceo@bank.com. Mail programs and filters of that kind show
// or judge the message as from ceo@bank.com while Petri signs it with the organisation's
// DKIM key ("Composition Kills", USENIX Security 2020). The issue asks that a From outside
// the mail domain be refused: a From that parsers disagree on should be refused too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { RawSmtp, type Relay, startRelay } from './harness.js';

const run = promisify(execFile);

let r: Relay;
before(async () => {
  r = await startRelay(['spoof']);
});
after(async () => {
  await r?.stop();
});

for (const from of ['ceo@bank.com <spoof@petri.test>', 'ceo@bank.com (CEO) <spoof@petri.test>']) {
  test(`From: ${from} is refused (a strict parser reads another address)`, async () => {
    // What a strict parser makes of it: the premise of the attack.
    const { stdout } = await run('python3', [
      '-c',
      'import sys\nfrom email import message_from_string, policy\nm = message_from_string("From: " + sys.argv[1] + "\\n\\nx", policy=policy.default)\nprint(m["from"].addresses[0].addr_spec)',
      from,
    ]);
    assert.equal(stdout.trim(), 'ceo@bank.com', "Python's email package reads the From as ceo@bank.com");

    const c = await RawSmtp.open(r.mail.relay.smtpPort);
    await c.login(r.apps.spoof!);
    await c.cmd('MAIL FROM:<spoof@petri.test>');
    await c.cmd('RCPT TO:<bob@example.org>');
    await c.cmd('DATA');
    const reply = await c.cmd(
      `From: ${from}\r\nTo: bob@example.org\r\nSubject: wire transfer\r\n\r\nPlease pay.\r\n.`,
    );
    c.close();
    assert.doesNotMatch(
      reply,
      /^250/,
      `the relay queued From: ${from}: refuse a From whose display name is not a quoted string or plain words (an unquoted '@' or a comment before the <address>)`,
    );
  });
}
