// The DKIM key of the mail domain: made on first start (RSA 2048, mode 0600, in the data
// dir), used by nodemailer's signer at delivery; `petri mail dns` prints its record.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const DKIM_SELECTOR = 'petri';

export interface DkimKey {
  domainName: string;
  keySelector: string;
  privateKey: string;
}

export function dkimKeyFile(dataDir: string, domain: string): string {
  return path.join(dataDir, 'mail', `dkim-${domain}.pem`);
}

export function loadDkimKey(dataDir: string, domain: string): DkimKey {
  const file = dkimKeyFile(dataDir, domain);
  if (!existsSync(file)) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  return { domainName: domain, keySelector: DKIM_SELECTOR, privateKey: readFileSync(file, 'utf8') };
}

/** The public key as DKIM's p= tag: base64 of the SubjectPublicKeyInfo. */
export function dkimPublicKey(key: DkimKey): string {
  return createPublicKey(key.privateKey).export({ type: 'spki', format: 'der' }).toString('base64');
}

export interface MailDnsRecord {
  name: string;
  type: 'TXT';
  value: string;
  why: string;
}

/** What the operator publishes for the mail domain: DKIM (required to verify), SPF and
 * DMARC (advice: their values depend on the smarthost). */
export function mailDnsRecords(key: DkimKey, smarthost: string | undefined): MailDnsRecord[] {
  const host = smarthost ? new URL(smarthost).hostname : undefined;
  return [
    {
      name: `${DKIM_SELECTOR}._domainkey.${key.domainName}`,
      type: 'TXT',
      value: `v=DKIM1; k=rsa; p=${dkimPublicKey(key)}`,
      why: 'Petri signs every message with this key; receivers check the signature with this record',
    },
    {
      name: key.domainName,
      type: 'TXT',
      value: host ? `v=spf1 a:${host} -all` : 'v=spf1 -all',
      why: 'SPF: the smarthost may send for the domain (add what else sends for it)',
    },
    {
      name: `_dmarc.${key.domainName}`,
      type: 'TXT',
      value: 'v=DMARC1; p=quarantine; adkim=s; aspf=r',
      why: 'DMARC: receivers quarantine mail for the domain that is not signed by it',
    },
  ];
}
