// `petri config`: an app's config vars (the environment of its processes). Showing them
// reads; setting or unsetting makes a new release, and the command waits until it serves.
import type { Command } from 'commander';
import type { ConfigChange, ConfigVars, PetriClient } from '../client/index.js';
import { UserError } from '../lib/errors.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';
import { releaseFailure, WaitLine, waitForRelease } from './release-wait.js';

interface ShowOptions {
  app?: string;
  json?: boolean;
  shell?: boolean;
}

interface ChangeOptions {
  app?: string;
  json?: boolean;
}

export function registerConfig(program: Command, ctx: Context): void {
  const config = program
    .command('config')
    .description("show and change an app's config vars; a change restarts the app with a new release");

  config
    .command('show', { isDefault: true })
    .description('show every config var (the default)')
    .addOption(appOption())
    .option('-s, --shell', "print KEY='value' lines for a shell or an .env file")
    .option('--json', 'print JSON')
    .action(async (opts: ShowOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const vars = await (await ctx.client()).getConfig(appName);
      if (opts.json) return ctx.out.json(vars);
      const keys = Object.keys(vars).sort();
      if (opts.shell) {
        for (const key of keys) {
          // A key no shell could assign would turn the line into a command: leave it out.
          if (SHELL_NAME.test(key)) ctx.out.line(`${key}=${shellQuote(vars[key]!)}`);
          else ctx.out.warn(`left out ${JSON.stringify(key)}: not a name a shell can assign`);
        }
        return;
      }
      if (keys.length === 0) {
        ctx.out.line(
          `${appName} has no config vars; set one with 'petri config set KEY=VALUE -a ${appName}'`,
        );
        return;
      }
      ctx.out.keyValues(keys.map((key) => [key, vars[key]!]));
    });

  config
    .command('get')
    .description('print the value of one config var')
    .argument('<key>', 'the config var')
    .addOption(appOption())
    .option('--json', 'print the value as a JSON string')
    .action(async (key: string, opts: ChangeOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const vars = await (await ctx.client()).getConfig(appName);
      const value = vars[key];
      // Unset is not the same as empty: say so rather than print an empty line.
      if (value === undefined) {
        throw new UserError(
          'not_found',
          `${appName} has no config var ${key}; list them with 'petri config -a ${appName}'`,
        );
      }
      if (opts.json) ctx.out.json(value);
      else ctx.out.line(value);
    });

  config
    .command('set')
    .description('set config vars and restart the app with them; waits until the new release serves')
    .argument('<pairs...>', 'KEY=VALUE, one or more')
    .addOption(appOption())
    .option('--json', 'print only the new release, as JSON, once it ends')
    .action(async (pairs: string[], opts: ChangeOptions) => {
      const set = parseAssignments(pairs);
      const keys = Object.keys(set);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      await change(ctx, await ctx.client(), appName, { set }, `Setting ${keys.join(', ')}`, opts);
    });

  config
    .command('unset')
    .description('remove config vars and restart the app without them; waits until the new release serves')
    .argument('<keys...>', 'KEY, one or more')
    .addOption(appOption())
    .option('--json', 'print only the new release, as JSON, once it ends')
    .action(async (keys: string[], opts: ChangeOptions) => {
      const unset = parseKeys(keys);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      await change(ctx, await ctx.client(), appName, { unset }, `Unsetting ${unset.join(', ')}`, opts);
    });
}

async function change(
  ctx: Context,
  client: PetriClient,
  appName: string,
  body: ConfigChange,
  doing: string,
  opts: ChangeOptions,
): Promise<void> {
  const created = await client.updateConfig(appName, body);
  if (created === null) {
    if (opts.json) ctx.out.json(null);
    else ctx.out.line(`${doing} on ${appName}: it takes effect with the first deploy`);
    return;
  }
  const line = opts.json ? undefined : new WaitLine(ctx.out, `${doing} and restarting ${appName}...`, true);
  line?.start();
  const release = await waitForRelease(client, appName, created, {
    signal: ctx.signal,
    onPending: (elapsed) => line?.tick(elapsed),
  });
  if (opts.json) ctx.out.json(release);
  if (release.status === 'failed') {
    // On a TTY the open line is finished first, so the error does not land in its middle.
    if (ctx.out.isTTY) line?.end(ctx.out.paint('red', 'failed'));
    throw releaseFailure(ctx.out, appName, release);
  }
  line?.end(`done, ${release.version}`);
}

/** KEY=VALUE arguments; the value is everything after the first `=` and may be empty. */
export function parseAssignments(args: string[]): ConfigVars {
  const vars: ConfigVars = {};
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected KEY=VALUE, got '${arg}'`);
    const key = arg.slice(0, eq);
    if (key in vars) throw new UsageError(`${key} is given twice; give each key once`);
    vars[key] = arg.slice(eq + 1);
  }
  return vars;
}

function parseKeys(args: string[]): string[] {
  for (const arg of args) {
    if (arg === '' || arg.includes('=')) throw new UsageError(`expected a KEY (no =VALUE), got '${arg}'`);
  }
  return [...new Set(args)];
}

const SHELL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Single quotes keep everything literal in a POSIX shell but a single quote, which is spliced in. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
