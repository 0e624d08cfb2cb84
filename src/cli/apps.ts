// `petri apps`: list, create, inspect, size and destroy apps.
import type { Command } from 'commander';
import type { App, AppSettings, AppStatus, Limits, ProcessState } from '../client/index.js';
import type { Context } from './context.js';
import { type Cell, orDash, type Style, shortTime, UsageError } from './output.js';

const STATUS_STYLE: Record<AppStatus | ProcessState, Style> = {
  running: 'green',
  up: 'green',
  deploying: 'yellow',
  starting: 'yellow',
  stopping: 'yellow',
  crashed: 'red',
  down: 'dim',
  new: 'dim',
};

export function registerApps(program: Command, ctx: Context): void {
  const apps = program.command('apps').description('list, create, inspect and destroy apps');

  apps
    .command('list', { isDefault: true })
    .description('list the apps you can see (the default)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const list = await (await ctx.client()).listApps();
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line("No apps yet; create one with 'petri apps create NAME'");
        return;
      }
      ctx.out.table(
        ['NAME', 'STATUS', 'RELEASE', 'URL'],
        list.map((app) => [app.name, status(app.status), orDash(app.release), app.url]),
      );
    });

  apps
    .command('create')
    .description('create an app, ready for its first deploy')
    .argument('<name>', 'lowercase letters, digits and dashes')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const app = await (await ctx.client()).createApp(name);
      if (opts.json) return ctx.out.json(app);
      ctx.out.line(`Created ${app.name}: ${app.url}`);
      ctx.out.line(`Deploy it with 'petri deploy --app ${app.name}' from its directory`);
    });

  apps
    .command('info')
    .description("show an app's status, release, limits and processes")
    .argument('<name>', 'the app')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { json?: boolean }) => {
      const app = await (await ctx.client()).getApp(name);
      if (opts.json) return ctx.out.json(app);
      printInfo(ctx, app);
    });

  apps
    .command('destroy')
    .description('delete an app, its releases and its processes')
    .argument('<name>', 'the app')
    .option('--confirm <name>', 'the name again, to show you mean it')
    .action(async (name: string, opts: { confirm?: string }) => {
      // Checked here as well as by the server, so a missing flag costs no request.
      if (opts.confirm !== name) {
        const got = opts.confirm === undefined ? '' : ` (--confirm was '${opts.confirm}')`;
        throw new UsageError(
          `destroying '${name}' deletes it for good${got}; to confirm, run: petri apps destroy ${name} --confirm ${name}`,
        );
      }
      await (await ctx.client()).destroyApp(name, opts.confirm);
      ctx.out.line(`Destroyed ${name}`);
    });

  apps
    .command('limits')
    .description("show an app's resource limits, or change them")
    .argument('<name>', 'the app')
    .option('--memory <size>', 'memory limit: 256 (MiB), 256M, 1G', parseMemory)
    .option('--cpus <n>', 'CPU limit in cores, e.g. 0.5', parseCpus)
    .option('--pids <n>', 'most processes and threads at once', parsePids)
    .option('--disk <size>', 'size of /app and of /tmp: 512 (MiB), 512M, 2G', parseMemory)
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        opts: Partial<{ memory: number; cpus: number; pids: number; disk: number; json: boolean }>,
      ) => {
        const client = await ctx.client();
        const limits: Partial<Limits> = {};
        if (opts.memory !== undefined) limits.memoryMiB = opts.memory;
        if (opts.cpus !== undefined) limits.cpus = opts.cpus;
        if (opts.pids !== undefined) limits.pids = opts.pids;
        if (opts.disk !== undefined) limits.diskMiB = opts.disk;
        const app =
          Object.keys(limits).length > 0
            ? await client.updateApp(name, { limits })
            : await client.getApp(name);
        if (opts.json) return ctx.out.json(app.limits);
        ctx.out.keyValues(limitPairs(app.limits));
      },
    );

  apps
    .command('set')
    .description(`show an app's settings, or change them: ${Object.keys(APP_SETTINGS).join(', ')}`)
    .argument('<name>', 'the app')
    .argument('[pairs...]', `KEY=VALUE, KEY one of ${Object.keys(APP_SETTINGS).join(', ')}`)
    .option('--json', 'print JSON')
    .addHelpText('after', `\nSettings:\n${settingsHelp()}`)
    .action(async (name: string, pairs: string[], opts: { json?: boolean }) => {
      const settings = parseSettings(pairs);
      const client = await ctx.client();
      const app =
        Object.keys(settings).length > 0
          ? await client.updateApp(name, { settings })
          : await client.getApp(name);
      if (opts.json) return ctx.out.json(app.settings);
      ctx.out.keyValues(settingPairs(app.settings));
    });
}

/** One entry per key of `petri apps set`: how to read a value, and how to show the setting. */
interface SettingSpec {
  help: string;
  apply(value: string, into: Partial<AppSettings>): void;
  show(settings: AppSettings): string;
}

export const APP_SETTINGS: Record<string, SettingSpec> = {
  boot_timeout: {
    help: 'how long a new process has to listen on its port before its release fails: 90, 90s, 2m',
    apply: (value, into) => {
      into.bootTimeoutSeconds = parseDurationSeconds('boot_timeout', value);
    },
    show: (settings) => formatSeconds(settings.bootTimeoutSeconds),
  },
};

/** KEY=VALUE arguments of `petri apps set`, as the settings the API takes. */
export function parseSettings(args: string[]): Partial<AppSettings> {
  const settings: Partial<AppSettings> = {};
  const seen = new Set<string>();
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq <= 0) throw new UsageError(`expected KEY=VALUE, got '${arg}'`);
    const key = arg.slice(0, eq);
    const spec = Object.hasOwn(APP_SETTINGS, key) ? APP_SETTINGS[key] : undefined;
    if (!spec) {
      throw new UsageError(
        `unknown setting '${key}'; the settings are: ${Object.keys(APP_SETTINGS).join(', ')}`,
      );
    }
    if (seen.has(key)) throw new UsageError(`${key} is given twice; give each setting once`);
    seen.add(key);
    spec.apply(arg.slice(eq + 1), settings);
  }
  return settings;
}

function settingPairs(settings: AppSettings): [string, string][] {
  return Object.entries(APP_SETTINGS).map(([key, spec]) => [key, spec.show(settings)]);
}

function settingsHelp(): string {
  return Object.entries(APP_SETTINGS)
    .map(([key, spec]) => `  ${key}  ${spec.help}`)
    .join('\n');
}

/** 90s, 2m, 1m30s: as a person would type it back. */
function formatSeconds(total: number): string {
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  if (minutes === 0) return `${seconds}s`;
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

/** A duration in whole seconds: 90 (seconds), 90s, 2m, 1m30s, 1h. */
export function parseDurationSeconds(key: string, value: string): number {
  const text = value.trim().toLowerCase();
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text);
  const [hours, minutes, seconds] = (match?.slice(1) ?? []).map((part) => Number(part ?? 0));
  const total =
    match && text !== '' ? (hours ?? 0) * 3600 + (minutes ?? 0) * 60 + (seconds ?? 0) : Number.NaN;
  if (!Number.isFinite(total) || total <= 0) {
    throw new UsageError(`${key} must be a duration above 0 like 90, 90s or 2m, got '${value}'`);
  }
  return total;
}

function printInfo(ctx: Context, app: App): void {
  ctx.out.keyValues([
    ['name', app.name],
    ['status', ctx.out.paint(STATUS_STYLE[app.status] ?? 'bold', app.status)],
    ['release', orDash(app.release)],
    ['url', app.url],
    ['owner', app.owner],
    ['created', shortTime(app.createdAt)],
    ...limitPairs(app.limits),
    ...settingPairs(app.settings),
  ]);
  ctx.out.line();
  if (app.processes.length === 0) {
    ctx.out.line(`No processes running; deploy with 'petri deploy --app ${app.name}'`);
    return;
  }
  ctx.out.table(
    ['PROCESS', 'STATE', 'PORT', 'STARTED', 'RESTARTS'],
    app.processes.map((p) => [
      p.name,
      status(p.state),
      orDash(p.port),
      p.startedAt ? shortTime(p.startedAt) : '-',
      String(p.restarts),
    ]),
  );
}

function limitPairs(limits: Limits): [string, string][] {
  return [
    ['memory', `${limits.memoryMiB} MiB`],
    ['cpus', String(limits.cpus)],
    ['pids', String(limits.pids)],
    ['disk', `${limits.diskMiB} MiB`],
  ];
}

function status(value: AppStatus | ProcessState): Cell {
  return { text: value, style: STATUS_STYLE[value] };
}

const MEMORY_UNITS: Record<string, number> = {
  '': 1,
  m: 1,
  mi: 1,
  mib: 1,
  mb: 1,
  g: 1024,
  gi: 1024,
  gib: 1024,
  gb: 1024,
};

/** A memory size in MiB: 256, 256M, 256MiB, 1G, 1.5G. Megabytes are taken as mebibytes. */
export function parseMemory(value: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const factor = match ? MEMORY_UNITS[match[2]!.toLowerCase()] : undefined;
  const mib = match && factor ? Math.round(Number(match[1]) * factor) : Number.NaN;
  if (!Number.isFinite(mib) || mib <= 0) {
    throw new UsageError(`--memory must be a size like 256, 256M or 1G, got '${value}'`);
  }
  return mib;
}

function parseCpus(value: string): number {
  const cpus = Number(value);
  if (value.trim() === '' || !Number.isFinite(cpus) || cpus <= 0) {
    throw new UsageError(`--cpus must be a number of cores above 0 like 0.5 or 2, got '${value}'`);
  }
  return cpus;
}

function parsePids(value: string): number {
  const pids = Number(value);
  if (!/^\d+$/.test(value.trim()) || pids <= 0) {
    throw new UsageError(`--pids must be a whole number above 0 like 128, got '${value}'`);
  }
  return pids;
}
