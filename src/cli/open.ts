// `petri open`: print an app's URL, and open it in a browser when there is one to open.
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';

export function registerOpen(program: Command, ctx: Context): void {
  program
    .command('open')
    .description("print an app's URL and open it in a browser")
    .addOption(appOption())
    .action(async (opts: { app?: string }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const app = await (await ctx.client()).getApp(appName);
      ctx.out.line(app.url);
      const command = browserCommand(ctx.io.env, app.url);
      if (!command) return; // no display and no $BROWSER: the printed URL is all we can do
      const failure = await launch(command);
      if (failure) ctx.out.warn(`could not start ${command[0]} (${failure}); open the URL yourself`);
    });
}

/**
 * The argument vector that opens url: $BROWSER (its first entry; `%s` marks where the URL
 * goes), else the desktop's opener. Never a shell string: the URL comes from the server.
 */
export function browserCommand(env: Record<string, string | undefined>, url: string): string[] | undefined {
  const browser = env.BROWSER?.split(':')[0]?.trim();
  if (browser) {
    const words = browser.split(/\s+/);
    return words.some((w) => w.includes('%s')) ? words.map((w) => w.replaceAll('%s', url)) : [...words, url];
  }
  if (process.platform === 'darwin') return ['open', url];
  if (env.DISPLAY || env.WAYLAND_DISPLAY) return ['xdg-open', url];
  return undefined;
}

/**
 * Starts the browser and lets it run on its own: lib/exec waits for a command to end, and
 * a browser may run for hours. Resolves with why it could not start, or undefined.
 */
export function launch([file, ...args]: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    if (!file) return resolve('empty command');
    const child = spawn(file, args, { detached: true, stdio: 'ignore' });
    child.once('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ENOENT' ? 'not found' : err.message),
    );
    child.once('spawn', () => {
      child.unref();
      resolve(undefined);
    });
  });
}
