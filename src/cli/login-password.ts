// Signing in with a password: `petri login --ldap USER`, `petri login --email EMAIL` (a
// local account), `petri login --invite LINK` (accept an invitation by setting a password),
// and `petri passwd`. The password is asked on the terminal without echo, or read from
// stdin with --password-stdin (scripts); it is never an argument (argv is visible to every
// user of the machine in ps).
import { StringDecoder } from 'node:string_decoder';
import type { Command } from 'commander';
import type { PetriClient } from '../client/index.js';
import { type Context, newClient, USER_AGENT } from './context.js';
import { type Io, UsageError } from './output.js';
import { checkUrl } from './settings.js';

/** What login.ts stores (its LoginResult; restated, so the two files import one way). */
export interface LoginResult {
  url: string;
  token: string;
}

export interface PasswordOptions {
  passwordStdin?: boolean;
}

export async function loginWithLdap(
  ctx: Context,
  url: string,
  username: string,
  opts: PasswordOptions,
): Promise<LoginResult> {
  if (username.trim() === '') throw new UsageError('--ldap needs your LDAP user name, e.g. --ldap ana');
  const password = await readPassword(ctx, opts, `LDAP password for ${username}: `);
  const signedIn = await (await anonymous(url)).signInWithLdap(username, password);
  return { url, token: signedIn.token };
}

export async function loginWithEmail(
  ctx: Context,
  url: string,
  email: string,
  opts: PasswordOptions,
): Promise<LoginResult> {
  if (!email.includes('@')) throw new UsageError(`--email needs your e-mail address, got '${email}'`);
  const password = await readPassword(ctx, opts, `Password for ${email}: `);
  const signedIn = await (await anonymous(url)).signInWithPassword(email, password);
  return { url, token: signedIn.token };
}

/** Accepts an invitation link: the server is the link's (unless --url says otherwise), the
 * password asked twice on a terminal. */
export async function loginWithInvite(
  ctx: Context,
  link: string,
  url: string | undefined,
  opts: PasswordOptions,
): Promise<LoginResult> {
  const at = link.lastIndexOf('/invite/');
  const secret = at === -1 ? link.trim() : link.slice(at + '/invite/'.length);
  if (!/^[A-Za-z0-9_-]{16,}$/.test(secret)) {
    throw new UsageError(
      `--invite needs the invitation link you were sent, like https://petri.example.org/invite/SECRET; got '${link}'`,
    );
  }
  const server = url ?? (at === -1 ? undefined : checkUrl(link.slice(0, at)));
  if (!server) throw new UsageError('--invite with only the secret needs --url URL, the Petri API');
  ctx.out.note('Choose a password for your new Petri account (at least 10 characters).');
  const password = await readPassword(ctx, opts, 'New password: ', 'New password again: ');
  const signedIn = await (await anonymous(server)).acceptInvitation(secret, password);
  ctx.out.note(`Welcome to Petri, ${signedIn.user.email ?? signedIn.user.name}.`);
  return { url: server, token: signedIn.token };
}

export function registerPasswd(program: Command, ctx: Context): void {
  program
    .command('passwd')
    .description("change your local account's password (your other sign-ins end)")
    .option('--password-stdin', 'read the current and the new password from stdin, one per line')
    .action(async (opts: PasswordOptions) => {
      const client = await ctx.client();
      let current: string;
      let next: string;
      if (opts.passwordStdin) {
        const lines = (await readAll(stdinOf(ctx.io))).split(/\r?\n/);
        current = lines[0] ?? '';
        next = lines[1] ?? '';
        if (next === '') {
          throw new UsageError(
            '--password-stdin needs two lines: the current password (empty for an account without one), then the new one',
          );
        }
      } else {
        const stdin = stdinOf(ctx.io);
        if (!stdin.isTTY || !stdin.setRawMode) {
          throw new UsageError(
            'no terminal to ask the passwords on: give them on stdin with --password-stdin',
          );
        }
        current = await askHidden(ctx.io, stdin, 'Current password (none yet: press Enter): ');
        next = await readPassword(ctx, {}, 'New password: ', 'New password again: ');
      }
      const { sessionsEnded } = await client.changePassword(current, next);
      ctx.out.line(
        `Password changed${sessionsEnded > 0 ? `; ${sessionsEnded} other sign-in session${sessionsEnded === 1 ? '' : 's'} ended` : ''}`,
      );
    });
}

function anonymous(url: string): Promise<PetriClient> {
  return newClient({ url, token: '', userAgent: USER_AGENT });
}

/** The password: from stdin (its first line) with --password-stdin, else asked on the
 * terminal without echo (twice when `again` is given). */
async function readPassword(
  ctx: Context,
  opts: PasswordOptions,
  prompt: string,
  again?: string,
): Promise<string> {
  if (opts.passwordStdin) {
    const password = (await readAll(stdinOf(ctx.io))).replace(/\r?\n$/, '');
    if (password === '') throw new UsageError('--password-stdin read an empty password');
    if (password.includes('\n')) throw new UsageError('--password-stdin reads one line: the password');
    return password;
  }
  const stdin = stdinOf(ctx.io);
  if (!stdin.isTTY || !stdin.setRawMode) {
    throw new UsageError('no terminal to ask the password on: give it on stdin with --password-stdin');
  }
  const password = await askHidden(ctx.io, stdin, prompt);
  if (password === '') throw new UsageError('no password typed');
  if (again !== undefined && (await askHidden(ctx.io, stdin, again)) !== password) {
    throw new UsageError('the two passwords differ; run the command again');
  }
  return password;
}

type Stdin = NonNullable<Io['stdin']>;

function stdinOf(io: Io): Stdin {
  return io.stdin ?? process.stdin;
}

/** Reads a line from the terminal in raw mode, echoing nothing; Ctrl-C cancels. */
function askHidden(io: Io, stdin: Stdin, prompt: string): Promise<string> {
  io.stderr.write(prompt);
  const decoder = new StringDecoder('utf8');
  let typed = '';
  stdin.setRawMode?.(true);
  return new Promise<string>((resolve, reject) => {
    const finish = (err?: Error) => {
      stdin.off('data', onData);
      stdin.setRawMode?.(false);
      stdin.pause();
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(typed);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of typeof chunk === 'string' ? chunk : decoder.write(chunk)) {
        if (ch === '\r' || ch === '\n') return finish();
        if (ch === '\u0003') return finish(new UsageError('cancelled'));
        if (ch === '\u0004') return typed === '' ? finish(new UsageError('cancelled')) : finish();
        if (ch === '\u007f' || ch === '\b') typed = [...typed].slice(0, -1).join('');
        else if (ch === '\u0015')
          typed = ''; // Ctrl-U: start over
        else if (ch >= ' ') typed += ch;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

async function readAll(stream: Stdin): Promise<string> {
  const decoder = new StringDecoder('utf8');
  let text = '';
  for await (const chunk of stream)
    text += typeof chunk === 'string' ? chunk : decoder.write(chunk as Buffer);
  return text + decoder.end();
}
