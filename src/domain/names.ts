// Rules for the names users choose.
import type { PetriConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';

export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{1,29}$/;

export function validateAppName(name: unknown): string {
  if (typeof name !== 'string' || !APP_NAME_PATTERN.test(name)) {
    const shown = typeof name === 'string' ? `'${name}'` : String(name);
    throw new UserError('bad_request', `app name must match ^[a-z][a-z0-9-]{1,29}$, got ${shown}`);
  }
  if (name.endsWith('-') || name.includes('--')) {
    throw new UserError('bad_request', `app name '${name}' must not end with '-' or contain '--'`);
  }
  return name;
}

/** Names no new app may take, each with why (HOST is the app's host, NAME.<domain>): these
 * hosts mean something to browsers, mail clients and servers, or people. Apps that had one
 * before keep it. (Mailbox names, postmaster@ and the like, are the mail relay's concern: an
 * app so named mails as NAME.app@, see mail/.) */
const RESERVED: [why: string, names: readonly string[]][] = [
  // A policy at mta-sts.<domain> says where mail for <domain> may be delivered; keys at
  // openpgpkey.<domain> are whose mail it is encrypted to.
  [
    "mail servers and clients look at HOST for the policies and keys of the domain's mail (MTA-STS, WKD, BIMI)",
    ['mta-sts', 'openpgpkey', 'bimi'],
  ],
  ['mail clients fetch their server settings from HOST', ['autoconfig', 'autodiscover']],
  ['browsers and systems ask HOST for a proxy or a tunnel', ['wpad', 'isatap', 'localhost', 'broadcasthost']],
  [
    'people and programs take HOST for a mail, DNS or file server',
    ['mail', 'email', 'webmail', 'smtp', 'imap', 'pop', 'mx', 'ns', 'dns', 'ftp'],
  ],
  [
    "people take HOST for one of Petri's own pages",
    [
      'www',
      'api',
      'petri',
      'status',
      'login',
      'logout',
      'signin',
      'signup',
      'auth',
      'oauth',
      'sso',
      'admin',
      'administrator',
      'dashboard',
      'console',
    ],
  ],
];

/** These followed by digits too (ns1, mx2, www2, pop3, smtp01). */
const NUMBERED = /^(ns|dns|mx|mail|smtp|imap|pop|ftp|www)\d+$/;

export type AppNameWhere = Pick<PetriConfig, 'domain' | 'apiHost'> & {
  domains: Pick<PetriConfig['domains'], 'reservedAppNames'>;
};

/** Why a new app may not be called NAME (a valid name), or undefined when it may. */
export function reservedAppName(name: string, where: AppNameWhere): string | undefined {
  const host = `${name}.${where.domain}`;
  // The API's host under the platform's domain: an app there would shadow it.
  if (host === where.apiHost.toLowerCase()) return `${host} is the Petri API's host`;
  const numbered = NUMBERED.exec(name)?.[1];
  for (const [why, names] of RESERVED) {
    if (names.includes(numbered ?? name)) return why.replaceAll('HOST', host);
  }
  if (where.domains.reservedAppNames?.includes(name))
    return 'the operator reserved it (domains.reservedAppNames)';
  return undefined;
}

/** A new app's name: valid, and neither one of the platform's nor reserved (see RESERVED). */
export function validateNewAppName(name: unknown, where: AppNameWhere): string {
  const appName = validateAppName(name);
  const why = reservedAppName(appName, where);
  if (why !== undefined) {
    const like = `${appName}-app`.length <= 30 ? `, like '${appName}-app'` : '';
    throw new UserError('bad_request', `app name '${appName}' is reserved: ${why}; pick another name${like}`);
  }
  return appName;
}
