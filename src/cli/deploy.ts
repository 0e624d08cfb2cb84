// `petri deploy [DIR]`: pack the directory, upload it, and follow the build and release
// live until the deploy ends; the exit code says whether the new release serves.
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
// The error classes alone, not the client's index: that loads its HTTP stack, which a
// command loads when it first talks to the API (context.ts), not when the CLI starts.
import { ConnectionError } from '../client/errors.js';
import type { Deploy, DeployStatus, PetriClient } from '../client/index.js';
import { UserError } from '../lib/errors.js';
import { appOption, resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { formatDuration, UsageError } from './output.js';

// Wide enough for `release`, so build and release lines line up.
const SOURCE_WIDTH = 7;
// How often a TTY asks for the deploy's status, to say when the build gave way to the release.
const PHASE_POLL_MS = 1000;

interface DeployOptions {
  app?: string;
  json?: boolean;
  /** commander's --no-cache: false when given. */
  cache?: boolean;
}

export function registerDeploy(program: Command, ctx: Context): void {
  program
    .command('deploy')
    .description('upload a directory, build it and release it; follows the build live')
    .argument('[dir]', 'the app directory', '.')
    .addOption(appOption())
    .option('--json', 'print only the final deploy as JSON')
    .option('--no-cache', 'build from scratch: reinstall dependencies, empty the build cache')
    .action((dir: string, opts: DeployOptions) => deploy(ctx, dir, opts));
}

async function deploy(ctx: Context, dir: string, opts: DeployOptions): Promise<void> {
  const { out } = ctx;
  const absDir = path.resolve(ctx.io.cwd, dir);
  const info = await stat(absDir).catch(() => undefined);
  if (!info?.isDirectory()) throw new UsageError(`no such directory: ${dir}`);
  // The app's own petri.toml names it, wherever the command is run from.
  const appName = await resolveAppName(opts.app, [absDir, ctx.io.cwd]);
  const client = await ctx.client();

  // tar and the ignore rules: loaded by the command that packs, not by every command.
  const { packDirectory } = await import('./pack.js');
  const packed = await packDirectory(absDir);
  for (const warning of packed.warnings) out.warn(warning);
  // Read whole before sending: the size is shown first, and the server caps uploads anyway.
  const archive = await collect(packed.stream);
  const files = packed.files.length;
  if (!opts.json) {
    out.line(`Uploading ${dir} (${files} ${files === 1 ? 'file' : 'files'}, ${kib(archive.length)} KiB)...`);
  }

  const started = await client.deploy(appName, archive, { noCache: opts.cache === false });
  const final = await follow(ctx, client, started, !opts.json);

  if (opts.json) out.json(final);
  if (final.status !== 'succeeded') {
    throw new UserError('deploy_failed', final.error ?? `deploy ${final.id} ended ${final.status}`);
  }
  if (!opts.json) {
    const took = final.durationMs ?? elapsed(final);
    const release = final.release ? ` ${final.release}` : '';
    out.line(
      `Deployed ${appName}${release}${took === undefined ? '' : ` in ${formatDuration(took)}`}: ${final.url}`,
    );
  }
}

/** Prints the deploy's output as it comes and returns the deploy as it ended. */
async function follow(ctx: Context, client: PetriClient, started: Deploy, print: boolean): Promise<Deploy> {
  const { out } = ctx;
  const phases = print && out.isTTY ? new PhaseReporter(ctx, client, started) : undefined;
  try {
    for await (const event of client.streamDeploy(started.app, started.id, { signal: ctx.signal })) {
      if (event.type === 'end') return event.deploy;
      if (event.type !== 'log') continue; // a newer server may send more kinds; they are not for us
      if (event.source === 'release') phases?.show('releasing');
      if (print) out.line(`${out.paint('dim', `${event.source.padEnd(SOURCE_WIDTH)} |`)} ${event.text}`);
    }
  } catch (err) {
    // A dropped stream is not a failed deploy: fall through and ask the server below.
    if (!(err instanceof ConnectionError)) throw err;
  } finally {
    phases?.stop();
  }
  // The stream closed without its end event (a restart of the server, a proxy timeout):
  // the deploy goes on over there, so ask where it stands rather than guess.
  const now = await client.getDeploy(started.app, started.id);
  if (now.status === 'succeeded' || now.status === 'failed') return now;
  throw new UserError(
    'unavailable',
    `lost the connection while deploy ${now.id} of ${now.app} was ${now.status}; it goes on on the server: check 'petri apps info ${now.app}'`,
  );
}

/** On a TTY, a line per phase so a quiet build or release does not look stuck. */
class PhaseReporter {
  private readonly shown = new Set<DeployStatus>();
  private readonly timer: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly ctx: Context,
    private readonly client: PetriClient,
    private readonly deploy: Deploy,
  ) {
    this.show(deploy.status === 'queued' ? 'queued' : 'building');
    this.timer = setInterval(() => void this.poll(), PHASE_POLL_MS);
  }

  show(status: DeployStatus): void {
    if (this.shown.has(status)) return;
    this.shown.add(status);
    const line = PHASE_LINES[status];
    if (line) this.ctx.out.line(this.ctx.out.paint('cyan', line));
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }

  private async poll(): Promise<void> {
    try {
      const now = await this.client.getDeploy(this.deploy.app, this.deploy.id);
      // A poll still in flight when the stream ended must not print after the result.
      if (this.stopped) return;
      if (now.status === 'building' || now.status === 'releasing') this.show(now.status);
    } catch {
      // Only a progress hint: the stream says how the deploy ends, and reports its own errors.
    }
  }
}

const PHASE_LINES: Partial<Record<DeployStatus, string>> = {
  queued: 'Waiting for a builder...',
  building: 'Building...',
  releasing: 'Waiting for the release to serve...',
};

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function kib(bytes: number): string {
  return (bytes / 1024).toFixed(1);
}

function elapsed(deploy: Deploy): number | undefined {
  if (!deploy.finishedAt) return undefined;
  const ms = Date.parse(deploy.finishedAt) - Date.parse(deploy.createdAt);
  return Number.isFinite(ms) ? ms : undefined;
}
