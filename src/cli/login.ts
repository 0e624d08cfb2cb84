// `petri login`, `petri logout`, `petri profiles`: who the CLI talks to, and as whom.
//
// Every way of signing in is a flow that answers a LoginResult (the server and a Petri
// token for it); save() checks the token against the server and stores it as a profile.
// `--url` names the server for every flow (default: $PETRI_URL, else the profile's own).
//   --url URL --token TOKEN   a token made earlier (admin.token, `petri tokens create`)
//   (no flag)                 the organisation's single sign-on in a browser (login-oidc.ts)
//   --device                  single sign-on with a code typed on another device (login-oidc.ts)
//   --ldap USER, --email EMAIL   an LDAP or a local account's password (login-password.ts)
//   --invite LINK             accept an invitation by choosing a password (login-password.ts)
// A new flow adds its option in registerLogin and its branch in signInFlow.
import type { Command } from 'commander';
import { errorMessage } from '../lib/errors.js';
import { type Context, newClient, USER_AGENT } from './context.js';
import { loginWithBrowser, loginWithDevice } from './login-oidc.js';
import { loginWithEmail, loginWithInvite, loginWithLdap } from './login-password.js';
import { UsageError } from './output.js';
import {
  checkUrl,
  configFile,
  DEFAULT_PROFILE,
  noProfile,
  readStored,
  removeProfile,
  type Stored,
  saveLogin,
  selectedProfile,
  useProfile,
} from './settings.js';

/** What every sign-in flow answers: the server and a Petri token for it. */
export interface LoginResult {
  url: string;
  token: string;
}

/** The options of `petri login`; each flow reads its own. */
export interface LoginOptions {
  url?: string;
  token?: string;
  profile?: string;
  list?: boolean;
  device?: boolean;
  ldap?: string;
  email?: string;
  invite?: string;
  passwordStdin?: boolean;
}

/** Where a login goes: the file, what it holds, the profile, and the server if known. */
interface LoginTarget {
  file: string;
  stored: Stored | undefined;
  profile: string;
  /** --url, else $PETRI_URL, else the profile's stored URL (signing in again). */
  url: string | undefined;
}

export function registerLogin(program: Command, ctx: Context): void {
  program
    .command('login')
    .description(
      "sign in to Petri and store the login (a profile) for later commands; with no option, the organisation's single sign-on in a browser",
    )
    .option(
      '--url <url>',
      "the Petri API, e.g. http://petri.example.org:8080 (default: $PETRI_URL, else the profile's)",
    )
    .option('--token <token>', 'an API token made earlier (default: $PETRI_TOKEN)')
    .option(
      '--device',
      'single sign-on with a code typed in a browser on any device (no local browser needed)',
    )
    .option('--ldap <user>', 'sign in with your LDAP user name and password')
    .option('--email <email>', 'sign in to a local account with its e-mail and password')
    .option('--invite <link>', 'accept an invitation link by choosing a password for a new local account')
    .option('--password-stdin', 'with --ldap, --email or --invite: read the password from stdin (scripts)')
    .option(
      '--profile <name>',
      'store the login under this name and make it current (default: $PETRI_PROFILE, else the current profile)',
    )
    .option('--list', "list the stored logins (as 'petri profiles')")
    .action(async (opts: LoginOptions) => {
      if (opts.list) return listProfiles(ctx);
      const target = await loginTarget(ctx, opts);
      const result = await signInFlow(ctx, opts, target);
      await save(ctx, target, result);
    });

  program
    .command('logout')
    .description('forget a stored login (ending its sign-in session on the server)')
    .option('--profile <name>', 'the login to forget (default: $PETRI_PROFILE, else the current one)')
    .action(async (opts: { profile?: string }) => logout(ctx, opts.profile));

  const profiles = program
    .command('profiles')
    .description('list the stored logins, or switch the current one');
  profiles
    .command('list', { isDefault: true })
    .description('list the stored logins; * marks the current one (the default)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => listProfiles(ctx, opts.json));
  profiles
    .command('use')
    .description('make a stored login the current one')
    .argument('<name>', 'a profile name')
    .action(async (name: string) => {
      const file = configFile(ctx.io.env);
      await useProfile(file, name);
      const login = (await readStored(file))?.profiles[name];
      ctx.out.line(`Now using profile '${name}': ${login?.user ?? '?'} at ${login?.url ?? '?'}`);
    });
}

async function loginTarget(ctx: Context, opts: LoginOptions): Promise<LoginTarget> {
  const file = configFile(ctx.io.env);
  const stored = await readStored(file);
  const profile = selectedProfile(stored, ctx.io.env, opts.profile);
  const url = opts.url ?? ctx.io.env.PETRI_URL ?? stored?.profiles[profile]?.url;
  return { file, stored, profile, url: url === undefined ? undefined : checkUrl(url) };
}

/** The flow the options ask for, and its answer. */
async function signInFlow(ctx: Context, opts: LoginOptions, target: LoginTarget): Promise<LoginResult> {
  const asked =
    opts.device || opts.ldap !== undefined || opts.email !== undefined || opts.invite !== undefined;
  const token = opts.token ?? (asked ? undefined : ctx.io.env.PETRI_TOKEN);
  if (token !== undefined) {
    if (!target.url) {
      throw new UsageError(
        'login needs --url URL and --token TOKEN (the token is in DATA_DIR/admin.token on the server)',
      );
    }
    return { url: target.url, token };
  }
  // An invitation link names its server; --url only overrides it when given.
  if (opts.invite !== undefined) return loginWithInvite(ctx, opts.invite, opts.url && target.url, opts);
  const url = needUrl(target.url);
  if (opts.ldap !== undefined) return loginWithLdap(ctx, url, opts.ldap, opts);
  if (opts.email !== undefined) return loginWithEmail(ctx, url, opts.email, opts);
  if (opts.device) return loginWithDevice(ctx, url);
  return loginWithBrowser(ctx, url);
}

function needUrl(url: string | undefined): string {
  if (url) return url;
  throw new UsageError(
    'login needs --url URL, the Petri API to sign in to (e.g. http://petri.example.org:8080); or --url URL --token TOKEN',
  );
}

/** Checks the token against the server (a typo fails here, not on the next command) and
 * stores it as the profile, which becomes the current one. */
async function save(ctx: Context, target: LoginTarget, result: LoginResult): Promise<void> {
  const login = { url: checkUrl(result.url), token: result.token };
  const who = await (await newClient({ ...login, userAgent: USER_AGENT })).whoamiWithToken();
  const name = who.user.email ?? who.user.name;
  await saveLogin(target.file, { ...login, user: name, savedAt: new Date().toISOString() }, target.profile);
  const as = target.profile === DEFAULT_PROFILE ? '' : ` as profile '${target.profile}'`;
  ctx.out.line(`Logged in to ${login.url} as ${name} (${who.user.role}); saved${as} in ${target.file}`);
  const expires = who.token?.expiresAt;
  if (expires) ctx.out.line(`This login expires on ${expires.slice(0, 10)}; run 'petri login' again then`);
}

async function logout(ctx: Context, asked: string | undefined): Promise<void> {
  const file = configFile(ctx.io.env);
  const stored = await readStored(file);
  const profile = selectedProfile(stored, ctx.io.env, asked);
  const login = stored?.profiles[profile];
  if (!login) {
    ctx.out.line(`Not logged in as profile '${profile}'; nothing to forget`);
    return;
  }
  // A sign-in session ends on the server too; a token made on purpose (an api token given
  // with --token) may be in use elsewhere, so it stays: revoke it with 'petri tokens revoke'.
  try {
    const client = await newClient({ ...login, userAgent: USER_AGENT });
    const { token } = await client.whoamiWithToken();
    if (token?.kind === 'session') await client.revokeToken(token.id);
  } catch (err) {
    ctx.out.warn(
      `could not end the session at ${login.url} (${errorMessage(err)}); forgetting it here anyway`,
    );
  }
  const left = await removeProfile(file, profile);
  const as = profile === DEFAULT_PROFILE ? '' : ` (profile '${profile}')`;
  ctx.out.line(`Logged out of ${login.url}${as}; removed it from ${file}`);
  if (left && left.current !== profile && stored?.current === profile)
    ctx.out.line(`Now using profile '${left.current}': ${left.profiles[left.current]?.url ?? '?'}`);
}

async function listProfiles(ctx: Context, json = false): Promise<void> {
  const file = configFile(ctx.io.env);
  const stored = await readStored(file);
  const selected = selectedProfile(stored, ctx.io.env);
  const names = Object.keys(stored?.profiles ?? {}).sort();
  if (json) {
    ctx.out.json(
      names.map((name) => {
        const p = stored!.profiles[name]!;
        return {
          name,
          current: name === selected,
          url: p.url,
          user: p.user ?? null,
          savedAt: p.savedAt ?? null,
        };
      }),
    );
    return;
  }
  if (names.length === 0) {
    ctx.out.line(`No logins stored in ${file}; sign in with 'petri login --url URL'`);
    return;
  }
  ctx.out.table(
    ['', 'PROFILE', 'URL', 'USER'],
    names.map((name) => {
      const p = stored!.profiles[name]!;
      return [name === selected ? '*' : '', name, p.url, p.user ?? '-'];
    }),
  );
  if (!stored?.profiles[selected]) ctx.out.warn(noProfile(selected, stored));
}
