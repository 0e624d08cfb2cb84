// Where the CLI finds Petri and its token: `petri login` stores them in
// $XDG_CONFIG_HOME/petri/config.json (0600, the token is a secret); PETRI_URL and
// PETRI_TOKEN override the stored values, PETRI_CONFIG_DIR moves the file.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { UserError } from '../lib/errors.js';

export interface Login {
  url: string;
  token: string;
}

export interface Settings {
  configFile: string;
  url: string | undefined;
  token: string | undefined;
}

export const NOT_LOGGED_IN =
  "not logged in: run 'petri login --url URL --token TOKEN' (the token is in DATA_DIR/admin.token on the server)";

export function configFile(env: Record<string, string | undefined>): string {
  if (env.PETRI_CONFIG_DIR) return path.join(env.PETRI_CONFIG_DIR, 'config.json');
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'petri', 'config.json');
}

/** The stored login with the environment laid over it; built once per command. */
export async function loadSettings(env: Record<string, string | undefined>): Promise<Settings> {
  const file = configFile(env);
  const stored = await readStored(file);
  return {
    configFile: file,
    url: env.PETRI_URL || stored?.url,
    token: env.PETRI_TOKEN || stored?.token,
  };
}

export function requireLogin(settings: Settings): Login {
  if (!settings.url || !settings.token) throw new UserError('unauthorized', NOT_LOGGED_IN);
  return { url: settings.url, token: settings.token };
}

export async function saveLogin(file: string, login: Login): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Write aside and rename: a crash never leaves half a file, and the new file is
  // created 0600 rather than inheriting the mode of one a user made readable.
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(login, null, 2)}\n`, { mode: 0o600 });
  await chmod(temp, 0o600); // a strict umask (0277) would leave it unwritable to us: set it exactly
  await rename(temp, file);
}

async function readStored(file: string): Promise<Partial<Login> | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError('bad_request', `cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as { url?: unknown; token?: unknown };
    return {
      url: typeof parsed.url === 'string' ? parsed.url : undefined,
      token: typeof parsed.token === 'string' ? parsed.token : undefined,
    };
  } catch {
    throw new UserError('bad_request', `${file} is not valid JSON; run 'petri login' again to rewrite it`);
  }
}

/** Refuses what is not an http(s) URL before any request is tried with it. */
export function checkUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UserError('bad_request', `the URL must look like http://127.0.0.1:7070, got '${url}'`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new UserError('bad_request', `the URL must start with http:// or https://, got '${url}'`);
  }
  return url.replace(/\/+$/, '');
}
