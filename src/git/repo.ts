// The bare repository a `git push` lands in, one per app (DATA/apps/<id>/repo.git), and
// the git processes smart HTTP runs on it. Petri owns the repository's config and hooks:
// a push writes only objects and refs, never config, and core.hooksPath points at a
// directory Petri writes (DATA/git/hooks), so nothing pushed can ever become a hook.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdir, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execOk } from '../lib/exec.js';
import type { DataPaths } from '../lib/paths.js';
import type { GitService } from './pkt-line.js';

export function repoPath(paths: DataPaths, appId: number): string {
  return path.join(paths.app(appId), 'repo.git');
}

export function hooksPath(paths: DataPaths): string {
  return path.join(paths.root, 'git', 'hooks');
}

/**
 * The environment of every git process Petri runs on a pushed repository: no system or
 * global config (an operator's `filter.*`, `uploadpack.packObjectsHook`, credential or
 * fsmonitor settings must not apply to pushed data) and none of the server's own
 * environment (it may hold secrets); `extra` adds the hook's variables.
 */
export function gitEnv(paths: DataPaths, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    HOME: path.join(paths.root, 'git'),
    LANG: 'C',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    ...extra,
  };
}

export interface RepoOptions {
  /** Largest pack a push may send (receive.maxInputSize). */
  maxPackBytes: number;
}

/** The repository's config, all of it Petri's (a push cannot change it). */
export function repoConfig(paths: DataPaths, opts: RepoOptions): [string, string][] {
  return [
    ['core.hooksPath', hooksPath(paths)],
    ['core.logAllRefUpdates', 'true'],
    // Heroku accepts force pushes and branch deletions; so does Petri.
    ['receive.denyNonFastForwards', 'false'],
    ['receive.denyDeletes', 'false'],
    ['receive.maxInputSize', String(opts.maxPackBytes)],
    // Check every pushed object; refuse trees with `.git`, `..` or `.` entries outright
    // (git only warns about them by default) before anything reads them.
    ['receive.fsckObjects', 'true'],
    ['receive.fsck.hasDotgit', 'error'],
    ['receive.fsck.hasDotdot', 'error'],
    ['receive.fsck.hasDot', 'error'],
    ['receive.advertisePushOptions', 'false'],
    ['receive.updateServerInfo', 'false'],
    // Fetching back is for the app's owner; no partial clones or arbitrary wants.
    ['uploadpack.allowFilter', 'false'],
    ['uploadpack.allowAnySHA1InWant', 'false'],
    ['uploadpack.allowReachableSHA1InWant', 'false'],
    ['uploadpack.allowTipSHA1InWant', 'false'],
    ['gc.autoDetach', 'false'],
  ];
}

// Pushed .gitattributes must not change what `git archive` exports: no export-subst
// (runs pretty-format expansion on pushed text), export-ignore, filters, ident or eol
// conversion. info/attributes outranks every .gitattributes in the tree.
export const NEUTRAL_ATTRIBUTES =
  '* -export-subst -export-ignore -filter -ident -text -eol -working-tree-encoding\n';

const initialised = new Map<string, Promise<string>>();

/** Creates the app's bare repository on first use and (re)applies Petri's config to it. */
export function ensureRepo(paths: DataPaths, appId: number, opts: RepoOptions): Promise<string> {
  const dir = repoPath(paths, appId);
  let done = initialised.get(dir);
  if (!done) {
    done = initRepo(paths, dir, opts);
    initialised.set(dir, done);
    // A failed init is retried by the next push rather than remembered.
    done.catch(() => initialised.delete(dir));
  }
  return done;
}

/** Forgets that a repository was set up (its app was destroyed and its dir removed). */
export function forgetRepo(paths: DataPaths, appId: number): void {
  initialised.delete(repoPath(paths, appId));
}

const hooksWritten = new Map<string, Promise<void>>();

async function initRepo(paths: DataPaths, dir: string, opts: RepoOptions): Promise<string> {
  const env = gitEnv(paths);
  let hooks = hooksWritten.get(paths.root);
  if (!hooks) {
    hooks = installHooks(paths);
    hooksWritten.set(paths.root, hooks);
    hooks.catch(() => hooksWritten.delete(paths.root));
  }
  await hooks;
  await mkdir(path.dirname(dir), { recursive: true });
  const exists = await stat(path.join(dir, 'HEAD')).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await execOk('git', ['init', '--bare', '--quiet', '--initial-branch=main', dir], {
      env,
      timeoutMs: 30_000,
    });
  }
  for (const [key, value] of repoConfig(paths, opts)) {
    await execOk('git', ['--git-dir', dir, 'config', key, value], { env, timeoutMs: 30_000 });
  }
  await mkdir(path.join(dir, 'info'), { recursive: true });
  await writeFile(path.join(dir, 'info', 'attributes'), NEUTRAL_ATTRIBUTES);
  return dir;
}

export interface HookProgram {
  /** The node binary that runs the hook. */
  node: string;
  /** Node options before the script (the tsx loader when Petri runs from source). */
  nodeArgs: string[];
  script: string;
}

/** The hook Petri runs: its own compiled (or, from source, tsx-loaded) hook module. */
export function hookProgram(): HookProgram {
  const self = new URL(import.meta.url);
  const fromSource = self.pathname.endsWith('.ts');
  const script = new URL(fromSource ? './hook.ts' : './hook.js', self);
  return {
    node: process.execPath,
    nodeArgs: fromSource ? ['--import', import.meta.resolve('tsx')] : [],
    script: script.pathname,
  };
}

/** The pre-receive script: a fixed sh line that execs Petri's hook; no input reaches the shell. */
export function renderHookScript(program: HookProgram): string {
  const words = [program.node, ...program.nodeArgs, program.script].map(shellQuote).join(' ');
  return `#!/bin/sh\n# Written by Petri at start; pushed data reaches the hook only on stdin and in the repository.\nexec ${words}\n`;
}

export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Writes the hooks directory (every start, so an upgraded Petri runs its new hook). */
export async function installHooks(paths: DataPaths, program: HookProgram = hookProgram()): Promise<void> {
  const dir = hooksPath(paths);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const file = path.join(dir, 'pre-receive');
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, renderHookScript(program), { mode: 0o755 });
  await chmod(temp, 0o755);
  await rename(temp, file);
}

/**
 * Starts `git <service> --stateless-rpc [--advertise-refs] <repo>`, in its own process
 * group so that ending it ends the hook it runs too.
 */
export function spawnService(
  service: GitService,
  repo: string,
  env: NodeJS.ProcessEnv,
  advertise: boolean,
): ChildProcess {
  const args = [
    service.replace(/^git-/, ''),
    '--stateless-rpc',
    ...(advertise ? ['--advertise-refs'] : []),
    repo,
  ];
  return spawn('git', args, { env, cwd: repo, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
}
