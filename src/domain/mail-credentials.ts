// An app's mail credentials and what its processes are given (SMTP_URL, MAIL_FROM,
// MAIL_API_URL, MAIL_API_TOKEN). The password and token are derived from the server's key,
// the app's id and its mail key version, so the store never holds them and
// `petri mail rotate` (a new version) ends the old ones at once.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MailConfig, PetriConfig } from '../lib/config.js';
import type { SecretBox } from '../lib/secrets.js';

type MailApp = { id: number; name: string; mail_key_version: number };

/** Local parts an app's address never is: Petri's own (its notices come from petri@) and
 * the mailboxes people read as the domain's own voice (RFC 2142's postmaster, abuse,
 * hostmaster, security ..., noreply, root, support). App names are host names too, so the name stays allowed;
 * only its mail address changes (see mailLocalPart). */
export const RESERVED_MAIL_NAMES: ReadonlySet<string> = new Set([
  'petri',
  'postmaster',
  'abuse',
  'noreply',
  'no-reply',
  'donotreply',
  'do-not-reply',
  'hostmaster',
  'webmaster',
  'admin',
  'administrator',
  'root',
  'mailer-daemon',
  'security',
  'noc',
  'support',
  'billing',
  'bounce',
  'bounces',
  'dmarc',
  'unsubscribe',
  'ssl-admin',
]);

/** The local part of an app's address: its name, or NAME.app for a reserved name (a dot is
 * never in an app name, so NAME.app is no other app's address). */
export function mailLocalPart(appName: string): string {
  return RESERVED_MAIL_NAMES.has(appName) ? `${appName}.app` : appName;
}

function derived(secrets: SecretBox, kind: 'smtp' | 'api', app: MailApp): string {
  const key = secrets.derive('mail relay credentials');
  return createHmac('sha256', key).update(`${kind}:${app.id}:${app.mail_key_version}`).digest('base64url');
}

export const mailPassword = (secrets: SecretBox, app: MailApp) => derived(secrets, 'smtp', app);
/** NAME.SECRET: the relay finds the app by its name, then compares the whole token. */
export const mailApiToken = (secrets: SecretBox, app: MailApp) =>
  `${app.name}.${derived(secrets, 'api', app)}`;

/** Compares in constant time, so a guess learns nothing from how long a refusal took. */
export function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Where sandboxes reach the relay: the bridge's gateway (the subnet's first address), or
 * loopback when sandboxes share the host's network. */
export function mailListenAddress(config: Pick<PetriConfig, 'network'>): string {
  if (!config.network.enabled) return '127.0.0.1';
  const [base] = config.network.subnet.split('/');
  const parts = (base ?? '').split('.').map(Number);
  const n = (((parts[0] ?? 0) * 256 + (parts[1] ?? 0)) * 256 + (parts[2] ?? 0)) * 256 + (parts[3] ?? 0) + 1;
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** What every process of the app is given; nothing when the relay is off. */
export function mailEnv(
  config: Pick<PetriConfig, 'network'> & { mail: MailConfig },
  secrets: SecretBox,
  app: MailApp,
): Record<string, string> {
  if (!config.mail.enabled) return {};
  const host = mailListenAddress(config);
  const password = mailPassword(secrets, app);
  return {
    SMTP_URL: `smtp://${encodeURIComponent(app.name)}:${password}@${host}:${config.mail.smtpPort}`,
    MAIL_FROM: `${mailLocalPart(app.name)}@${config.mail.domain}`,
    MAIL_API_URL: `http://${host}:${config.mail.httpPort}/v1/send`,
    MAIL_API_TOKEN: mailApiToken(secrets, app),
  };
}

/** The token in a recipient's unsubscribe link: only Petri can make one, for that app and address. */
export function unsubscribeToken(key: Buffer, appId: number, email: string): string {
  return createHmac('sha256', key).update(`${appId}:${email.toLowerCase()}`).digest('base64url').slice(0, 32);
}

export function unsubscribeUrl(base: string, key: Buffer, appId: number, email: string): string {
  const e = Buffer.from(email.toLowerCase()).toString('base64url');
  return `${base}/mail/unsubscribe?a=${appId}&e=${e}&t=${unsubscribeToken(key, appId, email)}`;
}
