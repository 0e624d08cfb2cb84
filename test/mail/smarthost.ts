// Debian's Postfix as the relay's smarthost, started by a test on a loopback port with a
// configuration, queue and data directory of its own, delivering every recipient to one
// maildir the test reads back; stopped by its master's pid. `down()` stops it, keeping its
// directories, so a test can watch the relay defer and `up()` start it again.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

const run = promisify(execFile);

export class Smarthost {
  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  static async start(): Promise<Smarthost> {
    const dir = await mkdtemp(path.join(tmpdir(), 'petri-postfix-'));
    const port = await freePort();
    const host = new Smarthost(dir, port);
    // Postfix's daemons run as postfix: they must reach their directories.
    chmodSync(dir, 0o755);
    for (const d of ['conf', 'queue', 'data', 'mail']) mkdirSync(path.join(dir, d));
    const { stdout } = await run('id', ['-u', 'postfix']);
    const uid = Number(stdout.trim());
    const gid = Number((await run('id', ['-g', 'postfix'])).stdout.trim());
    chownSync(path.join(dir, 'data'), uid, gid);
    chownSync(path.join(dir, 'mail'), uid, gid);
    writeFileSync(
      path.join(dir, 'conf/main.cf'),
      [
        'compatibility_level = 3.6',
        `queue_directory = ${dir}/queue`,
        `data_directory = ${dir}/data`,
        'mail_owner = postfix',
        'inet_interfaces = 127.0.0.1',
        'inet_protocols = ipv4',
        'myhostname = smarthost.test',
        'mydestination =',
        'mynetworks = 127.0.0.0/8',
        // Every domain is delivered here: nothing leaves the machine.
        'virtual_mailbox_domains = static:all',
        `virtual_mailbox_base = ${dir}/mail`,
        'virtual_mailbox_maps = static:inbox/',
        `virtual_uid_maps = static:${uid}`,
        `virtual_gid_maps = static:${gid}`,
        'virtual_mailbox_limit = 0',
        'smtpd_recipient_restrictions = permit_mynetworks, reject',
        `maillog_file_prefixes = ${dir}`,
        `maillog_file = ${dir}/maillog`,
        'smtputf8_enable = no',
        'message_size_limit = 52428800',
      ].join('\n'),
    );
    const master = readFileSync('/etc/postfix/master.cf', 'utf8').replace(
      /^smtp\s+inet\s.*$/m,
      `127.0.0.1:${port} inet n - n - - smtpd`,
    );
    writeFileSync(path.join(dir, 'conf/master.cf'), master);
    await host.up();
    return host;
  }

  async up(): Promise<void> {
    await run('postfix', ['-c', path.join(this.dir, 'conf'), 'start']);
    await until(() => this.masterPid(), { timeout: 10_000, message: 'postfix master pid' });
  }

  masterPid(): number | undefined {
    try {
      return Number(readFileSync(path.join(this.dir, 'queue/pid/master.pid'), 'utf8').trim()) || undefined;
    } catch {
      return undefined;
    }
  }

  /** Stops the master (it stops its children) and waits for its port to close. */
  async down(): Promise<void> {
    const pid = this.masterPid();
    if (pid === undefined) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
    await until(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeout: 10_000, message: 'postfix to stop' },
    );
    rmPid(path.join(this.dir, 'queue/pid/master.pid'));
  }

  /** The delivered messages, oldest first. */
  messages(): string[] {
    return this.messageFiles().map((f) => f.text);
  }

  /** The delivered messages with their files (their mtime is when Postfix delivered them). */
  messageFiles(): { path: string; text: string }[] {
    const inbox = path.join(this.dir, 'mail/inbox/new');
    let files: string[];
    try {
      files = readdirSync(inbox).sort();
    } catch {
      return [];
    }
    return files.map((f) => ({
      path: path.join(inbox, f),
      text: readFileSync(path.join(inbox, f), 'latin1'),
    }));
  }

  log(): string {
    try {
      return readFileSync(path.join(this.dir, 'maillog'), 'utf8');
    } catch {
      return '';
    }
  }

  async stop(): Promise<void> {
    await this.down();
    await rm(this.dir, { recursive: true, force: true });
  }
}

function rmPid(file: string): void {
  try {
    writeFileSync(file, '');
  } catch {}
}
