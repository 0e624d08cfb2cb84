// The mail relay against the real thing: Debian's Postfix as the smarthost (test/mail/
// smarthost.ts), nodemailer and Python's smtplib as the apps' clients, mailauth checking the
// DKIM signature against the key `petri mail dns` prints. And the attacks: no AUTH, a wrong
// password, another app's credentials, a brute force, a forged From, 500 recipients, 20 MiB,
// malformed headers, header injection through the HTTP API, SMTP smuggling, 100 concurrent
// sends against a limit of 50, one app's flood against another's quota, a smarthost that is
// down, a crash in the middle of a delivery.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { simpleParser } from 'mailparser';
import { createTransport } from 'nodemailer';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { findMailMessage, mailSummary, takeDueDeliveries } from '../../src/domain/mail.js';
import { mailEnv } from '../../src/domain/mail-credentials.js';
import { loadDkimKey, mailDnsRecords } from '../../src/domain/mail-dkim.js';
import { loadConfig, type PetriConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { freePort } from '../../src/lib/ports.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { until } from '../../src/lib/until.js';
import { MailDelivery } from '../../src/mail/delivery.js';
import { type RunningMail, startMail } from '../../src/mail/index.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';
import { Smarthost } from './smarthost.js';

const run = promisify(execFile);
// biome-ignore lint/suspicious/noExplicitAny: mailauth ships no types for this entry point
const { dkimVerify } = (await import('mailauth/lib/dkim/verify.js')) as any;

const secrets = SecretBox.withKey(Buffer.alloc(32, 9));
const log = createLogger('silent');
const limits = { memoryMiB: 64, cpus: 1, pids: 32 };

describe('mail relay', () => {
  let dir: string;
  let db: Store;
  let smarthost: Smarthost;
  let config: PetriConfig;
  let mail: RunningMail;
  let ana: User;
  const apps: Record<string, App> = {};

  const env = (name: string) => mailEnv(config, secrets, apps[name]!);
  const transport = (name: string, extra: object = {}) =>
    createTransport({ url: env(name).SMTP_URL, ...extra } as never);
  const fromOf = (name: string) => env(name).MAIL_FROM;

  async function startRelay(over: Partial<PetriConfig['mail']> = {}) {
    config = loadConfig({
      dataDir: dir,
      domain: 'petri.test',
      network: { enabled: false },
      mail: {
        relay: `smtp://127.0.0.1:${smarthost.port}`,
        smtpPort: await freePort(),
        httpPort: await freePort(),
        ...over,
      },
    });
    mail = (await startMail({
      config,
      db,
      secrets,
      logger: log,
      delivery: { intervalMs: 100, retryBaseMs: 100 },
    }))!;
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'petri-mail-'));
    db = await openStore(path.join(dir, 'petri.db'));
    smarthost = await Smarthost.start();
    ana = await createUser(db, 'ana@example.org', 'admin', { email: 'ana@example.org' });
    for (const name of ['news', 'other', 'flood', 'calm', 'limited', 'closed', 'pauser']) {
      apps[name] = await createApp(
        db,
        ana,
        name,
        limits,
        undefined,
        Infinity,
        Infinity,
        {},
        {
          audience: name === 'closed' ? 'invite' : 'public',
        },
      );
    }
    await startRelay();
  });

  after(async () => {
    await mail?.close();
    await smarthost?.stop();
    await db?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  test('a message from nodemailer reaches the smarthost, DKIM-signed, with Sender, Message-ID, Date and List-Unsubscribe', async () => {
    const info = await transport('news').sendMail({
      from: `"The News" <${fromOf('news')}>`,
      to: 'bob@example.org',
      subject: 'Welcome',
      text: 'Hello Bob',
    });
    assert.match(info.response, /^250 2\.0\.0 queued as /);
    const got = await until(() => smarthost.messages().find((m) => m.includes('Subject: Welcome')), {
      timeout: 15_000,
      message: 'the message at the smarthost',
    });
    assert.match(got, /^Return-Path: <news@petri\.test>/m);
    assert.match(got, /^Sender: news@petri\.test/m);
    assert.match(got, /^Message-ID: </im);
    assert.match(got, /^Date: /m);
    assert.match(
      got,
      /^List-Unsubscribe: <http:\/\/petri\.localhost:\d+\/mail\/unsubscribe\?a=\d+&e=[^&]+&t=[\w-]+>/m,
    );
    assert.match(got, /^List-Unsubscribe-Post: List-Unsubscribe=One-Click/m);
    assert.match(got, /^DKIM-Signature: .*d=petri\.test/m);

    const [dkim] = mailDnsRecords(loadDkimKey(dir, 'petri.test'), config.mail.relay);
    const resolver = async (name: string, type: string) => {
      if (type === 'TXT' && name === dkim!.name) return [[dkim!.value]];
      const err = new Error('not found') as Error & { code: string };
      err.code = 'ENOTFOUND';
      throw err;
    };
    const result = await dkimVerify(Buffer.from(got, 'latin1'), { resolver });
    assert.equal(result.results[0]?.status?.result, 'pass', JSON.stringify(result.results[0]?.status));

    const summary = await mailSummary(db, config.mail, apps.news!);
    assert.equal(summary.last[0]?.status, 'sent');
    assert.equal(summary.hour.sent, 1);
    // Never a body outside capture mode once delivered.
    const { row } = await findMailMessage(db, apps.news!.id, summary.last[0]!.id);
    assert.equal(row.raw, null);
  });

  test("Python's smtplib sends with the credentials of SMTP_URL", async () => {
    const script = `
import os, smtplib, urllib.parse
from email.message import EmailMessage
u = urllib.parse.urlparse(os.environ["SMTP_URL"])
m = EmailMessage(); m["From"] = os.environ["MAIL_FROM"]; m["To"] = "carol@example.org"; m["Subject"] = "From Python"
m.set_content("hi")
with smtplib.SMTP(u.hostname, u.port) as s:
    s.login(urllib.parse.unquote(u.username), urllib.parse.unquote(u.password)); s.send_message(m)
`;
    await run('python3', ['-c', script], { env: { ...process.env, ...env('news') } });
    await until(() => smarthost.messages().find((m) => m.includes('Subject: From Python')), {
      timeout: 15_000,
      message: "Python's message at the smarthost",
    });
  });

  test('the HTTP API sends with MAIL_API_TOKEN, and refuses a subject with a line break', async () => {
    const e = env('news');
    const send = (body: unknown, token = e.MAIL_API_TOKEN) =>
      fetch(e.MAIL_API_URL!, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const ok = await send({ to: 'dan@example.org', subject: 'By HTTP', text: 'hello' });
    assert.equal(ok.status, 202, await ok.clone().text());
    await until(() => smarthost.messages().find((m) => m.includes('Subject: By HTTP')), {
      timeout: 15_000,
      message: 'the HTTP message at the smarthost',
    });
    const injected = await send({
      to: 'dan@example.org',
      subject: 'Hi\r\nBcc: victim@example.org',
      text: 'x',
    });
    assert.equal(injected.status, 400);
    assert.match(((await injected.json()) as { error: { message: string } }).error.message, /one line/);
    const many = await send({
      to: Array.from({ length: 11 }, (_, i) => `p${i}@example.org`),
      subject: 'x',
      text: 'x',
    });
    assert.equal(many.status, 422);
    assert.match(
      ((await many.json()) as { error: { message: string } }).error.message,
      /recipients limit of 10/,
    );
    const badTo = await send({ to: 'dan@example.org\r\nBcc: x@example.org', subject: 'x', text: 'x' });
    assert.equal(badTo.status, 400);
    const otherToken = await send(
      { to: 'dan@example.org', subject: 'x', text: 'x' },
      env('other').MAIL_API_TOKEN!.replace(/^other/, 'news'),
    );
    assert.equal(otherToken.status, 401);
  });

  test('no AUTH, a wrong password and another app’s password are refused; a brute force is cut off, never the right password', async () => {
    const noAuth = createTransport({ host: '127.0.0.1', port: config.mail.smtpPort, secure: false });
    await assert.rejects(
      noAuth.sendMail({ from: fromOf('news'), to: 'x@example.org', text: 'x' }),
      /530|Authentication required/i,
    );
    const wrong = createTransport({
      host: '127.0.0.1',
      port: config.mail.smtpPort,
      auth: { user: 'news', pass: 'guess' },
    });
    await assert.rejects(
      wrong.sendMail({ from: fromOf('news'), to: 'x@example.org', text: 'x' }),
      /535.*SMTP_URL/,
    );
    const otherPass = new URL(env('other').SMTP_URL!).password;
    const crossed = createTransport({
      host: '127.0.0.1',
      port: config.mail.smtpPort,
      auth: { user: 'news', pass: otherPass },
    });
    await assert.rejects(crossed.sendMail({ from: fromOf('news'), to: 'x@example.org', text: 'x' }), /535/);
    for (let i = 0; i < 10; i++) await wrong.verify().catch(() => {});
    // Now a wrong guess as news from this address is told it is cut off for a while ...
    await assert.rejects(wrong.verify(), /454.*too many failed logins as 'news'/);
    // ... while the right password is never refused for someone else's guesses.
    assert.equal(await transport('news').verify(), true);
  });

  test('a forged From, a second From and a malformed header are refused, never rewritten', async () => {
    const t = transport('other');
    await assert.rejects(
      t.sendMail({ from: 'ceo@example.org', to: 'x@example.org', text: 'x' }),
      /553.*From must be this app's address other@petri\.test/,
    );
    await assert.rejects(t.sendMail({ from: fromOf('news'), to: 'x@example.org', text: 'x' }), /553/);
    await t.sendMail({ from: 'other+digest@petri.test', to: 'x@example.org', text: 'tagged is fine' });
    const raw = (headers: string) =>
      t.sendMail({
        envelope: { from: fromOf('other'), to: ['x@example.org'] },
        raw: `${headers}\r\n\r\nbody\r\n`,
      });
    await assert.rejects(
      raw(`From: other@petri.test\r\nFrom: ceo@example.org\r\nSubject: two`),
      /554.*2 'from' headers/,
    );
    await assert.rejects(
      raw(`From: other@petri.test\r\nthis is not a header\r\nSubject: x`),
      /554.*not 'Name: value'/,
    );
  });

  test('500 recipients: the first 10 are taken, the rest refused with the limit named', async () => {
    const to = Array.from({ length: 500 }, (_, i) => `r${i}@example.org`);
    const info = await transport('other').sendMail({ from: fromOf('other'), to, subject: 'many', text: 'x' });
    assert.equal(info.accepted.length, 10);
    assert.equal(info.rejected.length, 490);
    const errors = (info as unknown as { rejectedErrors: Error[] }).rejectedErrors;
    assert.match(String(errors[0]?.message), /452.*recipients limit of 10 per message/);
  });

  test('a 20 MiB message is refused with the size limit', async () => {
    const big = 'x'.repeat(76) + '\r\n';
    await assert.rejects(
      transport('other').sendMail({
        from: fromOf('other'),
        to: 'x@example.org',
        text: big.repeat((20 * 1024 * 1024) / big.length),
      }),
      /552.*size/i,
    );
  });

  test('SMTP smuggling: a bare LF before the dot is refused, and no second message slips through', async () => {
    const accepted = async () => {
      const h = (await mailSummary(db, config.mail, apps.other!)).hour;
      return h.sent + h.queued + h.deferred;
    };
    const before = await accepted();
    const user = Buffer.from(`\0other\0${new URL(env('other').SMTP_URL!).password}`).toString('base64');
    const smuggled =
      'From: other@petri.test\r\nSubject: first\r\n\r\nhello\n.\r\nMAIL FROM:<other@petri.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nFrom: ceo@example.org\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n';
    const replies = await smtpConversation(config.mail.smtpPort, [
      'EHLO test',
      `AUTH PLAIN ${user}`,
      'MAIL FROM:<other@petri.test>',
      'RCPT TO:<x@example.org>',
      'DATA',
      smuggled.replace(/\r\n$/, ''),
      'QUIT',
    ]);
    assert.match(replies, /554 5\.7\.1 .*bare LF/);
    const after = await mailSummary(db, config.mail, apps.other!);
    assert.ok(!after.last.some((m) => m.subject === 'smuggled'));
    assert.equal(await accepted(), before);
    assert.ok(!smarthost.messages().some((m) => m.includes('smuggled')));
  });

  test('100 concurrent sends against a limit of 50 per hour: exactly 50 accepted, 50 refused with the limit', async () => {
    await db
      .insertInto('mail_apps')
      .values({ app_id: apps.limited!.id, per_hour: 50, per_day: null, recipients: null, paused_until: null })
      .execute();
    const results = await Promise.allSettled(
      Array.from({ length: 100 }, (_, i) =>
        transport('limited').sendMail({
          from: fromOf('limited'),
          to: 'x@example.org',
          subject: `n${i}`,
          text: 'x',
        }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 50);
    assert.equal(refused.length, 50);
    for (const r of refused)
      assert.match(
        String(r.reason.message),
        /451.*per-hour limit of 50 messages reached; it resets at \d{4}-\d\d-\d\d \d\d:\d\d UTC/,
      );
  });

  test("one app's flood does not use another app's quota", async () => {
    await db
      .insertInto('mail_apps')
      .values({ app_id: apps.flood!.id, per_hour: 5, per_day: null, recipients: null, paused_until: null })
      .execute();
    await Promise.allSettled(
      Array.from({ length: 30 }, () =>
        transport('flood').sendMail({ from: fromOf('flood'), to: 'x@example.org', text: 'x' }),
      ),
    );
    const info = await transport('calm').sendMail({
      from: fromOf('calm'),
      to: 'x@example.org',
      subject: 'calm',
      text: 'x',
    });
    assert.match(info.response, /^250/);
  });

  test('while the audience is invite, only invitees (and the team) may be mailed', async () => {
    await db
      .insertInto('audience_invitees')
      .values({
        app_id: apps.closed!.id,
        email: 'eve@example.org',
        invited_by: null,
        created_at: new Date().toISOString(),
      })
      .execute();
    const t = transport('closed');
    await t.sendMail({ from: fromOf('closed'), to: 'eve@example.org', text: 'x' });
    await t.sendMail({ from: fromOf('closed'), to: 'ana@example.org', text: 'the team' });
    await assert.rejects(
      t.sendMail({ from: fromOf('closed'), to: 'stranger@example.org', text: 'x' }),
      /550.*audience is 'invite'.*invite them, or make the app public/,
    );
  });

  test('ten refusals in a row pause the app for an hour and tell the owner', async () => {
    const t = transport('pauser');
    for (let i = 0; i < 10; i++) {
      await assert.rejects(t.sendMail({ from: 'forged@example.org', to: 'x@example.org', text: 'x' }), /553/);
    }
    await assert.rejects(
      t.sendMail({ from: fromOf('pauser'), to: 'x@example.org', text: 'x' }),
      /451.*paused after repeated refusals until/,
    );
    const event = await db
      .selectFrom('audit_events')
      .selectAll()
      .where('action', '=', 'mail.paused')
      .where('app', '=', 'pauser')
      .executeTakeFirst();
    assert.ok(event, 'a mail.paused audit event');
    assert.ok((await mailSummary(db, config.mail, apps.pauser!)).pausedUntil);
    // The owner is told by mail too.
    const notice = await until(
      () => smarthost.messages().find((m) => m.includes('Subject: Mail of pauser is paused')),
      {
        timeout: 15_000,
        message: "the owner's notice of the pause",
      },
    );
    assert.match(notice, /^To: ana@example\.org/m);
    assert.match((await simpleParser(notice)).text ?? '', /petri mail limits pauser --resume/);
  });

  test("an experiment's expiry warning goes to its owner through the relay, outside the app's quota", async () => {
    await mail.notices.expiryWarning({
      app: 'limited',
      appId: apps.limited!.id,
      teamId: apps.limited!.team_id,
      owner: ana.id,
      days: 7,
      expiresAt: '2027-01-01T00:00:00.000Z',
    });
    const got = await until(
      () => smarthost.messages().find((m) => m.includes('Subject: limited expires in 7 days')),
      {
        timeout: 15_000,
        message: 'the expiry warning at the smarthost',
      },
    );
    assert.match((await simpleParser(got)).text ?? '', /petri apps renew limited/);
    assert.match(got, /^DKIM-Signature: /m);
  });

  test("an app's alert (the metrics' crash loop, 5xx, memory) goes to its owner", async () => {
    await mail.notices.alert(
      apps.limited!.id,
      "its processes restarted 3 times in 10 minutes: look at 'petri logs' and 'petri ps'",
    );
    const got = await until(
      () => smarthost.messages().find((m) => m.includes('Subject: limited needs a look')),
      { timeout: 15_000, message: 'the alert at the smarthost' },
    );
    assert.match(got, /^To: ana@example\.org/m);
    assert.match((await simpleParser(got)).text ?? '', /limited its processes restarted 3 times/);
  });

  test('a smarthost that is down: the message is deferred, then delivered when it is back', async () => {
    await smarthost.down();
    await transport('news').sendMail({
      from: fromOf('news'),
      to: 'late@example.org',
      subject: 'Deferred one',
      text: 'x',
    });
    await until(async () => (await mailSummary(db, config.mail, apps.news!)).last[0]?.status === 'deferred', {
      timeout: 15_000,
      message: 'the owner to see deferred',
    });
    await smarthost.up();
    await until(() => smarthost.messages().find((m) => m.includes('Subject: Deferred one')), {
      timeout: 30_000,
      message: 'the deferred message delivered',
    });
  });

  test('a crash in the middle of a delivery: delivered once after the restart, never lost', async () => {
    await mail.close();
    await startRelay();
    // The delivery loop of the running relay is stopped; another takes the message and dies
    // before it could tell the store.
    await mail.delivery!.close();
    await transport('news').sendMail({
      from: fromOf('news'),
      to: 'crash@example.org',
      subject: 'Crash test',
      text: 'x',
    });
    const taken = await takeDueDeliveries(db, 10);
    assert.equal(taken.length, 1);
    const restarted = new MailDelivery({
      db,
      logger: log,
      relay: config.mail.relay!,
      dkim: loadDkimKey(dir, 'petri.test'),
      domain: 'petri.test',
      publicBase: 'http://petri.localhost',
      unsubscribeKey: secrets.derive('mail unsubscribe'),
      intervalMs: 100,
    });
    await restarted.start();
    try {
      await until(() => smarthost.messages().filter((m) => m.includes('Subject: Crash test')).length === 1, {
        timeout: 15_000,
        message: 'the message delivered after the restart',
      });
      await until(async () => (await mailSummary(db, config.mail, apps.news!)).last[0]?.status === 'sent', {
        timeout: 5000,
        message: 'sent',
      });
      assert.equal(smarthost.messages().filter((m) => m.includes('Subject: Crash test')).length, 1);
    } finally {
      await restarted.close();
    }
  });

  test('with no smarthost, mail is kept in the capture box', async () => {
    await mail.close();
    await startRelay({ relay: undefined } as never);
    delete (config.mail as { relay?: string }).relay;
    const info = await transport('news').sendMail({
      from: fromOf('news'),
      to: 'dev@example.org',
      subject: 'Captured',
      text: 'on a laptop',
    });
    const id = /queued as (\S+)/.exec(info.response)![1]!;
    const { row } = await findMailMessage(db, apps.news!.id, id);
    assert.equal(row.status, 'captured');
    assert.match(row.raw!.toString(), /on a laptop/);
  });
});

/** Speaks SMTP line by line (each command after the previous reply), answering every reply. */
function smtpConversation(port: number, lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(port, '127.0.0.1');
    let out = '';
    let pending = '';
    let i = 0;
    socket.on('data', (d) => {
      out += d.toString();
      pending += d.toString();
      const last = pending.split('\r\n').at(-2);
      if (!pending.endsWith('\r\n') || !last || !/^\d{3} /.test(last)) return;
      pending = '';
      const next = lines[i++];
      if (next !== undefined) socket.write(`${next}\r\n`);
    });
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    setTimeout(() => {
      socket.destroy();
      resolve(out);
    }, 10_000).unref();
  });
}
