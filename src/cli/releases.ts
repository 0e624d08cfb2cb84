// `petri releases` and `petri rollback`: an app's history of releases (deploys, config
// changes, rollbacks), one release in detail, and going back to an earlier one.
import type { Command } from 'commander';
import type { Release, ReleaseStatus } from '../client/index.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { type Cell, formatDuration, type Style, shortTime, UsageError } from './output.js';
import { releaseFailure, WaitLine, waitForRelease } from './release-wait.js';

interface ListOptions {
  app?: string;
  json?: boolean;
  number?: number;
}

interface InfoOptions {
  app?: string;
  json?: boolean;
}

const STATUS_STYLE: Record<ReleaseStatus, Style> = {
  succeeded: 'dim',
  pending: 'yellow',
  failed: 'red',
};

export function registerReleases(program: Command, ctx: Context): void {
  const releases = program.command('releases').description("list an app's releases, or show one");

  releases
    .command('list', { isDefault: true })
    .description('list releases, newest first (the default)')
    .addOption(appOption())
    .option('-n, --number <n>', 'show only the newest N', parseCount)
    .option('--json', 'print JSON')
    .action(async (opts: ListOptions) => {
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const all = await (await ctx.client()).listReleases(appName);
      const list = opts.number === undefined ? all : all.slice(0, opts.number);
      if (opts.json) return ctx.out.json(list);
      if (list.length === 0) {
        ctx.out.line(`${appName} has no releases yet; deploy with 'petri deploy -a ${appName}'`);
        return;
      }
      const now = Date.now();
      ctx.out.table(
        ['VERSION', 'DESCRIPTION', 'BY', 'WHEN', 'STATUS'],
        list.map((r) => [r.version, r.description, r.createdBy, relativeTime(r.createdAt, now), status(r)]),
      );
    });

  releases
    .command('info')
    .description('show one release, with why it failed if it did')
    .argument('<version>', 'the release, e.g. v3')
    .addOption(appOption())
    .option('--json', 'print JSON')
    .action(async (given: string, opts: InfoOptions) => {
      const version = parseVersion(given);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const release = await (await ctx.client()).getRelease(appName, version);
      if (opts.json) return ctx.out.json(release);
      const pairs: [string, string][] = [
        ['version', release.version],
        ['status', ctx.out.paint(STATUS_STYLE[release.status], release.status)],
        ['current', release.current ? 'yes, serving now' : 'no'],
        ['kind', release.kind],
        ['description', release.description],
        ['by', release.createdBy],
        ['created', `${shortTime(release.createdAt)} (${relativeTime(release.createdAt, Date.now())})`],
      ];
      if (release.error !== null) pairs.push(['error', release.error]);
      ctx.out.keyValues(pairs);
    });

  program
    .command('rollback')
    .description('release an earlier version again (its build and config); waits until it serves')
    .argument('[version]', 'the release to go back to, e.g. v3 (default: the one before the current)')
    .addOption(appOption())
    .option('--json', 'print only the new release, as JSON, once it ends')
    .action(async (given: string | undefined, opts: InfoOptions) => {
      // The time a person waited: from the command's start, not the server's clock.
      const started = Date.now();
      const version = given === undefined ? undefined : parseVersion(given);
      const appName = await resolveAppName(opts.app, [ctx.io.cwd]);
      const client = await ctx.client();
      const created = await client.rollback(appName, version);
      const target = version ?? rollbackTarget(created);
      const to = target ? ` to ${target}` : '';
      const line = opts.json ? undefined : new WaitLine(ctx.out, `Rolling back ${appName}${to}...`, false);
      line?.start();
      const release = await waitForRelease(client, appName, created, {
        signal: ctx.signal,
        onPending: (elapsed) => line?.tick(elapsed),
      });
      if (opts.json) ctx.out.json(release);
      if (release.status === 'failed') {
        line?.end(ctx.out.paint('red', 'failed'));
        throw releaseFailure(ctx.out, appName, release);
      }
      line?.end();
      if (!opts.json) {
        ctx.out.line(`Rolled back${to} as ${release.version} in ${formatDuration(Date.now() - started)}`);
      }
    });
}

function status(release: Release): Cell {
  // Only a succeeded release can serve, so `current` says both.
  if (release.current) return { text: 'current', style: 'green' };
  return { text: release.status, style: STATUS_STYLE[release.status] };
}

/** The version a rollback returns to, from its description ("Rollback to v2"). */
function rollbackTarget(release: Release): string | undefined {
  return /\bto (v\d+)\b/.exec(release.description)?.[1];
}

/** `v3`, or just `3`. */
export function parseVersion(value: string): string {
  const match = /^v?(\d+)$/i.exec(value.trim());
  if (!match) throw new UsageError(`expected a release version like v3, got '${value}'`);
  return `v${Number(match[1])}`;
}

function parseCount(value: string): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) === 0) {
    throw new UsageError(`-n must be a whole number above 0 like 10, got '${value}'`);
  }
  return Number(value);
}

/** "3 minutes ago" up to a month back; older than that, the date. */
export function relativeTime(iso: string, now: number): string {
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return iso;
  const seconds = Math.floor((now - then) / 1000);
  // A clock a little ahead of ours is still "just now", not "in 2 seconds".
  if (seconds < 10) return 'just now';
  if (seconds < 60) return `${seconds} seconds ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return ago(minutes, 'minute');
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return ago(hours, 'hour');
  const days = Math.floor(hours / 24);
  if (days < 30) return ago(days, 'day');
  return shortTime(iso).slice(0, 10);
}

function ago(count: number, unit: string): string {
  return `${count} ${unit}${count === 1 ? '' : 's'} ago`;
}
