// `petri stacks`: the runtimes installed on this Petri (Node.js versions, from its shared
// runtime cache) and which of your apps run on each.
import type { Command } from 'commander';
import type { Context } from './context.js';

export function registerStacks(program: Command, ctx: Context): void {
  program
    .command('stacks')
    .description('installed runtimes (Node.js versions) and which of your apps run on each')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { runtimes } = await (await ctx.client()).stacks();
      if (opts.json) return ctx.out.json(runtimes);
      if (runtimes.length === 0) {
        ctx.out.line(
          'no runtime installed yet: the first deploy of a Node.js app installs the version it asks for (engines.node in package.json)',
        );
        return;
      }
      ctx.out.table(
        ['STACK', 'VERSION', 'APPS'],
        runtimes.map((r) => [
          r.stack,
          r.installed ? r.version : `${r.version} (missing from the cache: redeploy its apps)`,
          r.apps.length > 0 ? r.apps.join(', ') : '-',
        ]),
      );
    });
}
