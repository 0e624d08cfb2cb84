// `petri apps renew NAME [--for 90d]`: an experiment ends later. The server decides what is
// allowed (the team: up to lifecycle.maxDays; admins: any period) and says so when refused.
import type { Command } from 'commander';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';

export function registerRenew(apps: Command, ctx: Context): void {
  apps
    .command('renew')
    .description('extend an experiment before it expires, or bring back one that expired or was archived')
    .argument('[name]', 'the app (default: --app, or the name in ./petri.toml)')
    .addOption(appOption())
    .option('--for <period>', "how long from now: 90d, 2w, 12h (default: the server's lifecycle.defaultDays)")
    .option('--json', 'print the renewal as JSON')
    .action(async (name: string | undefined, opts: { app?: string; for?: string; json?: boolean }) => {
      if (name !== undefined && opts.app !== undefined && name !== opts.app) {
        throw new UsageError(`two apps given, '${name}' and --app '${opts.app}'; give one`);
      }
      const appName = await resolveAppName(name ?? opts.app, [ctx.io.cwd]);
      const renewal = await (await ctx.client()).renewApp(appName, opts.for);
      if (opts.json) return ctx.out.json(renewal);
      const until = `${renewal.expiresAt.slice(0, 16).replace('T', ' ')} UTC (in ${renewal.period})`;
      if (renewal.was === 'expired') {
        ctx.out.line(`Renewed ${appName} until ${until}: it starts again, with its data`);
      } else if (renewal.was === 'archived') {
        ctx.out.line(`Renewed ${appName} until ${until}: a new, empty experiment under its old name`);
        ctx.out.line(
          `Deploy it again; its add-ons' final backups are in 'petri addons backups --all' (admins restore them)`,
        );
      } else {
        ctx.out.line(`Renewed ${appName}: it now expires on ${until}`);
      }
    });
}
