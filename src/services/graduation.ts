// `petri graduate`: gathers what a production team needs to take an experiment over — its
// slug, a fresh backup of each add-on (the latest earlier one when the engine cannot take one
// now), its release, formation, limits, config var names, egress and dependencies — moves the
// app to `graduating`, and streams the handoff bundle as a tar.gz: the files rendered by
// src/graduation/ first, then the backups, then the slug. Nothing needs the app running, so a
// sleeping or expired app graduates as well. Root reads the slug, which an app's build wrote:
// no link in it is followed (links are packed as links), and the few files read for the
// paperwork (package-lock.json, the virtualenv's metadata) are opened only through
// directories that are not links, with O_NOFOLLOW, and capped in size.
import { constants, readFileSync } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { backupLabel, listBackups } from '../domain/addon-backups.js';
import { addonVarNames } from '../domain/addon-vars.js';
import { listAddons } from '../domain/addons.js';
import { actorOf, appUrl } from '../domain/apps.js';
import { egressAttempts } from '../domain/egress.js';
import { getFormation } from '../domain/formation.js';
import { graduationNames, markGraduating, releaseToGraduate } from '../domain/graduation.js';
import { DAY_MS, lifeState } from '../domain/lifecycle.js';
import { requestsSince } from '../domain/metrics.js';
import { releaseEgress, releaseProcessTypes, releaseRuntimeEnv } from '../domain/release-json.js';
import { readConfig } from '../domain/sealed-config.js';
import { renderBundle } from '../graduation/bundle.js';
import {
  type Dependencies,
  distInfoEntry,
  nodeDependencies,
  pythonDependencies,
  requirementName,
} from '../graduation/dependencies.js';
import type { BundleAddon, BundleInput, Stack } from '../graduation/input.js';
import type { PetriConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import { DEFAULT_DISK_MIB } from '../lib/limits.js';
import type { DataPaths } from '../lib/paths.js';
import type { SecretBox } from '../lib/secrets.js';
import { type TarEntry, tarGzStream } from '../lib/tar-write.js';
import type { Store } from '../store/db.js';
import type { AddonBackup, App, Release, Stage, User } from '../store/schema.js';

/** The part of the add-on service graduation uses: a backup taken now, audited as the user's. */
export interface GraduationAddons {
  backup(user: User, app: App, name: string, ip?: string): Promise<AddonBackup>;
}

export interface GraduationDeps {
  db: Store;
  config: PetriConfig;
  secrets: SecretBox;
  paths: DataPaths;
  addons: GraduationAddons;
  /** The host's distribution (its /etc/os-release), which Petri's sandboxes ran on. */
  hostOs?: Stack['os'];
}

export interface GraduationBundle {
  /** NAME-handoff.tar.gz */
  filename: string;
  release: number;
  stage: Stage;
  /** Add-on name -> the backup in the bundle (b12) and whether it was taken for it. */
  backups: { addon: string; backup: string; fresh: boolean }[];
  stream: Readable;
}

/** What the paperwork may read of a slug file (a package-lock.json of a large app is a few MB). */
const MAX_READ_BYTES = 32 * 1024 * 1024;
const DUMP_EXTENSIONS = { postgres: 'pgdump', mysql: 'sql', redis: 'redis' } as const;

export class GraduationService {
  private readonly hostOs: Stack['os'];

  constructor(private readonly deps: GraduationDeps) {
    this.hostOs = deps.hostOs === undefined ? readHostOs() : deps.hostOs;
  }

  async graduate(user: User, app: App, ip?: string): Promise<GraduationBundle> {
    const { db, config } = this.deps;
    // A handoff is not a renewal: an expired app is renewed (within lifecycle.maxDays) by
    // its team first; only admins graduate it as it is.
    if (user.role !== 'admin' && lifeState(app) === 'expired') {
      throw new UserError(
        'conflict',
        `'${app.name}' has expired: renew it first ('petri apps renew ${app.name}'), then graduate it`,
      );
    }
    const release = await releaseToGraduate(db, app);
    const slugInfo = await lstat(release.slug_dir).catch(() => undefined);
    if (!slugInfo?.isDirectory()) {
      throw new UserError(
        'conflict',
        `the build of ${app.name} v${release.version} is gone from this server, so there is nothing to hand off; deploy it again and graduate it then`,
      );
    }
    const slug = await walkSlug(release.slug_dir);
    const processTypes = releaseProcessTypes(release);
    const stack = await detectStack(release, processTypes, this.hostOs);
    const addons = await this.backups(user, app, ip);
    const [names, formation, observed] = await Promise.all([
      graduationNames(db, app),
      getFormation(db, app),
      egressAttempts(db, app),
    ]);
    const generatedAt = new Date().toISOString();
    const input: BundleInput = {
      app: {
        name: app.name,
        description: app.description,
        owner: names.owner,
        team: names.team,
        dataClass: app.data_class,
        privacyNote: app.privacy_note,
        retentionDays: app.retention_days,
        approval:
          app.approved_class && app.approved_at
            ? { dataClass: app.approved_class, by: names.approvedBy ?? 'an admin', at: app.approved_at }
            : null,
        createdAt: app.created_at,
        url: appUrl(this.deps.config, app.name),
      },
      release: {
        version: release.version,
        createdAt: release.created_at,
        processTypes,
        runtimeEnv: releaseRuntimeEnv(release),
        releaseCommand: release.release_command,
        healthPath: release.health_path,
        egress: releaseEgress(release),
      },
      stack: stack.stack,
      formation,
      limits: {
        memoryMiB: app.memory_mib,
        cpus: app.cpus,
        pids: app.pids,
        diskMiB: app.disk_mib || DEFAULT_DISK_MIB,
        bootTimeoutMs: app.boot_timeout_ms ?? this.deps.config.bootTimeoutMs,
      },
      idleTimeoutMs: app.idle_timeout_s === null ? this.deps.config.idleTimeoutMs : app.idle_timeout_s * 1000,
      // The names only: the values are opened here and go no further.
      configVarNames: Object.keys(readConfig(this.deps.secrets, release.config_sealed)).sort(),
      addons: addons.map((a) => a.bundle),
      backupIntervalHours: this.deps.config.addons.backupIntervalHours,
      observedEgress: observed.map((o) => ({
        host: o.host,
        port: o.port,
        allowed: o.allowed,
        count: o.count,
        lastSeen: o.lastSeen,
      })),
      traffic: {
        lastActiveAt: app.active_at,
        requests7d:
          (
            await requestsSince(this.deps.db, [app.id], new Date(Date.now() - 7 * 86_400_000).toISOString())
          ).get(app.id) ?? 0,
      },
      dependencies: stack.dependencies,
      slug: { files: slug.files, bytes: slug.bytes, leftOut: slug.leftOut },
      generatedAt,
      generatedBy: user.name,
    };
    const files = renderBundle(input);
    const backups = addons.flatMap((a) =>
      a.bundle.backup
        ? [{ addon: a.bundle.name, backup: a.bundle.backup.label, fresh: a.bundle.backup.fresh }]
        : [],
    );
    const moved = await markGraduating(
      db,
      actorOf(user, ip),
      app,
      {
        release: `v${release.version}`,
        backups: Object.fromEntries(backups.map((b) => [b.addon, b.backup])),
      },
      new Date(Date.now() + config.lifecycle.maxDays * DAY_MS).toISOString(),
    );

    const top = `${app.name}-handoff`;
    const when = new Date(generatedAt);
    function* entries(): Generator<TarEntry> {
      yield { type: 'directory', path: top, mode: 0o755, mtime: when };
      const dirs = new Set<string>();
      for (const f of files) {
        const dir = path.posix.dirname(f.path);
        if (dir !== '.' && !dirs.has(dir)) {
          dirs.add(dir);
          yield { type: 'directory', path: `${top}/${dir}`, mode: 0o755, mtime: when };
        }
        const data = Buffer.from(f.text);
        yield { type: 'file', path: `${top}/${f.path}`, mode: 0o644, mtime: when, size: data.length, data };
      }
      const withBackup = addons.filter((a) => a.file !== undefined);
      if (withBackup.length > 0)
        yield { type: 'directory', path: `${top}/backups`, mode: 0o700, mtime: when };
      for (const a of withBackup) {
        const b = a.bundle.backup;
        if (!b || !a.file) continue;
        // 0600: a dump holds the app's data.
        yield {
          type: 'file',
          path: `${top}/${b.path}`,
          mode: 0o600,
          mtime: new Date(b.takenAt),
          size: b.sizeBytes,
          file: a.file,
        };
      }
      for (const e of slug.entries) yield { ...e, path: `${top}/slug${e.path === '' ? '' : `/${e.path}`}` };
    }
    return {
      filename: `${top}.tar.gz`,
      release: release.version,
      stage: moved.stage,
      backups,
      stream: tarGzStream(entries()),
    };
  }

  /** A fresh backup of each ready add-on, else its latest earlier one; an add-on with neither
   * stops the graduation: no data is handed off without its backup. */
  private async backups(
    user: User,
    app: App,
    ip?: string,
  ): Promise<{ bundle: BundleAddon; file?: string }[]> {
    const { db, paths } = this.deps;
    const out: { bundle: BundleAddon; file?: string }[] = [];
    for (const addon of await listAddons(db, app)) {
      const base = { name: addon.name, type: addon.type, envVar: addon.env_var, vars: addonVarNames(addon) };
      if (addon.status !== 'ready') {
        throw new UserError(
          'conflict',
          `add-on '${addon.name}' is ${addon.status}: graduate ${app.name} once it is ready or gone ('petri addons -a ${app.name}')`,
        );
      }
      let backup: AddonBackup | undefined;
      let fresh = true;
      let error: string | undefined;
      try {
        backup = await this.deps.addons.backup(user, app, addon.name, ip);
      } catch (err) {
        fresh = false;
        error = errorMessage(err);
        for (const b of await listBackups(db, addon.id)) {
          if (b.status !== 'succeeded') continue;
          const file = paths.addonBackup(addon.id, b.id);
          if (await isRegularFile(file)) {
            backup = b;
            break;
          }
        }
      }
      if (!backup) {
        throw new UserError(
          'engine_failed',
          `could not back up add-on '${addon.name}' (${error}) and it has no earlier backup; ${app.name} is unchanged: graduate it again once the engine answers`,
        );
      }
      const file = paths.addonBackup(addon.id, backup.id);
      const size = (await lstat(file)).size;
      const label = backupLabel(backup.id);
      out.push({
        file,
        bundle: {
          ...base,
          backup: {
            label,
            path: `backups/${addon.name}-${label}.${DUMP_EXTENSIONS[addon.type]}`,
            sizeBytes: size,
            takenAt: backup.finished_at ?? backup.created_at,
            fresh,
          },
          ...(error !== undefined && { backupError: error }),
        },
      });
    }
    return out;
  }
}

interface SlugListing {
  /** Relative paths ('' is the slug's own directory), never followed through a link. */
  entries: TarEntry[];
  files: number;
  bytes: number;
  /** What a tar of the slug leaves out: sockets, FIFOs, devices. */
  leftOut: string[];
}

/** Lists the slug for the tar: directories, regular files and links as they are (lstat). */
async function walkSlug(root: string): Promise<SlugListing> {
  const out: SlugListing = { entries: [], files: 0, bytes: 0, leftOut: [] };
  const rootInfo = await lstat(root);
  out.entries.push({ type: 'directory', path: '', mode: rootInfo.mode, mtime: rootInfo.mtime });
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const abs = path.join(root, child);
      const info = await lstat(abs).catch(() => undefined);
      if (!info) {
        out.leftOut.push(child);
      } else if (info.isSymbolicLink()) {
        out.entries.push({ type: 'symlink', path: child, mtime: info.mtime, linkpath: await readlink(abs) });
      } else if (info.isDirectory()) {
        out.entries.push({ type: 'directory', path: child, mode: info.mode, mtime: info.mtime });
        await walk(child);
      } else if (info.isFile()) {
        out.entries.push({
          type: 'file',
          path: child,
          mode: info.mode,
          mtime: info.mtime,
          size: info.size,
          file: abs,
        });
        out.files += 1;
        out.bytes += info.size;
      } else {
        out.leftOut.push(child);
      }
    }
  };
  await walk('');
  return out;
}

/** A slug file's text, or null when it is absent, not a regular file, reached through a link
 * (at any step of its path), or larger than MAX_READ_BYTES. */
export async function readSlugFile(slugDir: string, rel: string): Promise<string | null> {
  if (!(await safeDir(slugDir, path.posix.dirname(rel)))) return null;
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(
      path.join(slugDir, rel),
      constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK,
    );
    const info = await handle.stat();
    if (!info.isFile() || info.size > MAX_READ_BYTES) return null;
    return (await handle.readFile()).toString('utf8');
  } catch {
    return null;
  } finally {
    await handle?.close();
  }
}

/** The names in a slug directory, or [] when it is absent or reached through a link. */
async function readSlugDir(slugDir: string, rel: string): Promise<string[]> {
  if (!(await safeDir(slugDir, rel))) return [];
  return readdir(path.join(slugDir, rel)).catch(() => []);
}

/** True when every step of `rel` under the slug is a real directory, not a link. */
async function safeDir(slugDir: string, rel: string): Promise<boolean> {
  let at = slugDir;
  for (const part of rel === '.' || rel === '' ? [] : rel.split('/')) {
    if (part === '..' || part === '') return false;
    at = path.join(at, part);
    const info = await lstat(at).catch(() => undefined);
    if (!info?.isDirectory()) return false;
  }
  return true;
}

async function isRegularFile(file: string): Promise<boolean> {
  return (await lstat(file).catch(() => undefined))?.isFile() === true;
}

/** What the release runs on and depends on, from the release and its slug. */
async function detectStack(
  release: Release,
  processTypes: Record<string, string>,
  os: Stack['os'],
): Promise<{ stack: Stack; dependencies: Dependencies }> {
  const slug = release.slug_dir;
  const commands = [...Object.values(processTypes), release.release_command ?? ''].join('\n');
  const venv = await readSlugFile(slug, '.venv/pyvenv.cfg');
  if (venv !== null) {
    const version = /^version(?:_info)?\s*=\s*([0-9][0-9A-Za-z.+-]*)\s*$/m.exec(venv)?.[1] ?? null;
    const installed = new Map<string, string>();
    for (const lib of await readSlugDir(slug, '.venv/lib')) {
      if (!/^python3\.\d+$/.test(lib)) continue;
      for (const name of await readSlugDir(slug, `.venv/lib/${lib}/site-packages`)) {
        const entry = distInfoEntry(name);
        if (entry) installed.set(entry[0], entry[1]);
      }
    }
    const dependencies = pythonDependencies(
      await readSlugFile(slug, 'requirements.txt'),
      await readSlugFile(slug, 'pyproject.toml'),
      installed,
    );
    const pipInstall = [...(dependencies.hostProvided ?? [])];
    // Petri's build points a gunicorn script at the host's gunicorn when the host has one.
    const named = new Set(pipInstall.map((r) => requirementName(r).toLowerCase()));
    if (/\bgunicorn\b/.test(commands) && !installed.has('gunicorn') && !named.has('gunicorn')) {
      pipInstall.push('gunicorn');
    }
    return { stack: { kind: 'python', version, os, pipInstall }, dependencies };
  }
  const packageJson = await readSlugFile(slug, 'package.json');
  const isNode =
    release.node_version !== null ||
    packageJson !== null ||
    /(^|[\s;&|(])(node|npm|npx|yarn|pnpm)(\s|$)/m.test(commands);
  if (isNode) {
    return {
      stack: { kind: 'node', version: release.node_version ?? process.versions.node, os, pipInstall: [] },
      dependencies: nodeDependencies(packageJson, await readSlugFile(slug, 'package-lock.json')),
    };
  }
  return {
    stack: { kind: 'other', version: null, os, pipInstall: [] },
    dependencies: { source: null, direct: [], total: null, notes: [] },
  };
}

/** debian or ubuntu and the release's codename, from /etc/os-release; null for anything else. */
function readHostOs(): Stack['os'] {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const field = (key: string) => new RegExp(`^${key}="?([^"\\n]*)"?$`, 'm').exec(text)?.[1];
    const id = field('ID');
    const codename = field('VERSION_CODENAME');
    if ((id === 'debian' || id === 'ubuntu') && codename && /^[a-z]+$/.test(codename))
      return { id, codename };
  } catch {
    // Not Linux, or no os-release: the Dockerfile says so.
  }
  return null;
}
