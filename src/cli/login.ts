// `petri login`, `petri logout`, `petri whoami`: who the CLI talks to, and as whom.
import { rm } from 'node:fs/promises';
import type { Command } from 'commander';
import { PetriClient } from '../client/index.js';
import { type Context, USER_AGENT } from './context.js';
import { UsageError } from './output.js';
import { checkUrl, configFile, requireLogin, saveLogin } from './settings.js';

export function registerLogin(program: Command, ctx: Context): void {
  program
    .command('login')
    .description('check a URL and token against Petri and store them for later commands')
    .option('--url <url>', 'where the Petri API listens, e.g. http://127.0.0.1:7070 (default: $PETRI_URL)')
    .option('--token <token>', 'an API token (default: $PETRI_TOKEN)')
    .action(async (opts: { url?: string; token?: string }) => {
      const url = opts.url ?? ctx.io.env.PETRI_URL;
      const token = opts.token ?? ctx.io.env.PETRI_TOKEN;
      if (!url || !token) {
        throw new UsageError(
          'login needs --url URL and --token TOKEN (the token is in DATA_DIR/admin.token on the server)',
        );
      }
      const login = { url: checkUrl(url), token };
      // Verify before storing: a typo should fail here, not on the next command.
      const user = await new PetriClient({ ...login, userAgent: USER_AGENT }).whoami();
      const file = configFile(ctx.io.env);
      await saveLogin(file, login);
      ctx.out.line(`Logged in to ${login.url} as ${user.name} (${user.role}); saved in ${file}`);
    });

  program
    .command('logout')
    .description('forget the stored URL and token')
    .action(async () => {
      const file = configFile(ctx.io.env);
      await rm(file, { force: true });
      ctx.out.line(`Logged out; removed ${file}`);
    });

  program
    .command('whoami')
    .description('show the user the stored token belongs to')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const settings = await ctx.settings();
      const { url } = requireLogin(settings);
      const user = await (await ctx.client()).whoami();
      if (opts.json) ctx.out.json(user);
      else ctx.out.line(`${user.name} (${user.role}) at ${url}`);
    });
}
