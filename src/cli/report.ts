// `petri report`: how the platform is doing over a period (admins): experiments created,
// deployed at least once, active, graduated, expired, archived, destroyed; the median time
// from `petri apps create` to the first deploy that served; how many hold personal data
// and how many talk to outside hosts.
import type { Command } from 'commander';
import type { Report } from '../client/index.js';
import type { Context } from './context.js';

export function registerReport(program: Command, ctx: Context): void {
  program
    .command('report')
    .description(
      'how the platform is doing: experiments created, deployed, active, graduated, expired ... (admins)',
    )
    .option(
      '--since <when>',
      'the period: from this long ago (365d, 12w, 30d) or this date (2026-01-01)',
      '365d',
    )
    .option('--json', 'print JSON')
    .action(async (opts: { since: string; json?: boolean }) => {
      const report = await (await ctx.client()).report(opts.since);
      if (opts.json) return ctx.out.json(report);
      printReport(ctx, report);
    });
}

function printReport(ctx: Context, r: Report): void {
  const of = (n: number) => (r.created > 0 ? ` (${Math.round((n / r.created) * 100)}%)` : '');
  ctx.out.line(`Experiments from ${r.since.slice(0, 10)} to ${r.until.slice(0, 10)}:`);
  ctx.out.keyValues([
    ['created', String(r.created)],
    ['deployed at least once', `${r.deployed}${of(r.deployed)}`],
    ['active', String(r.active)],
    ['graduated', `${r.graduated}${r.graduating > 0 ? ` (${r.graduating} in a handoff)` : ''}`],
    ['expired', String(r.expired)],
    ['archived', String(r.archived)],
    ['destroyed', String(r.destroyed)],
    [
      'create to first deploy',
      r.medianToFirstDeploySeconds === null ? '-' : `${humanSeconds(r.medianToFirstDeploySeconds)} (median)`,
    ],
    [
      'hold personal data',
      `${r.personalData}${r.sensitiveData > 0 ? ` (${r.sensitiveData} sensitive)` : ''}`,
    ],
    ['talk to outside hosts', String(r.outsideHosts)],
  ]);
}

/** 45s, 12m, 3h, 2.5d: the largest unit that reads well. */
export function humanSeconds(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)}s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)}h`;
  return `${Math.round((seconds / 86_400) * 10) / 10}d`;
}
