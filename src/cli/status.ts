// `petri status`: the platform's promise ("one 9") beside what was measured, its incidents
// and public apps' availability: what http://petri.<domain>/status shows.
import type { Command } from 'commander';
import type { Context } from './context.js';
import { pct } from './metrics.js';

export function registerStatus(program: Command, ctx: Context): void {
  program
    .command('status')
    .description("the platform's promise, its measured availability and incidents (as /status shows)")
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const s = await (await ctx.client()).status();
      if (opts.json) return ctx.out.json(s);
      ctx.out.line(s.promise);
      ctx.out.line(
        `platform: 24 h ${pct(s.platform.h24)}, 7 d ${pct(s.platform.d7)}, 30 d ${pct(s.platform.d30)} (measured since ${s.measuredSince ?? 'now'})`,
      );
      if (s.incidents.length === 0) ctx.out.line('incidents: none in the last 30 days');
      else
        ctx.out.table(
          ['INCIDENT', 'WHAT', 'START', 'END', 'DURATION'],
          s.incidents.map((i) => [
            i.kind,
            i.subject,
            i.startedAt,
            i.endedAt ?? 'ongoing',
            `${i.durationSeconds} s`,
          ]),
        );
      if (s.apps.length > 0)
        ctx.out.table(
          ['PUBLIC APP', '24 H', '7 D', '30 D'],
          s.apps.map((a) => [
            a.name,
            pct(a.availability.h24),
            pct(a.availability.d7),
            pct(a.availability.d30),
          ]),
        );
    });
}
