// Mail from inside real sandboxes, end to end: a Node app speaks raw SMTP to $SMTP_URL (the
// relay on its network's gateway, through the nftables host ports) and posts to
// $MAIL_API_URL; a one-off in the same app's sandbox sends with Python's smtplib; Debian's
// Postfix (the smarthost, on loopback) receives them. Then `petri mail --json` shows them,
// `petri mail rotate` ends the old password, and the unsubscribe link works.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { TestPetri, writeApp } from '../e2e/petri.js';
import { Smarthost } from './smarthost.js';

// The app: GET /smtp sends with a hand-written SMTP conversation (no library: what any
// client does), GET /api with the HTTP API; both answer what the relay replied.
const SERVER = `
const http = require('node:http');
const net = require('node:net');
function smtp(to, subject) {
  const u = new URL(process.env.SMTP_URL);
  const auth = Buffer.from('\\0' + decodeURIComponent(u.username) + '\\0' + decodeURIComponent(u.password)).toString('base64');
  const lines = ['EHLO app', 'AUTH PLAIN ' + auth, 'MAIL FROM:<' + process.env.MAIL_FROM + '>', 'RCPT TO:<' + to + '>', 'DATA',
    'From: ' + process.env.MAIL_FROM + '\\r\\nTo: ' + to + '\\r\\nSubject: ' + subject + '\\r\\n\\r\\nsent from a sandbox\\r\\n.', 'QUIT'];
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(u.port), u.hostname);
    let all = '', pending = '', i = 0;
    s.on('data', (d) => {
      all += d; pending += d;
      const last = pending.split('\\r\\n').at(-2);
      if (!pending.endsWith('\\r\\n') || !last || !/^\\d{3} /.test(last)) return;
      pending = '';
      if (i < lines.length) s.write(lines[i++] + '\\r\\n');
    });
    s.on('close', () => resolve(all));
    s.on('error', reject);
  });
}
http.createServer(async (req, res) => {
  try {
    if (req.url === '/smtp') return res.end(await smtp('bob@example.org', 'Raw SMTP from a sandbox'));
    if (req.url === '/api') {
      const r = await fetch(process.env.MAIL_API_URL, { method: 'POST',
        headers: { authorization: 'Bearer ' + process.env.MAIL_API_TOKEN, 'content-type': 'application/json' },
        body: JSON.stringify({ to: 'carol@example.org', subject: 'HTTP API from a sandbox', text: 'hi' }) });
      return res.end(r.status + ' ' + (await r.text()));
    }
    res.end(process.env.MAIL_FROM + '\\n');
  } catch (err) { res.statusCode = 500; res.end(String(err)); }
}).listen(Number(process.env.PORT));
`;

const PYTHON = `
import os, smtplib, urllib.parse
from email.message import EmailMessage
u = urllib.parse.urlparse(os.environ["SMTP_URL"])
m = EmailMessage(); m["From"] = os.environ["MAIL_FROM"]; m["To"] = "dan@example.org"; m["Subject"] = "smtplib from a sandbox"
m.set_content("hello from python")
with smtplib.SMTP(u.hostname, u.port, timeout=20) as s:
    s.login(urllib.parse.unquote(u.username), urllib.parse.unquote(u.password)); s.send_message(m)
print("sent")
`;

describe('mail from sandboxed apps', () => {
  let smarthost: Smarthost;
  let petri: TestPetri;
  let dir: string;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return r;
  };

  before(async () => {
    smarthost = await Smarthost.start();
    petri = await TestPetri.start({
      mail: {
        relay: `smtp://127.0.0.1:${smarthost.port}`,
        smtpPort: await freePort(),
        httpPort: await freePort(),
      },
    });
    dir = writeApp({
      'package.json': JSON.stringify({ name: 'mailer', scripts: { start: 'node server.js' } }),
      'server.js': SERVER,
    });
    await ok(['apps', 'create', 'mailer']);
    await ok(['deploy', dir, '--app', 'mailer']);
  });

  after(async () => {
    await petri?.destroy();
    await smarthost?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('a Node app speaks raw SMTP to SMTP_URL from its sandbox, and the smarthost receives it', async () => {
    assert.equal((await petri.app('mailer')).body, 'mailer@petri.localhost\n');
    const reply = await petri.app('mailer', '/smtp');
    assert.match(reply.body, /250 2\.0\.0 queued as/, reply.body);
    const got = await until(() => smarthost.messages().find((m) => m.includes('Raw SMTP from a sandbox')), {
      timeout: 20_000,
      message: 'the message at the smarthost',
    });
    assert.match(got, /^DKIM-Signature: /m);
    assert.match(got, /^List-Unsubscribe: </m);
  });

  test('the HTTP API from the sandbox, past its egress proxy', async () => {
    const reply = await petri.app('mailer', '/api');
    assert.match(reply.body, /^202 /, reply.body);
    await until(() => smarthost.messages().find((m) => m.includes('HTTP API from a sandbox')), {
      timeout: 20_000,
      message: 'the HTTP API message at the smarthost',
    });
  });

  test('a Flask app sends with smtplib from its sandbox', async () => {
    const flask = writeApp({
      'requirements.txt': 'flask\n',
      'app.py': `import os, smtplib, urllib.parse
from email.message import EmailMessage
from flask import Flask
app = Flask(__name__)

@app.route("/send")
def send():
    u = urllib.parse.urlparse(os.environ["SMTP_URL"])
    m = EmailMessage(); m["From"] = os.environ["MAIL_FROM"]; m["To"] = "erin@example.org"; m["Subject"] = "Flask from a sandbox"
    m.set_content("hello from flask")
    with smtplib.SMTP(u.hostname, u.port, timeout=20) as s:
        s.login(urllib.parse.unquote(u.username), urllib.parse.unquote(u.password))
        s.send_message(m)
    return "sent\\n"
`,
    });
    try {
      await ok(['apps', 'create', 'flaskmail']);
      await ok(['deploy', flask, '--app', 'flaskmail']);
      assert.equal((await petri.app('flaskmail', '/send')).body, 'sent\n');
      const got = await until(() => smarthost.messages().find((m) => m.includes('Flask from a sandbox')), {
        timeout: 20_000,
        message: "Flask's message at the smarthost",
      });
      assert.match(got, /^From: flaskmail@petri\.localhost/m);
    } finally {
      rmSync(flask, { recursive: true, force: true });
    }
  });

  test("Python's smtplib in a one-off of the app's sandbox", async () => {
    const run = await ok(['run', '--app', 'mailer', '--no-tty', '--', 'python3', '-c', PYTHON]);
    assert.match(run.stdout, /sent/);
    await until(() => smarthost.messages().find((m) => m.includes('smtplib from a sandbox')), {
      timeout: 20_000,
      message: "Python's message at the smarthost",
    });
  });

  test('petri mail --json shows what went out; the unsubscribe link stops mail to that person', async () => {
    const summary = JSON.parse((await ok(['mail', '--app', 'mailer', '--json'])).stdout);
    assert.equal(summary.address, 'mailer@petri.localhost');
    await until(
      async () => JSON.parse((await ok(['mail', '--app', 'mailer', '--json'])).stdout).hour.sent >= 3,
      { timeout: 20_000, message: 'three sent' },
    );
    const got = smarthost.messages().find((m) => m.includes('Raw SMTP from a sandbox'))!;
    const link = /^List-Unsubscribe: <([^>]+)>/m.exec(got)![1]!;
    const url = new URL(link);
    const page = await petri.request(url.host, `${url.pathname}${url.search}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /Stop this mail\?/);
    const done = await petri.request(
      url.host,
      `${url.pathname}${url.search}`,
      'POST',
      Buffer.from('List-Unsubscribe=One-Click'),
      {
        'content-type': 'application/x-www-form-urlencoded',
      },
    );
    assert.equal(done.status, 200, done.body);
    const again = await petri.app('mailer', '/smtp');
    assert.match(again.body, /550 5\.7\.1 bob@example\.org unsubscribed/);
  });

  test('the read commands, for people and with --json; an admin sets limits', async () => {
    const status = await ok(['mail', '--app', 'mailer']);
    assert.match(status.stdout, /mailer sends as mailer@petri\.localhost/);
    assert.match(status.stdout, /^hour\s+\d+/m);
    assert.match(status.stdout, /Raw SMTP from a sandbox/);
    const id = JSON.parse((await ok(['mail', '--app', 'mailer', '--json'])).stdout).last.find(
      (m: { subject: string }) => m.subject === 'HTTP API from a sandbox',
    ).id;
    const show = await ok(['mail', 'show', id, '--app', 'mailer']);
    assert.match(show.stdout, /carol@example\.org\s+sent/);
    assert.equal(JSON.parse((await ok(['mail', 'show', id, '--app', 'mailer', '--json'])).stdout).raw, null);
    const dns = await ok(['mail', 'dns']);
    assert.match(dns.stdout, /^petri\._domainkey\.petri\.localhost\. IN TXT "v=DKIM1; k=rsa; p=/m);
    assert.equal(JSON.parse((await ok(['mail', 'dns', '--json'])).stdout).records.length, 3);
    const csv = await ok(['mail', 'report', '--csv']);
    assert.match(csv.stdout, /^app,sent,queued,deferred,bounced,refused,captured\n/);
    assert.match(csv.stdout, /^mailer,\d+,/m);
    const report = JSON.parse((await ok(['mail', 'report', '--json'])).stdout) as { app: string }[];
    assert.ok(report.some((r) => r.app === 'mailer'));
    const limits = JSON.parse((await ok(['mail', 'limits', 'mailer', '--per-hour', '100', '--json'])).stdout);
    assert.equal(limits.perHour, 100);
    const bad = await petri.cli(['mail', 'limits', 'mailer', '--per-hour', 'lots']);
    assert.notEqual(bad.code, 0);
    assert.match(
      bad.stderr,
      /--per-hour must be a whole number from 1 to 10000000, or 'default', got 'lots'/,
    );
  });

  test('petri mail rotate: the old password stops working', async () => {
    await ok(['mail', 'rotate', '--app', 'mailer']);
    // The running instance still has the old SMTP_URL.
    const reply = await petri.app('mailer', '/smtp');
    assert.match(reply.body, /535 5\.7\.8 authentication failed/);
    await ok(['restart', '--app', 'mailer']);
    // Restarted with the new SMTP_URL it logs in again (and reaches RCPT: bob unsubscribed above).
    await until(
      async () => /550 5\.7\.1 bob@example\.org unsubscribed/.test((await petri.app('mailer', '/smtp')).body),
      {
        timeout: 30_000,
        message: 'the restarted app to log in with its new password',
      },
    );
  });
});
