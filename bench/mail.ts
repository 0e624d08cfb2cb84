// Mail relay figures (issue 17), the relay alone over a real store, with Debian's Postfix as
// the smarthost on loopback (test/mail/smarthost.ts):
//   accepted/s:  messages one app gets accepted through SMTP (4 pooled connections, as
//                nodemailer's pool does), against the same client sending straight to
//                Postfix (a ratio: what the relay's checks, quota and durable queue cost);
//   delivered/s: from the first acceptance to the last message in Postfix's maildir;
//   latency:     acceptance to the smarthost's receipt (the maildir file's time), p50 and p99.
// Figures, never asserts. `node --import tsx bench/mail.ts [N]`.
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTransport } from 'nodemailer';
import { createApp } from '../src/domain/apps.js';
import { createUser } from '../src/domain/auth.js';
import { mailEnv } from '../src/domain/mail-credentials.js';
import { loadConfig } from '../src/lib/config.js';
import { createLogger } from '../src/lib/log.js';
import { freePort } from '../src/lib/ports.js';
import { SecretBox } from '../src/lib/secrets.js';
import { until } from '../src/lib/until.js';
import { startMail } from '../src/mail/index.js';
import { openStore } from '../src/store/db.js';
import { Smarthost } from '../test/mail/smarthost.js';
import { percentile } from './common.js';

export async function mailBench(n = 500): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'petri-bench-mail-'));
  const smarthost = await Smarthost.start();
  const db = await openStore(path.join(dir, 'petri.db'));
  const secrets = SecretBox.withKey(Buffer.alloc(32, 3));
  const config = loadConfig({
    dataDir: dir,
    domain: 'petri.test',
    network: { enabled: false },
    mail: {
      relay: `smtp://127.0.0.1:${smarthost.port}`,
      smtpPort: await freePort(),
      httpPort: await freePort(),
      perHour: 1_000_000,
      perDay: 1_000_000,
    },
  });
  const mail = (await startMail({ config, db, secrets, logger: createLogger('silent') }))!;
  try {
    const ana = await createUser(db, 'ana@example.org', 'admin', { email: 'ana@example.org' });
    const app = await createApp(
      db,
      ana,
      'bench',
      { memoryMiB: 64, cpus: 1, pids: 32 },
      undefined,
      Infinity,
      Infinity,
      {},
      {
        audience: 'public',
      },
    );
    const env = mailEnv(config, secrets, app);

    const send = async (url: string, tag: string) => {
      const t = createTransport({ url, pool: true, maxConnections: 4, maxMessages: Infinity } as never);
      const accepted = new Map<string, number>();
      const started = performance.now();
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < n) {
            const subject = `${tag} ${next++}`;
            await t.sendMail({ from: env.MAIL_FROM, to: 'bob@example.org', subject, text: 'x'.repeat(2000) });
            accepted.set(subject, Date.now());
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      t.close();
      return { rate: n / seconds, accepted };
    };

    const direct = await send(`smtp://127.0.0.1:${smarthost.port}`, 'direct');
    await until(() => count(smarthost, 'direct') >= n, {
      timeout: 120_000,
      message: 'direct mail delivered',
    });
    const relayed = await send(env.SMTP_URL!, 'relayed');
    const firstAccepted = Math.min(...relayed.accepted.values());
    await until(() => count(smarthost, 'relayed') >= n, {
      timeout: 300_000,
      message: 'relayed mail delivered',
    });

    const latencies: number[] = [];
    let lastReceipt = 0;
    for (const file of smarthost.messageFiles()) {
      const subject = /^Subject: (relayed \d+)/m.exec(file.text)?.[1];
      const at = subject ? relayed.accepted.get(subject) : undefined;
      if (at === undefined) continue;
      const received = statSync(file.path).mtimeMs;
      latencies.push(received - at);
      lastReceipt = Math.max(lastReceipt, received);
    }
    console.log(
      `mail: ${n} messages of 2 KB from one app, 4 connections, Postfix on loopback as the smarthost`,
    );
    console.log(`  accepted through the relay: ${relayed.rate.toFixed(0)} msg/s`);
    console.log(`  sent straight to Postfix:   ${direct.rate.toFixed(0)} msg/s`);
    console.log(`  ratio relay/direct:         ${(relayed.rate / direct.rate).toFixed(2)}`);
    console.log(
      `  delivered to the smarthost: ${(n / ((lastReceipt - firstAccepted) / 1000)).toFixed(0)} msg/s`,
    );
    console.log(
      `  acceptance -> smarthost receipt: p50 ${percentile(latencies, 50).toFixed(0)} ms, p99 ${percentile(latencies, 99).toFixed(0)} ms`,
    );
  } finally {
    await mail.close();
    await db.destroy();
    await smarthost.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

function count(smarthost: Smarthost, tag: string): number {
  return smarthost.messageFiles().filter((f) => f.text.includes(`Subject: ${tag} `)).length;
}

if (import.meta.url === `file://${process.argv[1]}`) await mailBench(Number(process.argv[2] ?? 500));
