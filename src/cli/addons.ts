// `petri addons`: an app's databases (PostgreSQL, MariaDB, Redis): create, inspect, rotate
// and destroy them, back them up, restore and download backups, and open the engine's
// client inside the app's sandbox. Changes that touch the config var wait for the release.
// Over 500 lines on purpose: one topic of the CLI, ten subcommands that share its option
// parsing, tables and release waits, as each other topic is one file.
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Command, CommanderError } from 'commander';
import type {
  Addon,
  AddonBackup,
  AddonBackupStatus,
  AddonServerState,
  AddonStatus,
  PetriClient,
  Release,
} from '../client/index.js';
import type { RunRequest } from '../client/run.js';
import { UserError } from '../lib/errors.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { type Cell, formatDuration, type Style, shortTime, UsageError, type Writer } from './output.js';
import { releaseFailure, WaitLine, waitForRelease } from './release-wait.js';
import { processTerminal, runAttached, type Terminal } from './run.js';
import { requireLogin } from './settings.js';

interface AppOptions {
  app?: string;
  json?: boolean;
}

const STATUS_STYLE: Record<AddonStatus, Style> = {
  ready: 'green',
  provisioning: 'yellow',
  destroying: 'yellow',
  destroyed: 'dim',
};

const SERVER_STYLE: Record<AddonServerState, Style | undefined> = {
  up: 'green',
  starting: 'yellow',
  down: 'red',
  idle: 'dim',
};

const BACKUP_STYLE: Record<AddonBackupStatus, Style | undefined> = {
  succeeded: undefined,
  running: 'yellow',
  failed: 'red',
};

export function registerAddons(program: Command, ctx: Context, terminal: Terminal = processTerminal()): void {
  const addons = program
    .command('addons')
    .description("an app's databases (postgres, mysql, redis): create, back up, restore, destroy");

  addons
    .command('list', { isDefault: true })
    .description("list the app's add-ons with their size and open connections (the default)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (opts: AppOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const list = await (await ctx.client()).listAddons(appName);
      if (opts.json) return ctx.out.json(list);
      if (list.addons.length === 0) {
        ctx.out.line(noAddons(appName, list.available));
        return;
      }
      ctx.out.table(
        ['NAME', 'TYPE', 'CONFIG VAR', 'STATUS', 'SIZE', 'CONNECTIONS', 'MODE'],
        list.addons.map((a) => [
          a.name,
          a.type,
          a.envVar,
          status(a.status),
          a.usage.bytes === null ? '?' : formatSize(a.usage.bytes),
          a.usage.connections === null ? '?' : String(a.usage.connections),
          a.mode,
        ]),
      );
      for (const a of list.addons) usageNote(ctx, a, list.addons.length > 1);
    });

  addons
    .command('servers')
    .description(
      "each engine's server: managed or external, its address, whether it answers, its add-ons (admins, auditors)",
    )
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const servers = await (await ctx.client()).addonServers();
      if (opts.json) return ctx.out.json(servers);
      if (servers.length === 0) {
        ctx.out.line('This Petri offers no add-ons: every engine is off');
        return;
      }
      ctx.out.table(
        ['ENGINE', 'MODE', 'ADDRESS', 'STATE', 'ADD-ONS'],
        servers.map((s): Cell[] => [
          s.type,
          s.mode,
          s.address,
          { text: s.error ? `${s.state}: ${s.error}` : s.state, style: SERVER_STYLE[s.state] },
          String(s.addons),
        ]),
      );
    });

  addons
    .command('create')
    .description('create a database for the app; its URL arrives in a new release, which this waits for')
    .argument('<type>', "postgres, mysql or redis ('petri addons' lists what this server offers)")
    .option(
      '--as <name>',
      'put the URL in NAME_URL and call the add-on name (default: DATABASE_URL, REDIS_URL)',
    )
    .addOption(appOption())
    .option('--json', 'print {addon, release} as JSON once the release ends')
    .action(async (type: string, opts: AppOptions & { as?: string }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const input = opts.as === undefined ? { type } : { type, as: opts.as };
      const { addon, release } = await progress(
        ctx,
        opts.json ? undefined : `Creating ${type} for ${appName}...`,
        () => client.createAddon(appName, input),
      );
      const what = `Created ${addonTitle(addon)} for ${appName}`;
      if (!opts.json) {
        ctx.out.line(
          release
            ? `${what}: ${addon.envVar} is set in ${release.version}`
            : `${what}: ${addon.envVar} will be set at the first deploy`,
        );
      }
      await serve(ctx, client, appName, release, opts.json, (final) => ({ addon, release: final }));
    });

  addons
    .command('info')
    .description('show one add-on: its config var, size, connections and last backup')
    .argument('<name>', 'the add-on')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (name: string, opts: AppOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const detail = await (await ctx.client()).getAddon(appName, name);
      if (opts.json) return ctx.out.json(detail);
      const { addon, lastBackup } = detail;
      const pairs: [string, string][] = [
        ['name', addon.name],
        ['type', addon.type],
        ['app', addon.app],
        ['config var', addon.envVar],
        ['mode', addon.mode],
        ['status', ctx.out.paint(STATUS_STYLE[addon.status] ?? 'bold', addon.status)],
        ['size', addon.usage.bytes === null ? '?' : formatSize(addon.usage.bytes)],
        ['connections', addon.usage.connections === null ? '?' : String(addon.usage.connections)],
        ['created', shortTime(addon.createdAt)],
        ['backups', String(detail.backups)],
        ['last backup', lastBackup ? backupSummary(lastBackup) : 'none yet'],
      ];
      if (addon.rotating) pairs.push(['rotating', 'old password valid until the new release serves']);
      ctx.out.keyValues(pairs);
      usageNote(ctx, addon, false);
    });

  addons
    .command('destroy')
    .description('delete an add-on and its data, after a final backup; its config var goes in a new release')
    .argument('<name>', 'the add-on')
    .option('--confirm <name>', 'the name again, to show you mean it')
    .addOption(appOption())
    .option('--json', 'print {backup, release} as JSON once the release ends')
    .action(async (name: string, opts: AppOptions & { confirm?: string }) => {
      // Checked here as well as by the server, so a missing flag costs no request.
      if (opts.confirm !== name) {
        const got = opts.confirm === undefined ? '' : ` (--confirm was '${opts.confirm}')`;
        const app = opts.app === undefined ? '' : ` -a ${opts.app}`;
        throw new UsageError(
          `destroying add-on '${name}' deletes its data (a final backup is kept)${got}; to confirm, run: petri addons destroy ${name}${app} --confirm ${name}`,
        );
      }
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      // The answer names the final backup and the release, not the config var: ask first.
      const { addon } = await client.getAddon(appName, name);
      const { backup, release } = await progress(
        ctx,
        opts.json ? undefined : `Destroying ${name} (a final backup first)...`,
        () => client.destroyAddon(appName, name, name),
      );
      if (!opts.json) {
        const kept = backup.expiresAt ? ` kept until ${shortTime(backup.expiresAt).slice(0, 10)}` : ' kept';
        const removed = release
          ? `${addon.envVar} removed in ${release.version}`
          : `${addon.envVar} removed from the config`;
        ctx.out.line(`Destroyed ${name}: final backup ${backup.id} (${sizeOf(backup)})${kept}; ${removed}`);
      }
      await serve(ctx, client, appName, release, opts.json, (final) => ({ backup, release: final }));
    });

  addons
    .command('rotate')
    .description('give the add-on a new password in a new release; the old one is revoked once it serves')
    .argument('<name>', 'the add-on')
    .addOption(appOption())
    .option('--json', 'print {addon, release} as JSON once the release ends')
    .action(async (name: string, opts: AppOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const { addon, release } = await progress(
        ctx,
        opts.json ? undefined : `Rotating the password of ${name}...`,
        () => client.rotateAddon(appName, name),
      );
      if (!opts.json) {
        ctx.out.line(
          release
            ? `New password for ${name} in ${release.version}; the old one is revoked once ${release.version} serves`
            : `New password for ${name}; the old one is revoked shortly (${appName} has no release that uses it)`,
        );
      }
      await serve(ctx, client, appName, release, opts.json, (final) => ({ addon, release: final }));
    });

  addons
    .command('backup')
    .description('back the add-on up now (kept while the add-on lives)')
    .argument('<name>', 'the add-on')
    .addOption(appOption())
    .option('--json', 'print the backup as JSON')
    .action(async (name: string, opts: AppOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const started = Date.now();
      const backup = await progress(
        ctx,
        opts.json ? undefined : `Backing up ${name}...`,
        () => client.backupAddon(appName, name),
        (b) => `done: ${b.id}, ${sizeOf(b)} in ${formatDuration(tookMs(b, started))}`,
      );
      if (opts.json) ctx.out.json(backup);
    });

  addons
    .command('backups')
    .description("list an add-on's backups, newest first; --all: every backup on the server (admins)")
    .argument('[name]', 'the add-on (none with --all)')
    .option('--all', "every app's backups, destroyed add-ons' included (admins)")
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, opts: AppOptions & { all?: boolean }) => {
      if (opts.all && name !== undefined) {
        throw new UsageError(`--all lists every backup: leave out '${name}', or leave out --all`);
      }
      if (!opts.all && name === undefined) {
        throw new UsageError('name the add-on: petri addons backups NAME (or, for admins, --all)');
      }
      const appName = name === undefined ? undefined : await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const list =
        appName === undefined || name === undefined
          ? await client.listAllBackups()
          : await client.listAddonBackups(appName, name);
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line(
          name === undefined
            ? 'No add-on backups on this server yet'
            : `${name} has no backups yet; take one with 'petri addons backup ${name} -a ${appName}'`,
        );
        return;
      }
      const where = (b: AddonBackup): Cell[] => (opts.all ? [b.app, b.addon] : []);
      ctx.out.table(
        ['ID', ...(opts.all ? ['APP', 'ADD-ON'] : []), 'KIND', 'STATUS', 'SIZE', 'CREATED', 'EXPIRES', 'BY'],
        list.map((b) => [
          b.id,
          ...where(b),
          b.kind,
          { text: b.status, style: BACKUP_STYLE[b.status] },
          sizeOf(b),
          shortTime(b.createdAt),
          b.expiresAt ? shortTime(b.expiresAt) : '-',
          b.createdBy,
        ]),
      );
      for (const b of list) {
        if (b.status === 'failed' && b.error)
          ctx.out.line(ctx.out.paint('dim', `${b.id} failed: ${b.error}`));
      }
    });

  addons
    .command('restore')
    .description("replace the add-on's data with a backup; what was there goes in a new backup first")
    .argument('<name>', 'the add-on')
    .argument('<backup>', "the backup, e.g. b12 (see 'petri addons backups NAME')")
    .addOption(appOption())
    .option('--json', 'print {restored, safetyBackup} as JSON')
    .action(async (name: string, given: string, opts: AppOptions) => {
      const backupId = parseBackupId(given);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const result = await progress(
        ctx,
        opts.json ? undefined : `Restoring ${backupId} into ${name} (what is there is backed up first)...`,
        () => client.restoreAddon(appName, name, backupId),
      );
      if (opts.json) return ctx.out.json(result);
      ctx.out.line(
        `Restored ${result.restored} into ${name}; what was there before is in backup ${result.safetyBackup.id}`,
      );
    });

  addons
    .command('download')
    .description(
      "write a backup's dump to a file or to stdout (pg_dump custom format, SQL, or redis-cli --pipe)",
    )
    .usage('[NAME] BACKUP [options]')
    .argument('[name]', 'the add-on; leave it out (admins) to fetch any backup by its id')
    .argument('[backup]', 'the backup, e.g. b12')
    .option('-o, --output <file>', 'write to FILE (FILE.partial until it is complete)')
    .addOption(appOption())
    .addHelpText(
      'after',
      '\nExamples:\n  petri addons download postgres b12 -a blog -o blog.pgdump\n  petri addons download b12 > any.dump   (admins)',
    )
    .action(
      async (
        first: string | undefined,
        second: string | undefined,
        opts: AppOptions & { output?: string },
      ) => {
        if (first === undefined) {
          throw new UsageError('name the backup: petri addons download [NAME] BACKUP [-o FILE]');
        }
        const [name, given] = second === undefined ? [undefined, first] : [first, second];
        const backupId = parseBackupId(given);
        if (name === undefined && opts.app !== undefined) {
          throw new UsageError(
            `name the add-on too: petri addons download NAME ${backupId} -a ${opts.app} (without NAME and -a, admins get any backup)`,
          );
        }
        // Checked before asking, so nothing binary ever reaches a terminal.
        if (opts.output === undefined && ctx.io.stdout.isTTY === true) {
          throw new UsageError('the dump is binary: redirect it (> file) or use -o FILE');
        }
        const appName = name === undefined ? undefined : await resolveAppName(opts.app, [ctx.io.cwd]);
        const client = await ctx.client();
        const body = await client.downloadBackup(appName, name, backupId, { signal: ctx.signal });
        if (opts.output === undefined) {
          await pour(body, ctx.io.stdout, ctx.signal);
          return;
        }
        const bytes = await writeFileAtomically(body, path.resolve(ctx.io.cwd, opts.output));
        ctx.out.note(`Wrote ${opts.output} (${formatSize(bytes)})`);
      },
    );

  addons
    .command('shell')
    .description("open the engine's client (psql, mariadb, redis-cli) as the app, in the app's sandbox")
    .argument('<name>', 'the add-on')
    .addOption(appOption())
    .option('--no-tty', 'no terminal even when this is one (e.g. to pipe SQL in)')
    .action(async (name: string, opts: { app?: string; tty: boolean }) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const { addon, shell } = await (await ctx.client()).getAddon(appName, name);
      if (shell.length === 0) {
        throw new UserError(
          'conflict',
          `${name} is ${addon.status}, not ready for a shell yet; try again once 'petri addons info ${name} -a ${appName}' says ready`,
        );
      }
      const login = requireLogin(await ctx.settings());
      // As `petri run` decides: a terminal only when both ends are one.
      const tty = opts.tty !== false && terminal.stdin.isTTY === true && terminal.stdout.isTTY === true;
      const request: RunRequest = { app: appName, command: shell, tty };
      if (tty && terminal.stdout.columns && terminal.stdout.rows) {
        request.cols = terminal.stdout.columns;
        request.rows = terminal.stdout.rows;
      }
      const code = await runAttached(login, request, terminal);
      // Commander's way for a subcommand to set the exit code; main.ts returns it as is.
      if (code !== 0) throw new CommanderError(code, 'commander.executeSubCommandAsync', `exit ${code}`);
    });
}

function noAddons(appName: string, available: string[]): string {
  if (available.length === 0) return `${appName} has no add-ons, and this server offers none`;
  const example = available.includes('postgres') ? 'postgres' : available[0];
  return `${appName} has no add-ons; create one with 'petri addons create ${example} -a ${appName}' (available: ${available.join(', ')})`;
}

/** A dim line under the table or block when the engine could not say how big the add-on is. */
function usageNote(ctx: Context, addon: Addon, named: boolean): void {
  if (addon.usage.error === undefined) return;
  const which = named ? ` for ${addon.name}` : '';
  ctx.out.line(ctx.out.paint('dim', `size unknown${which}: ${addon.usage.error}`));
}

function status(value: AddonStatus): Cell {
  return { text: value, style: STATUS_STYLE[value] };
}

/** `postgres`, or `redis 'cache'` when the add-on was named with --as. */
function addonTitle(addon: Addon): string {
  return addon.name === addon.type ? addon.type : `${addon.type} '${addon.name}'`;
}

function backupSummary(b: AddonBackup): string {
  return `${b.id}, ${shortTime(b.finishedAt ?? b.createdAt)}, ${sizeOf(b)}`;
}

function sizeOf(b: AddonBackup): string {
  return b.sizeBytes === null ? '-' : formatSize(b.sizeBytes);
}

/** How long the backup took by the server's clock, or by ours when it gave no end. */
function tookMs(b: AddonBackup, startedHere: number): number {
  const took = b.finishedAt ? Date.parse(b.finishedAt) - Date.parse(b.createdAt) : Number.NaN;
  return Number.isFinite(took) && took >= 0 ? took : Date.now() - startedHere;
}

/** Bytes, KiB, MiB, GiB with a tenth: dumps and small databases are often below a MiB. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** `b12` or `12`, as `b12`: checked here so a typo costs no request. */
export function parseBackupId(value: string): string {
  const match = /^b?([1-9][0-9]{0,12})$/i.exec(value.trim());
  if (!match) {
    throw new UsageError(`a backup id looks like b12 (see 'petri addons backups NAME'), got '${value}'`);
  }
  return `b${match[1]}`;
}

/**
 * Runs a request that gives no news while it works (provisioning, a backup) under a line
 * that says what is happening; on a TTY it counts the seconds by this side's clock. `done`
 * finishes the line with a result; without it the line is wiped for the caller's own.
 */
async function progress<T>(
  ctx: Context,
  text: string | undefined,
  work: () => Promise<T>,
  done?: (result: T) => string,
): Promise<T> {
  if (text === undefined) return work();
  const line = new WaitLine(ctx.out, text, true);
  line.start();
  const started = Date.now();
  const timer = setInterval(() => line.tick(Date.now() - started), 250);
  let result: T;
  try {
    result = await work();
  } catch (err) {
    // On a TTY the open line is finished first, so the error does not land in its middle.
    if (ctx.out.isTTY) line.end(ctx.out.paint('red', 'failed'));
    throw err;
  } finally {
    clearInterval(timer);
  }
  line.end(done?.(result));
  return result;
}

/**
 * Waits for the release that carries the add-on's config var, as `petri config set` does,
 * prints the JSON (`json` builds it from the release as it ended), and turns a failed
 * release into the error. Without a release there is nothing to wait for.
 */
async function serve(
  ctx: Context,
  client: PetriClient,
  appName: string,
  created: Release | null,
  json: boolean | undefined,
  toJson: (release: Release | null) => unknown,
): Promise<void> {
  if (created === null) {
    if (json) ctx.out.json(toJson(null));
    return;
  }
  const line = json
    ? undefined
    : new WaitLine(ctx.out, `Restarting ${appName} with ${created.version}...`, true);
  line?.start();
  const release = await waitForRelease(client, appName, created, {
    signal: ctx.signal,
    onPending: (elapsed) => line?.tick(elapsed),
  });
  if (json) ctx.out.json(toJson(release));
  if (release.status === 'failed') {
    if (ctx.out.isTTY) line?.end(ctx.out.paint('red', 'failed'));
    throw releaseFailure(ctx.out, appName, release);
  }
  line?.end(`done, ${release.version}`);
}

/** The part of stdout a dump needs: bytes in, and 'drain' when it asked us to wait. */
interface ByteSink {
  write(chunk: Uint8Array): unknown;
  once?: unknown;
}

/** Copies the dump to stdout chunk by chunk, waiting whenever stdout is full. */
async function pour(body: Readable, stdout: Writer, signal: AbortSignal): Promise<void> {
  // Io's stdout takes bytes too: process.stdout does, and so does any sink a caller passes.
  const sink = stdout as unknown as ByteSink;
  try {
    for await (const chunk of body) {
      const full = sink.write(chunk as Buffer) === false;
      if (full && typeof sink.once === 'function') {
        await once(sink as unknown as NodeJS.EventEmitter, 'drain', { signal });
      }
    }
  } catch (err) {
    if (signal.aborted) return; // stdout went away (`| head`): nobody is left to tell
    throw err;
  }
}

/** Writes FILE.partial and renames it, so FILE is only ever a whole dump; returns its size. */
async function writeFileAtomically(body: Readable, file: string): Promise<number> {
  const partial = `${file}.partial`;
  try {
    // 0600: a dump holds the app's data.
    await pipeline(body, createWriteStream(partial, { mode: 0o600 }));
    const { size } = await stat(partial);
    await rename(partial, file);
    return size;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}
