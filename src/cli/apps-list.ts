// `petri apps` (`apps list`): the apps the caller can see, as a table or as JSON. A module of
// its own, free of commander, so the commands typed and scripted most often can run without
// it (src/cli/main.ts runs them directly); apps.ts registers the same function for commander.
import type { AppStatus, ProcessState } from '../client/index.js';
import type { Context } from './context.js';
import { EXPERIMENT_HEADERS, experimentCells } from './describe.js';
import { type Cell, orDash, type Style } from './output.js';

export const STATUS_STYLE: Record<AppStatus | ProcessState, Style> = {
  running: 'green',
  up: 'green',
  deploying: 'yellow',
  starting: 'yellow',
  stopping: 'yellow',
  crashed: 'red',
  down: 'dim',
  new: 'dim',
  sleeping: 'cyan',
};

export async function listApps(ctx: Context, opts: { json?: boolean }): Promise<void> {
  const list = await (await ctx.client()).listApps();
  if (opts.json) return ctx.out.json(list);
  if (list.length === 0) {
    ctx.out.line("No apps yet; create one with 'petri apps create NAME'");
    return;
  }
  ctx.out.table(
    ['NAME', 'TEAM', 'STATUS', ...EXPERIMENT_HEADERS, 'RELEASE', 'URL'],
    list.map((app) => [
      app.name,
      app.team,
      status(app.status),
      ...experimentCells(app),
      orDash(app.release),
      app.url,
    ]),
  );
}

export function status(value: AppStatus | ProcessState): Cell {
  return { text: value, style: STATUS_STYLE[value] };
}
