// Where the CLI finds Petri and its token. `petri login` stores logins in
// $XDG_CONFIG_HOME/petri/config.json (default ~/.config/petri; PETRI_CONFIG_DIR moves it),
// the file 0600 and its directory 0700, since tokens are secrets. Several logins live side
// by side as profiles (`petri login --profile work`): one is current, PETRI_PROFILE picks
// another for one command, and PETRI_URL and PETRI_TOKEN override what is stored.
//
// The file: { "current": "default", "profiles": { "default": { "url", "token", "user" } } }.
// A file of an earlier Petri, { "url", "token" }, reads as the profile "default" and is
// rewritten in the new shape by the next login or logout.
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { UserError } from '../lib/errors.js';

export interface Login {
  url: string;
  token: string;
}

/** A stored login: where, with which token, and who it signed in as (for `petri profiles`). */
export interface Profile extends Login {
  user?: string;
  savedAt?: string;
}

export interface Settings {
  configFile: string;
  /** The profile this command uses. */
  profile: string;
  url: string | undefined;
  token: string | undefined;
}

export interface Stored {
  current: string;
  profiles: Record<string, Profile>;
}

export const DEFAULT_PROFILE = 'default';

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const NOT_LOGGED_IN =
  "not logged in: run 'petri login --url URL' to sign in, or 'petri login --url URL --token TOKEN' with a token (the first admin's is in DATA_DIR/admin.token on the server)";

export function configFile(env: Record<string, string | undefined>): string {
  if (env.PETRI_CONFIG_DIR) return path.join(env.PETRI_CONFIG_DIR, 'config.json');
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config');
  return path.join(base, 'petri', 'config.json');
}

/** Refuses a profile name that is not a short word (it is shown, and typed). */
export function checkProfileName(name: string): string {
  if (!PROFILE_NAME.test(name)) {
    throw new UserError(
      'bad_request',
      `a profile name is letters, digits, '.', '_' and '-' (at most 64), like 'work'; got '${name}'`,
    );
  }
  return name;
}

/** The profile a command uses: the one asked for, else PETRI_PROFILE, else the current one. */
export function selectedProfile(
  stored: Stored | undefined,
  env: Record<string, string | undefined>,
  asked?: string,
): string {
  return checkProfileName(asked ?? (env.PETRI_PROFILE || stored?.current || DEFAULT_PROFILE));
}

/** The stored login of the profile with the environment laid over it; built once per command. */
export async function loadSettings(
  env: Record<string, string | undefined>,
  asked?: string,
): Promise<Settings> {
  const file = configFile(env);
  const stored = await readStored(file);
  const profile = selectedProfile(stored, env, asked);
  const login = stored?.profiles[profile];
  if (asked === undefined && env.PETRI_PROFILE && !login && !(env.PETRI_URL && env.PETRI_TOKEN)) {
    throw new UserError('unauthorized', `${noProfile(profile, stored)} (PETRI_PROFILE=${profile})`);
  }
  return {
    configFile: file,
    profile,
    url: env.PETRI_URL || login?.url,
    token: env.PETRI_TOKEN || login?.token,
  };
}

/** What to say about a profile that is not stored. */
export function noProfile(profile: string, stored: Stored | undefined): string {
  const names = Object.keys(stored?.profiles ?? {});
  return `no login stored as profile '${profile}': run 'petri login --profile ${profile}'${
    names.length > 0 ? `; stored: ${names.join(', ')}` : ''
  }`;
}

export function requireLogin(settings: Settings): Login {
  if (!settings.url || !settings.token) throw new UserError('unauthorized', NOT_LOGGED_IN);
  return { url: settings.url, token: settings.token };
}

/** Stores a login as `profile` and makes it the current one. */
export async function saveLogin(file: string, login: Profile, profile = DEFAULT_PROFILE): Promise<void> {
  const stored = (await readStored(file)) ?? { current: profile, profiles: {} };
  stored.profiles[checkProfileName(profile)] = login;
  stored.current = profile;
  await writeStored(file, stored);
}

/** Forgets a profile; answers the stored logins left (the current one moves to another if
 * it was this one). The file goes when no login is left. */
export async function removeProfile(file: string, profile: string): Promise<Stored | undefined> {
  const stored = await readStored(file);
  if (!stored?.profiles[profile]) return stored;
  delete stored.profiles[profile];
  const left = Object.keys(stored.profiles);
  if (left.length === 0) {
    await rm(file, { force: true });
    return undefined;
  }
  if (stored.current === profile)
    stored.current = left.includes(DEFAULT_PROFILE) ? DEFAULT_PROFILE : (left.sort()[0] ?? DEFAULT_PROFILE);
  await writeStored(file, stored);
  return stored;
}

/** Makes a stored profile the current one. */
export async function useProfile(file: string, profile: string): Promise<void> {
  const stored = await readStored(file);
  if (!stored?.profiles[checkProfileName(profile)])
    throw new UserError('not_found', noProfile(profile, stored));
  stored.current = profile;
  await writeStored(file, stored);
}

async function writeStored(file: string, stored: Stored): Promise<void> {
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // A directory made before (by hand, or by an earlier Petri with a loose umask) is closed
  // too: no one else may list it, or swap a file in it.
  if (((await stat(dir)).mode & 0o077) !== 0) await chmod(dir, 0o700);
  // Write aside and rename: a crash never leaves half a file, and the new file is
  // created 0600 rather than inheriting the mode of one a user made readable. 'wx': a
  // file (or a symlink) already at the temp name is not written through.
  const temp = `${file}.${process.pid}.tmp`;
  await rm(temp, { force: true });
  await writeFile(temp, `${JSON.stringify(stored, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(temp, 0o600); // a strict umask (0277) would leave it unwritable to us: set it exactly
  await rename(temp, file);
}

/** The stored logins, the older one-login file read as the profile "default". */
export async function readStored(file: string): Promise<Stored | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError('bad_request', `cannot read ${file}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UserError('bad_request', `${file} is not valid JSON; run 'petri login' again to rewrite it`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new UserError(
      'bad_request',
      `${file} is not a Petri login file; run 'petri login' again to rewrite it`,
    );
  const raw = parsed as { current?: unknown; profiles?: unknown; url?: unknown; token?: unknown };
  if (raw.profiles === undefined) {
    // An earlier Petri's file: one login.
    const login = profileOf(raw);
    return { current: DEFAULT_PROFILE, profiles: login ? { [DEFAULT_PROFILE]: login } : {} };
  }
  const profiles: Record<string, Profile> = {};
  if (raw.profiles !== null && typeof raw.profiles === 'object') {
    for (const [name, value] of Object.entries(raw.profiles as Record<string, unknown>)) {
      const login = PROFILE_NAME.test(name) ? profileOf(value) : undefined;
      if (login) profiles[name] = login;
    }
  }
  const current =
    typeof raw.current === 'string' && PROFILE_NAME.test(raw.current) ? raw.current : DEFAULT_PROFILE;
  return { current, profiles };
}

function profileOf(value: unknown): Profile | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.url !== 'string' || typeof v.token !== 'string') return undefined;
  return {
    url: v.url,
    token: v.token,
    ...(typeof v.user === 'string' ? { user: v.user } : {}),
    ...(typeof v.savedAt === 'string' ? { savedAt: v.savedAt } : {}),
  };
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
