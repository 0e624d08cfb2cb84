// Runs the CLI in-process as a user would, with captured output and its own environment,
// and compares rendered output with golden files (UPDATE_GOLDEN=1 rewrites them).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli/main.js';

export class Capture {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string): boolean {
    this.text += chunk;
    return true;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  tty?: boolean;
  /** Called with the live stdout capture, before the command ends. */
  stdout?: Capture;
}

export async function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const stdout = opts.stdout ?? new Capture(opts.tty);
  const stderr = new Capture(opts.tty);
  const code = await runCli(argv, { stdout, stderr, env: opts.env ?? {}, cwd: opts.cwd ?? process.cwd() });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** An environment that talks to the fake API and keeps config in a temp dir. */
export function envFor(url: string, token: string, configDir: string): Record<string, string> {
  return { PETRI_URL: url, PETRI_TOKEN: token, PETRI_CONFIG_DIR: configDir };
}

export async function tempDir(prefix = 'petri-cli-'): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

const GOLDEN = path.join(import.meta.dirname, 'golden');

export async function assertGolden(name: string, actual: string): Promise<void> {
  const file = path.join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN) {
    await writeFile(file, actual);
    return;
  }
  const expected = await readFile(file, 'utf8').catch(() => {
    throw new Error(`no golden file ${file}: run with UPDATE_GOLDEN=1 to write it, then review it`);
  });
  assert.equal(actual, expected, `output differs from golden/${name}`);
}
