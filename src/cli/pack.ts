// What `petri deploy DIR` uploads: a gzip tar of the app's files, in a stable order,
// leaving out what .gitignore and .petriignore exclude and what never belongs in a deploy.
// The server refuses links, so symlinks are sent as the content they point to, or left out.
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import ignore, { type Ignore } from 'ignore';
import { Pack } from 'tar';
import { UserError } from '../lib/errors.js';

export interface PackedDirectory {
  /** The gzip-compressed tar, ready to be the request body. */
  stream: Readable;
  /** Relative paths of the packed files, in archive order. */
  files: string[];
  /** Things left out that the user may not expect: links leaving the app, special files. */
  warnings: string[];
}

// Dependencies are installed by the build, VCS data is never needed, and .petri/ holds local CLI state.
const ALWAYS_EXCLUDED = ['node_modules/', '.git/', '.petri/'];

interface Rules {
  /** Directory the rules are relative to, relative to the app root ('' for the root). */
  base: string;
  matcher: Ignore;
}

export async function packDirectory(dir: string): Promise<PackedDirectory> {
  const root = await realpath(dir);
  const rootRules = ignore().add(ALWAYS_EXCLUDED);
  // .petriignore comes after .gitignore so it can re-include (`!dist/`) what git ignores.
  rootRules.add(await readIfPresent(join(root, '.gitignore')));
  rootRules.add(await readIfPresent(join(root, '.petriignore')));

  const files: string[] = [];
  const warnings: string[] = [];
  await walk({ root, files, warnings, ancestors: new Set([root]) }, '', [{ base: '', matcher: rootRules }]);
  if (files.length === 0) {
    throw new UserError(
      'bad_request',
      `nothing to deploy in ${dir}: it has no files, or every file is ignored`,
    );
  }

  // `follow` stores a symlink as the file it points to; walk() let through only links inside the app.
  // Pack rather than tar.create: create() reads a name starting with '@' as another archive to splice in.
  // A fixed mtime and portable headers make the same tree pack to the same bytes.
  const pack = new Pack({
    cwd: root,
    gzip: true,
    portable: true,
    follow: true,
    noDirRecurse: true,
    mtime: new Date(0),
  });
  for (const file of files) pack.add(file);
  pack.end();
  return { stream: Readable.from(pack), files, warnings };
}

interface Walk {
  root: string;
  files: string[];
  warnings: string[];
  /** Real paths of the directories being walked, so a link back up cannot loop forever. */
  ancestors: Set<string>;
}

async function walk(w: Walk, relDir: string, rules: Rules[]): Promise<void> {
  const absDir = join(w.root, relDir);
  const nested = relDir === '' ? undefined : await readIfPresent(join(absDir, '.gitignore'));
  const scoped = nested ? [...rules, { base: relDir, matcher: ignore().add(nested) }] : rules;

  // Sort by code unit, not locale, so the same tree packs the same way on every machine.
  const names = (await readdir(absDir)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const rel = relDir === '' ? name : `${relDir}/${name}`;
    const abs = join(absDir, name);
    let info = await lstat(abs);
    let real = abs;
    if (info.isSymbolicLink()) {
      const target = await resolveInside(w.root, abs);
      if (!target) {
        w.warnings.push(`skipped ${rel}: it is a symlink that points outside the app or nowhere`);
        continue;
      }
      real = target;
      info = await stat(target);
    }
    if (info.isDirectory()) {
      if (isIgnored(scoped, `${rel}/`)) continue;
      if (w.ancestors.has(real)) {
        w.warnings.push(`skipped ${rel}: it is a symlink to a directory that contains it`);
        continue;
      }
      w.ancestors.add(real);
      await walk(w, rel, scoped);
      w.ancestors.delete(real);
    } else if (info.isFile()) {
      if (!isIgnored(scoped, rel)) w.files.push(rel);
    } else if (!isIgnored(scoped, rel)) {
      w.warnings.push(`skipped ${rel}: only regular files and directories are deployed`);
    }
  }
}

/** Git's precedence: the deepest .gitignore that has an opinion about the path wins. */
function isIgnored(rules: Rules[], rel: string): boolean {
  let ignored = false;
  for (const { base, matcher } of rules) {
    const result = matcher.test(base === '' ? rel : rel.slice(base.length + 1));
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

/** The real path of a symlink's target when it exists inside root, else undefined. */
async function resolveInside(root: string, link: string): Promise<string | undefined> {
  const target = await realpath(link).catch(() => undefined);
  if (target === undefined) return undefined;
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !rel.startsWith(sep))
    ? target
    : undefined;
}

async function readIfPresent(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
