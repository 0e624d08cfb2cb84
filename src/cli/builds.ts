// `petri builds`: an app's builds (deploys) with status and duration, and one build's output.
import type { Command } from 'commander';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { formatDuration, shortTime } from './output.js';

export function registerBuilds(program: Command, ctx: Context): void {
  const builds = program.command('builds').description("an app's builds, and the output of one");

  builds
    .command('list', { isDefault: true })
    .description('the latest builds, newest first: status, release, duration (the default)')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: { app?: string; json?: boolean }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const deploys = await (await ctx.client()).listDeploys(appName);
      if (opts.json) return ctx.out.json(deploys);
      if (deploys.length === 0) {
        ctx.out.line(`${appName} has no builds yet; deploy with 'petri deploy -a ${appName}'`);
        return;
      }
      ctx.out.table(
        ['ID', 'STATUS', 'RELEASE', 'STARTED', 'DURATION'],
        deploys.map((d) => [
          d.id,
          d.status,
          d.release ?? '-',
          shortTime(d.createdAt),
          d.durationMs === null ? '-' : formatDuration(d.durationMs),
        ]),
      );
    });

  builds
    .command('logs')
    .description("one build's output (build, release command and start), and how it ended")
    .argument('<id>', 'the build, as `petri builds` lists it')
    .addOption(appOption())
    .option('--json', 'print JSON lines')
    .action(async (id: string, opts: { app?: string; json?: boolean }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      for await (const event of (await ctx.client()).streamDeploy(appName, id, { signal: ctx.signal })) {
        if (opts.json) {
          ctx.out.jsonLine(event);
          continue;
        }
        if (event.type === 'log') ctx.out.line(`${event.source.padEnd(7)} | ${event.text}`);
        else if (event.type === 'end') {
          const d = event.deploy;
          ctx.out.line(
            d.status === 'failed'
              ? `build ${d.id} failed: ${d.error}`
              : `build ${d.id} ${d.status}${d.release ? ` as ${d.release}` : ''}`,
          );
        }
      }
    });
}
