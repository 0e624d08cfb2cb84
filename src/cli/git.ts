// `petri git remote`: points a `petri` remote of the repository in the current directory
// at the app's smart-HTTP endpoint, and `petri git credential`: the credential helper git
// calls for that URL only, answering with the token of `petri login` (or PETRI_TOKEN),
// so the token is never written into .git/config or any credential store.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UserError } from '../lib/errors.js';
import { exec } from '../lib/exec.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';
import { requireLogin } from './settings.js';

interface RemoteOptions {
  app?: string;
  remote: string;
}

export function registerGit(program: Command, ctx: Context): void {
  const git = program.command('git').description('deploy with git push');
  git
    .command('remote')
    .description("add (or update) a git remote that deploys the app on 'git push REMOTE main'")
    .addOption(appOption())
    .option('-r, --remote <name>', 'the name of the remote', 'petri')
    .action((opts: RemoteOptions) => addRemote(ctx, opts));
  git
    .command('credential')
    .description('git credential helper (git runs it; set up by petri git remote)')
    .argument('<operation>', 'get, store or erase')
    .action((operation: string) => credential(ctx, operation));
}

async function addRemote(ctx: Context, opts: RemoteOptions): Promise<void> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(opts.remote)) {
    throw new UsageError(`remote name must match ^[A-Za-z0-9][A-Za-z0-9._-]*$, got '${opts.remote}'`);
  }
  const cwd = ctx.io.cwd;
  const top = await git(ctx, ['rev-parse', '--show-toplevel']);
  if (top.code !== 0) throw new UsageError('not in a git repository: run git init first');
  const appName = await resolveAppName(opts.app, [top.stdout.trim(), cwd]);
  const login = requireLogin(await ctx.settings());
  // The app must exist and be ours before a remote points at it.
  const client = await ctx.client();
  await client.getApp(appName);
  const url = remoteUrl(login.url, appName);

  const existing = await git(ctx, ['remote', 'get-url', opts.remote]);
  const set = await git(
    ctx,
    existing.code === 0 ? ['remote', 'set-url', opts.remote, url] : ['remote', 'add', opts.remote, url],
  );
  if (set.code !== 0) throw new UserError('bad_request', `git remote failed: ${set.stderr.trim()}`);

  const key = `credential.${url}.helper`;
  await git(ctx, ['config', '--local', '--unset-all', key]); // exit 5 when there was none: fine
  // The empty helper first clears helpers configured elsewhere (a global `store` would
  // otherwise save the token in clear in ~/.git-credentials).
  for (const value of ['', helperCommand()]) {
    const added = await git(ctx, ['config', '--local', '--add', key, value]);
    if (added.code !== 0) throw new UserError('bad_request', `git config failed: ${added.stderr.trim()}`);
  }
  ctx.out.line(`Git remote ${opts.remote} added: ${url}`);
  ctx.out.line(`Deploy with: git push ${opts.remote} main`);
}

export function remoteUrl(base: string, appName: string): string {
  return `${base.replace(/\/+$/, '')}/v1/apps/${encodeURIComponent(appName)}/git`;
}

/**
 * How git runs this CLI as a helper: this very node and Petri entry point (with the tsx
 * loader when Petri runs from source), absolute, so it works without `petri` on PATH.
 * A user's .git/config ends up with, e.g.:
 *   [credential "http://127.0.0.1:7070/v1/apps/hello/git"]
 *     helper =
 *     helper = "!'/usr/bin/node' '/opt/petri/dist/main.js' git credential"
 */
export function helperCommand(): string {
  const self = fileURLToPath(import.meta.url);
  const fromSource = self.endsWith('.ts');
  const main = path.join(path.dirname(self), '..', fromSource ? 'main.ts' : 'main.js');
  const words = [process.execPath, ...(fromSource ? ['--import', import.meta.resolve('tsx')] : []), main];
  return `!${words.map(shellQuote).join(' ')} git credential`;
}

function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

async function credential(ctx: Context, operation: string): Promise<void> {
  const request = parseCredentialRequest(await readAll(ctx.io.stdin ?? process.stdin));
  // store and erase: git reports what worked or not; Petri keeps nothing beyond its login.
  if (operation !== 'get') return;
  const settings = await ctx.settings();
  if (!settings.url || !settings.token) return; // git then says authentication failed
  const answer = credentialAnswer(request, settings.url, settings.token);
  if (answer) ctx.io.stdout.write(answer);
}

/** The key=value lines git sends a helper, up to the first blank line. */
export function parseCredentialRequest(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (line === '') break;
    const eq = line.indexOf('=');
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** The token goes only to the host Petri is logged in to (not, say, after a redirect). */
export function credentialAnswer(
  request: Record<string, string>,
  url: string,
  token: string,
): string | undefined {
  const login = new URL(url);
  if (request.protocol !== login.protocol.replace(/:$/, '') || request.host !== login.host) return undefined;
  return `username=petri\npassword=${token}\n`;
}

interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function git(ctx: Context, args: string[]): Promise<GitResult> {
  const result = await exec('git', args, { cwd: ctx.io.cwd, env: { ...process.env, ...ctx.io.env } }).catch(
    (err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new UserError('bad_request', 'git is not installed') : err;
    },
  );
  return { code: result.code ?? 1, stdout: result.stdout, stderr: result.stderr };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream)
    text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  return text;
}
