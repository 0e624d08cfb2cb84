// `petri apps`: list, create, inspect, size, put to sleep, wake and destroy apps.
import type { Command } from 'commander';
// The error class alone: the client's index loads its HTTP stack (see main.ts).
import { ConnectionError } from '../client/errors.js';
import type { App, AppSettings, AppStatus, Limits, PetriClient, Process } from '../client/index.js';
import { UserError } from '../lib/errors.js';
import { sleep } from '../lib/until.js';
import { appOption, resolveAppName } from './app-name.js';
import { listApps, STATUS_STYLE, status } from './apps-list.js';
import type { Context } from './context.js';
import { EXPERIMENT_KEYS, experimentInfo, experimentPairs, registerApprove } from './describe.js';
import { formatDuration, type Output, orDash, shortTime, UsageError } from './output.js';
import { POLL_INTERVAL_MS, WaitLine, type WaitOptions } from './release-wait.js';
import { registerRenew } from './renew.js';

// Waking starts processes that were running before, with no build and no release phase:
// their boot timeout (60 s by default) is the wait a person expects, so the same here.
export const WAKE_TIMEOUT_MS = 60_000;

interface AppOptions {
  app?: string;
  json?: boolean;
}

export function registerApps(program: Command, ctx: Context): void {
  const apps = program.command('apps').description('list, create, inspect, sleep, wake and destroy apps');
  registerRenew(apps, ctx);

  apps
    .command('list', { isDefault: true })
    .description('list the apps you can see (the default)')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => listApps(ctx, opts));

  apps
    .command('create')
    .description('create an app, ready for its first deploy')
    .argument('<name>', 'lowercase letters, digits and dashes')
    .option('--team <team>', 'the team it belongs to (default: your personal team)')
    .option('--description <text>', 'what the experiment is, in a sentence or two')
    .option('--data <class>', 'the data it holds: none (default), anonymous, personal or sensitive')
    .option('--privacy <text>', 'for personal or sensitive data: what is collected, and why')
    .option('--retention <days>', 'for personal or sensitive data: how long it is kept (30d, 12w, 1y)')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        opts: {
          team?: string;
          description?: string;
          data?: string;
          privacy?: string;
          retention?: string;
          json?: boolean;
        },
      ) => {
        const { team, json, ...describe } = opts;
        const app = await (await ctx.client()).createApp(name, team, describe);
        if (opts.json) return ctx.out.json(app);
        ctx.out.line(`Created ${app.name} in team ${app.team}: ${app.url}`);
        if (app.experiment.expiresAt) {
          ctx.out.line(
            `It is an experiment until ${app.experiment.expiresAt.slice(0, 10)} (data: ${app.experiment.dataClass}); 'petri apps renew ${app.name}' extends it`,
          );
        }
        ctx.out.line(`Deploy it with 'petri deploy --app ${app.name}' from its directory`);
      },
    );

  apps
    .command('transfer')
    .description('move an app to another team (its admins may; its owner stays)')
    .argument('<name>', 'the app')
    .requiredOption('--team <team>', 'the team it moves to (you must be a member or admin there)')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { team: string; json?: boolean }) => {
      const app = await (await ctx.client()).transferApp(name, opts.team);
      if (opts.json) return ctx.out.json(app);
      ctx.out.line(`Moved ${app.name} to team ${app.team}`);
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
    .command('sleep')
    .description("stop an app's processes now; its route stays, and the first request wakes it")
    .argument('[name]', 'the app (default: --app, or the name in ./petri.toml)')
    .addOption(appOption())
    .option('--json', 'print the app as JSON')
    .action(async (name: string | undefined, opts: AppOptions) => {
      const appName = await appNameOf(ctx, name, opts);
      const app = await (await ctx.client()).sleepApp(appName);
      if (opts.json) return ctx.out.json(app);
      ctx.out.line(`${app.name} is asleep: its processes are stopped; the first request wakes it`);
    });

  apps
    .command('wake')
    .description("start a sleeping app's processes, and wait until it runs")
    .argument('[name]', 'the app (default: --app, or the name in ./petri.toml)')
    .addOption(appOption())
    .option('--json', 'print the app as JSON once it runs (or failed to)')
    .action(async (name: string | undefined, opts: AppOptions) => {
      const appName = await appNameOf(ctx, name, opts);
      const client = await ctx.client();
      const woken = await client.wakeApp(appName);
      const line = opts.json ? undefined : new WaitLine(ctx.out, `Waking ${appName}...`, true);
      line?.start();
      let app: App;
      try {
        app = await waitForWake(client, appName, woken, {
          signal: ctx.signal,
          onPending: (elapsed) => line?.tick(elapsed),
        });
      } catch (err) {
        // On a TTY the open line is finished first, so the error does not land in its middle.
        if (ctx.out.isTTY) line?.end(ctx.out.paint('red', 'failed'));
        throw err;
      }
      if (opts.json) ctx.out.json(app);
      if (app.status !== 'running') {
        if (ctx.out.isTTY) line?.end(ctx.out.paint('red', 'failed'));
        throw await wakeFailure(ctx.out, client, app);
      }
      line?.end();
      if (!opts.json) ctx.out.line(`${app.name} is awake${upText(app)}`);
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
    .description(`show an app's settings, or change them: ${SET_KEYS.join(', ')}`)
    .argument('<name>', 'the app')
    .argument('[pairs...]', `KEY=VALUE, KEY one of ${SET_KEYS.join(', ')}`)
    .option('--json', 'print JSON (the settings; the whole app when an experiment key is given)')
    .addHelpText('after', `\nSettings:\n${settingsHelp()}`)
    .action(async (name: string, pairs: string[], opts: { json?: boolean }) => {
      const { experiment, rest } = experimentPairs(pairs);
      const settings = parseSettings(rest);
      const client = await ctx.client();
      const described = Object.keys(experiment).length > 0;
      let app = described ? await client.updateExperiment(name, experiment) : undefined;
      if (Object.keys(settings).length > 0) app = await client.updateApp(name, { settings });
      app ??= await client.getApp(name);
      if (opts.json) return ctx.out.json(described ? app : app.settings);
      ctx.out.keyValues([...settingPairs(app.settings), ...(described ? experimentInfo(app) : [])]);
    });

  registerApprove(apps, ctx);
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
  idle: {
    help: 'how long without a request before the app sleeps (the first request wakes it): 15m, 1h, 90s, never',
    apply: (value, into) => {
      into.idleTimeoutSeconds = NEVER.has(value.trim().toLowerCase())
        ? null
        : parseDurationSeconds('idle', value, 'a duration like 15m, 1h or 90s, or never');
    },
    // null is never; so is a server from before idle timeouts, which sends nothing.
    show: (settings) =>
      settings.idleTimeoutSeconds == null ? 'never' : formatIdle(settings.idleTimeoutSeconds),
  },
};

/** Every key of `petri apps set`: the settings, then the experiment's (cli/describe.ts). */
const SET_KEYS = [...Object.keys(APP_SETTINGS), ...Object.keys(EXPERIMENT_KEYS)];

// '0' reads as "no timeout", as in most tools, rather than "sleep at once".
const NEVER = new Set(['never', 'off', '0']);

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
      throw new UsageError(`unknown setting '${key}'; the settings are: ${SET_KEYS.join(', ')}`);
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
  const help: [string, string][] = [
    ...Object.entries(APP_SETTINGS).map(([key, spec]): [string, string] => [key, spec.help]),
    ...Object.entries(EXPERIMENT_KEYS),
  ];
  const width = Math.max(...help.map(([key]) => key.length));
  return help.map(([key, text]) => `  ${key.padEnd(width)}  ${text}`).join('\n');
}

/** 90s, 2m, 1m30s: as a person would type it back. */
function formatSeconds(total: number): string {
  const minutes = Math.floor(total / 60);
  const seconds = total % 60;
  if (minutes === 0) return `${seconds}s`;
  return seconds === 0 ? `${minutes}m` : `${minutes}m${seconds}s`;
}

/**
 * An idle timeout as a person would type it back, in the largest units that fit: 30m, 1h,
 * 1h30m; under ten minutes, seconds that are not whole minutes stay seconds (90s, not 1m30s).
 */
export function formatIdle(total: number): string {
  if (total < 600 && total % 60 !== 0) return `${total}s`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  return [hours && `${hours}h`, minutes && `${minutes}m`, seconds && `${seconds}s`].filter(Boolean).join('');
}

/** A duration in whole seconds: 90 (seconds), 90s, 2m, 1m30s, 1h. */
export function parseDurationSeconds(
  key: string,
  value: string,
  expected = 'a duration above 0 like 90, 90s or 2m',
): number {
  const text = value.trim().toLowerCase();
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$/.exec(text);
  const [hours, minutes, seconds] = (match?.slice(1) ?? []).map((part) => Number(part ?? 0));
  const total =
    match && text !== '' ? (hours ?? 0) * 3600 + (minutes ?? 0) * 60 + (seconds ?? 0) : Number.NaN;
  if (!Number.isFinite(total) || total <= 0) {
    throw new UsageError(`${key} must be ${expected}, got '${value}'`);
  }
  return total;
}

function printInfo(ctx: Context, app: App): void {
  const asleep: [string, string][] = app.sleepingSince
    ? [['sleeping since', shortTime(app.sleepingSince)]]
    : [];
  ctx.out.keyValues([
    ['name', app.name],
    ['status', ctx.out.paint(STATUS_STYLE[app.status] ?? 'bold', app.status)],
    ...asleep,
    ['release', orDash(app.release)],
    ['url', app.url],
    ['owner', app.owner],
    ['team', app.team],
    ['created', shortTime(app.createdAt)],
    ...experimentInfo(app),
    ...limitPairs(app.limits),
    ...settingPairs(app.settings),
  ]);
  ctx.out.line();
  if (app.processes.length === 0) {
    ctx.out.line(
      app.status === 'sleeping'
        ? `No processes running: ${app.name} is asleep; the first request wakes it, or 'petri apps wake ${app.name}'`
        : `No processes running; deploy with 'petri deploy --app ${app.name}'`,
    );
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

/** NAME as an argument, else -a/--app, else the name in petri.toml; the argument and the flag must agree. */
async function appNameOf(ctx: Context, given: string | undefined, opts: AppOptions): Promise<string> {
  if (given !== undefined && opts.app !== undefined && given !== opts.app) {
    throw new UsageError(`two apps given, '${given}' and --app '${opts.app}'; give one`);
  }
  return resolveAppName(given ?? opts.app, [ctx.io.cwd]);
}

/**
 * Still on its way up. The server answers a wake at once: asleep until it is marked awake,
 * then down until a web process listens (down is also how a truly stopped app reads, so
 * that one only ends at the deadline). Crashed, running and new end the wait.
 */
function waking(status: AppStatus): boolean {
  return status === 'sleeping' || status === 'deploying' || status === 'down';
}

/** Polls the app until it is no longer waking (running, or crashed, down...) and returns it. */
export async function waitForWake(
  client: PetriClient,
  appName: string,
  app: App,
  options: WaitOptions = {},
): Promise<App> {
  const { intervalMs = POLL_INTERVAL_MS, timeoutMs = WAKE_TIMEOUT_MS } = options;
  const started = Date.now();
  let now = app;
  let lostConnection: ConnectionError | undefined;
  while (waking(now.status)) {
    if (Date.now() - started >= timeoutMs) {
      const why = lostConnection ? ` (${lostConnection.message})` : '';
      throw new UserError(
        'unavailable',
        `${appName} is still ${now.status} after ${formatDuration(timeoutMs)}${why}; it goes on on the server: check 'petri ps -a ${appName}' and 'petri logs -a ${appName}'`,
      );
    }
    if (options.signal?.aborted) throw new UserError('unavailable', `stopped waiting for ${appName} to wake`);
    await sleep(intervalMs);
    try {
      now = await client.getApp(appName);
      lostConnection = undefined;
    } catch (err) {
      // A server restarting under us has not failed the wake: keep asking until the deadline.
      if (!(err instanceof ConnectionError)) throw err;
      lostConnection = err;
    }
    if (waking(now.status)) options.onPending?.(Date.now() - started);
  }
  return now;
}

/**
 * The error a wake that ended short of running exits with: a crashed process's exit says
 * why, on the `error:` line, and its last lines of output are shown above it.
 */
async function wakeFailure(out: Output, client: PetriClient, app: App): Promise<UserError> {
  if (app.status === 'new') {
    return new UserError(
      'bad_request',
      `${app.name} has no release to run yet; deploy it with 'petri deploy -a ${app.name}'`,
    );
  }
  let crashed: Process | undefined;
  try {
    crashed = (await client.listProcesses(app.name)).processes.find((p) => p.state === 'crashed');
  } catch {
    // The reason is a help, not the news: that the app did not wake is the error to report.
  }
  for (const line of crashed?.lastLines ?? []) out.note(`  | ${line}`);
  const reason = crashed ? `${crashed.name} ${crashed.lastExit ?? 'crashed'}` : `it is ${app.status}`;
  return new UserError('unavailable', `${app.name} did not wake: ${reason}; see 'petri logs -a ${app.name}'`);
}

/** ` (web.1, web.2 up)`: what serves now; nothing when no process is up. */
function upText(app: App): string {
  const up = app.processes.filter((p) => p.state === 'up').map((p) => p.name);
  return up.length > 0 ? ` (${up.join(', ')} up)` : '';
}

function limitPairs(limits: Limits): [string, string][] {
  return [
    ['memory', `${limits.memoryMiB} MiB`],
    ['cpus', String(limits.cpus)],
    ['pids', String(limits.pids)],
    ['disk', `${limits.diskMiB} MiB`],
  ];
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
