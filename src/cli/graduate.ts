// `petri graduate NAME [-o FILE]`: hands an experiment off to production. The server backs up
// its add-ons, moves it to the graduating stage (its expiry suspended) and sends its handoff
// bundle, which is written to NAME-handoff.tar.gz (FILE.partial until it is whole) while
// stderr says what arrives: each file of the bundle, then how much of the slug came.
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { type PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Command } from 'commander';
import type { Parser, ReadEntry } from 'tar';
import { errorMessage } from '../lib/errors.js';
import { formatSize } from './addons.js';
import { resolveAppName } from './app-name.js';
import type { Context } from './context.js';
import { UsageError } from './output.js';

export function registerGraduate(program: Command, ctx: Context): void {
  program
    .command('graduate')
    .description(
      'hand an app off to production (team admins): back up its add-ons, move it to the graduating stage (its expiry suspended) and write its handoff bundle',
    )
    .argument('[name]', "the app (default: petri.toml's name in this directory)")
    .option('-o, --output <file>', 'write the bundle to FILE (default NAME-handoff.tar.gz; - for stdout)')
    .addHelpText(
      'after',
      '\nThe bundle: HANDOFF.md (start here), Dockerfile, slug/ (the build), manifests/ (Kubernetes),\n' +
        "backups/ and data.md (the add-ons' data). It holds no config var's value.\n" +
        "Close the handoff with 'petri apps set NAME stage=graduated' (admins).\n\n" +
        'Examples:\n  petri graduate shop\n  petri graduate shop -o /tmp/shop.tar.gz',
    )
    .action(async (name: string | undefined, opts: { output?: string }) => {
      const appName = await resolveAppName(name, [ctx.io.cwd]);
      const toStdout = opts.output === '-';
      if (toStdout && ctx.io.stdout.isTTY === true) {
        throw new UsageError('the bundle is binary: redirect it (> file) or use -o FILE');
      }
      const file = toStdout
        ? undefined
        : path.resolve(ctx.io.cwd, opts.output ?? `${appName}-handoff.tar.gz`);
      ctx.out.note(`Graduating ${appName}: backing up its add-ons and packing its build...`);
      const client = await ctx.client();
      const download = await client.graduate(appName, { signal: ctx.signal });
      if (download.backups) ctx.out.note(`Add-on backups: ${download.backups}`);
      // tar's parser: loaded by this command, not by every one.
      const { Parser: TarParser } = await import('tar');
      const progress = new BundleProgress((line) => ctx.out.note(line), TarParser);
      try {
        if (file) {
          // 0600: a bundle holds the app's data.
          await pipeline(
            download.body,
            progress.tap(),
            createWriteStream(`${file}.partial`, { mode: 0o600 }),
          );
        } else {
          await pipeline(download.body, progress.tap(), writeTo(ctx.io.stdout as unknown as Sink));
        }
        await progress.done();
        if (file) await rename(`${file}.partial`, file);
      } catch (err) {
        if (file) await rm(`${file}.partial`, { force: true });
        if (ctx.signal.aborted || err instanceof DamagedBundle) throw err;
        // The server failed while sending (its log says why), or the connection dropped.
        throw new Error(
          `the bundle did not arrive whole (${errorMessage(err)}); nothing was written: run the command again`,
        );
      }
      progress.summary();
      const where = file
        ? `${path.relative(ctx.io.cwd, file) || file} (${formatSize((await stat(file)).size)})`
        : 'stdout';
      ctx.out.note(`Wrote ${where}: ${appName} ${download.release}, now ${download.stage}.`);
      ctx.out.note(
        `Next: read HANDOFF.md in it. An admin closes the handoff with 'petri apps set ${appName} stage=graduated'.`,
      );
    });
}

class DamagedBundle extends Error {
  constructor(why: string) {
    super(`the bundle arrived damaged (${why}); nothing was written: run the command again`);
  }
}

/** The part of stdout the bundle needs: bytes in, and 'drain' when it asked us to wait. */
interface Sink {
  write(chunk: Uint8Array): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

function writeTo(stdout: Sink) {
  return async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      if (stdout.write(chunk) === false) await new Promise<void>((resolve) => stdout.once('drain', resolve));
    }
  };
}

/** Reads the bundle as it passes, to say on stderr which of its files arrived, and to notice
 * a bundle cut short before it is called written. */
class BundleProgress {
  private readonly gunzip = createGunzip();
  private readonly parser: Parser;
  private slugFiles = 0;
  private slugBytes = 0;
  private failure: Error | undefined;
  private readonly ended: Promise<void>;

  constructor(
    private readonly say: (line: string) => void,
    TarParser: typeof Parser,
  ) {
    this.parser = new TarParser({ onReadEntry: (entry) => this.entry(entry) });
    this.gunzip.on('error', (err) => {
      this.failure ??= err;
    });
    this.parser.on('error', (err: Error) => {
      this.failure ??= err;
    });
    this.ended = new Promise((resolve) => {
      this.parser.on('end', () => resolve());
      this.gunzip.on('error', () => resolve());
    });
    this.gunzip.pipe(this.parser as unknown as PassThrough);
  }

  /** Passes the bytes on unchanged, reading a copy. */
  tap(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _encoding, callback) => {
        this.gunzip.write(chunk);
        callback(null, chunk);
      },
      flush: (callback) => {
        this.gunzip.end();
        callback();
      },
    });
  }

  /** Resolves once the copy is read; throws when the bundle is not a whole tar.gz. */
  async done(): Promise<void> {
    await this.ended;
    if (this.failure) throw new DamagedBundle(this.failure.message);
  }

  summary(): void {
    this.say(`  slug/ (${this.slugFiles} files, ${formatSize(this.slugBytes)})`);
  }

  private entry(entry: ReadEntry): void {
    const rel = entry.path.split('/').slice(1).join('/');
    if (rel.startsWith('slug/') || rel === 'slug') {
      if (entry.type === 'File') {
        this.slugFiles += 1;
        this.slugBytes += entry.size ?? 0;
      }
    } else if (entry.type === 'File' && rel !== '') {
      this.say(`  ${rel}${rel.startsWith('backups/') ? ` (${formatSize(entry.size ?? 0)})` : ''}`);
    }
    entry.resume();
  }
}
