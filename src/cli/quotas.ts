// `petri quotas TEAM`: a team's quotas (apps, memory of instances, add-ons) against what it
// uses; platform admins change them with --apps, --memory and --addons ('default' puts one
// back to the server's default).
import type { Command } from 'commander';
import type { QuotaFigure, QuotaUpdate, TeamQuotas } from '../client/index.js';
import { formatMiB as formatMemory } from '../lib/limits.js';
import { parseMemory } from './apps.js';
import type { Context } from './context.js';
import { type Cell, type Output, UsageError } from './output.js';

/** 512 MiB, 1 GiB, 7.5 GiB, as the server's messages say it. */
export { formatMemory };

/** 'default': back to the server's default (null in the request). */
type Given = number | 'default';

interface QuotaOptions {
  apps?: Given;
  memory?: Given;
  addons?: Given;
  json?: boolean;
}

export function registerQuotas(program: Command, ctx: Context): void {
  program
    .command('quotas')
    .description("show a team's quotas against what it uses; admins change them")
    .argument('<team>', 'the team')
    .option('--apps <n>', "most apps (or 'default')", count('--apps'))
    .option('--memory <size>', "most memory of the team's instances: 8G, 512M (or 'default')", memory)
    .option('--addons <n>', "most add-ons (or 'default')", count('--addons'))
    .option('--json', 'print JSON')
    .addHelpText(
      'after',
      "\nMemory counts every instance the team's apps want running (sleeping apps too), each at its app's memory limit.",
    )
    .action(async (team: string, opts: QuotaOptions) => {
      const client = await ctx.client();
      const update: QuotaUpdate = {};
      const value = (given: Given) => (given === 'default' ? null : given);
      if (opts.apps !== undefined) update.apps = value(opts.apps);
      if (opts.memory !== undefined) update.memoryMiB = value(opts.memory);
      if (opts.addons !== undefined) update.addons = value(opts.addons);
      const quotas =
        Object.keys(update).length > 0 ? await client.setQuotas(team, update) : await client.getQuotas(team);
      if (opts.json) return ctx.out.json(quotas);
      printQuotas(ctx.out, quotas);
    });
}

/** QUOTA / USED / LIMIT, the limit marked when it is the team's own; over a limit in red. */
export function printQuotas(out: Output, quotas: TeamQuotas): void {
  const row = (name: string, figure: QuotaFigure, show: (n: number) => string): Cell[] => [
    name,
    { text: show(figure.used), style: figure.used > figure.limit ? 'red' : undefined },
    `${show(figure.limit)}${figure.custom ? " (the team's own)" : ' (default)'}`,
  ];
  out.table(
    ['QUOTA', 'USED', 'LIMIT'],
    [
      row('apps', quotas.apps, String),
      row('memory', quotas.memoryMiB, formatMemory),
      row('add-ons', quotas.addons, String),
    ],
  );
}

function count(flag: string) {
  // Not null for 'default': commander stores an option whose parser answers null as ''.
  return (value: string): Given => {
    if (value.trim().toLowerCase() === 'default') return 'default';
    if (!/^\d+$/.test(value.trim())) {
      throw new UsageError(`${flag} must be a whole number like 20, or 'default', got '${value}'`);
    }
    return Number(value);
  };
}

function memory(value: string): Given {
  if (value.trim().toLowerCase() === 'default') return 'default';
  return parseMemory(value);
}
