// A relay in capture mode (no smarthost) on loopback, a temp store and a few apps, and a raw
// SMTP client that sends exactly the bytes an attacker would: shared by the attacks on the
// mail relay (issue 17).
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { mailPassword } from '../../src/domain/mail-credentials.js';
import { loadConfig, type PetriConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { freePort } from '../../src/lib/ports.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { type RunningMail, startMail } from '../../src/mail/index.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';

export const secrets = SecretBox.withKey(Buffer.alloc(32, 9));
const limits = { memoryMiB: 64, cpus: 1, pids: 32 };

export interface Relay {
  dir: string;
  db: Store;
  config: PetriConfig;
  mail: RunningMail;
  owner: User;
  apps: Record<string, App>;
  stop(): Promise<void>;
}

export async function startRelay(names: string[], over: Partial<PetriConfig['mail']> = {}): Promise<Relay> {
  const dir = await mkdtemp(path.join(tmpdir(), 'petri-attack-mail-'));
  const db = await openStore(path.join(dir, 'petri.db'));
  const owner = await createUser(db, 'ana@example.org', 'admin', { email: 'ana@example.org' });
  const apps: Record<string, App> = {};
  for (const name of names) {
    apps[name] = await createApp(
      db,
      owner,
      name,
      limits,
      undefined,
      Infinity,
      Infinity,
      {},
      {
        audience: 'public',
      },
    );
  }
  const config = loadConfig({
    dataDir: dir,
    domain: 'petri.test',
    network: { enabled: false },
    mail: { smtpPort: await freePort(), httpPort: await freePort(), ...over },
  });
  const mail = (await startMail({ config, db, secrets, logger: createLogger('silent') }))!;
  return {
    dir,
    db,
    config,
    mail,
    owner,
    apps,
    async stop() {
      await mail.close();
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A raw SMTP conversation: send a line, read the whole reply. */
export class RawSmtp {
  private buffer = '';
  private waiting?: () => void;
  /** The server's greeting (220 ..., or 421 when it turns the connection away). */
  greeting = '';
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buffer += d;
      this.waiting?.();
    });
    socket.on('close', () => this.waiting?.());
  }

  static async open(port: number): Promise<RawSmtp> {
    const socket = createConnection({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    c.greeting = await c.reply();
    return c;
  }

  /** The next complete reply (its last line has a space after the code). */
  async reply(): Promise<string> {
    for (;;) {
      const m = /^(?:\d{3}-[^\n]*\n)*\d{3} [^\n]*\n/.exec(this.buffer);
      if (m) {
        this.buffer = this.buffer.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (this.socket.destroyed) throw new Error(`connection closed; got ${JSON.stringify(this.buffer)}`);
      await new Promise<void>((r) => (this.waiting = r));
    }
  }

  async cmd(line: string): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply();
  }

  /** EHLO and AUTH PLAIN as `app`. */
  async login(app: App): Promise<void> {
    await this.cmd('EHLO attacker.test');
    const r = await this.cmd(
      `AUTH PLAIN ${Buffer.from(`\0${app.name}\0${mailPassword(secrets, app)}`).toString('base64')}`,
    );
    if (!r.startsWith('235')) throw new Error(`login failed: ${r}`);
  }

  close(): void {
    this.socket.destroy();
  }
}
