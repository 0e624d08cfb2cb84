// Certificate and key files: written atomically with owner-only modes, and read back as PEM
// blocks only. A certificate pair is checked here (dates, key, names) before anything serves
// it: node:crypto's X509Certificate does the parsing and the checks.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';

/** A host name a certificate may be for: lower-case DNS labels, optionally `*.` first. */
export const CERT_HOST = /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

export function assertCertHost(host: string): void {
  if (host.length > 253 || !CERT_HOST.test(host)) {
    throw new Error(
      `a certificate host must be a lower-case DNS name (optionally *.NAME), got '${host.slice(0, 80)}'`,
    );
  }
}

/** Whether a certificate is for this name: a wildcard name must be among its names as such
 * (a certificate for a.example.org and b.example.org is not one for *.example.org). */
export function covers(cert: X509Certificate, host: string): boolean {
  if (host.startsWith('*.')) {
    const names = (cert.subjectAltName ?? '').split(/,\s*/).map((n) => n.trim().toLowerCase());
    return names.includes(`dns:${host}`);
  }
  return cert.checkHost(host, { wildcards: true, singleLabelSubdomains: false }) !== undefined;
}

/** Writes aside, syncs, then renames: a reader (HAProxy on a reload, a restart after a crash)
 * sees the old file or the new one, never half of one. */
export async function writeFileAtomic(file: string, content: string, mode = 0o600): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const handle = await open(tmp, 'w', mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  } finally {
    await handle.close().catch(() => undefined);
  }
  await rename(tmp, file);
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n[A-Za-z0-9+/=\r\n]{1,65536}?-----END \1-----/g;

/** The PEM blocks of a text, each on its own lines with no blank line between them: what
 * HAProxy's runtime API takes as a payload (a blank line ends it). Anything else in the text
 * (openssl's "Bag Attributes", comments) is left out. */
export function pemBlocks(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((m) => ({
    label: m[1] as string,
    pem: `${m[0].replace(/\r/g, '').replace(/\n{2,}/g, '\n')}\n`,
  }));
}

export interface CertificatePair {
  /** The chain, leaf first, then the key: the file HAProxy loads. */
  pem: string;
  leaf: X509Certificate;
  notBefore: Date;
  notAfter: Date;
}

/**
 * A certificate chain and its private key, checked: at least one certificate, exactly one
 * private key, the key is the leaf's, valid now, and (when given) the leaf covers `host`.
 * Throws a message that says what is wrong; never one that quotes the key.
 */
export function checkCertificatePair(
  chainText: string,
  keyText: string,
  host?: string,
  now = new Date(),
): CertificatePair {
  const certs = pemBlocks(chainText).filter((b) => b.label === 'CERTIFICATE');
  if (certs.length === 0)
    throw new Error('the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  const keys = pemBlocks(keyText).filter((b) => /PRIVATE KEY$/.test(b.label));
  if (keys.length !== 1) {
    throw new Error(`the key file must hold exactly one PEM private key, found ${keys.length}`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate((certs[0] as { pem: string }).pem);
  } catch (err) {
    throw new Error(`the certificate cannot be read: ${(err as Error).message}`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey((keys[0] as { pem: string }).pem);
  } catch {
    throw new Error(
      'the private key cannot be read (an encrypted key is not supported: give it without a passphrase)',
    );
  }
  if (!leaf.checkPrivateKey(key))
    throw new Error("the private key is not the certificate's (they do not match)");
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now < notBefore) throw new Error(`the certificate is not valid yet (from ${notBefore.toISOString()})`);
  if (now >= notAfter) throw new Error(`the certificate expired on ${notAfter.toISOString()}`);
  if (host !== undefined && !covers(leaf, host)) {
    throw new Error(`the certificate is not for ${host} (its names: ${leaf.subjectAltName ?? 'none'})`);
  }
  // The key in PKCS#8 whatever form it came in: one label for HAProxy to read.
  const keyPem = key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { pem: [...certs.map((c) => c.pem), keyPem].join(''), leaf, notBefore, notAfter };
}
