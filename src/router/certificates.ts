// The router's certificates: one file per name in the certs dir (the chain, then the key; mode
// 600), listed in the crt-list the HTTPS bind loads, the default certificate first (served to
// a client that names no host the list has). HaproxyRouter swaps them in through the runtime
// API (new/set/commit ssl cert, add/del ssl crt-list), with no reload; the files on disk are
// kept equal to what runs, so a reload or a restart serves the same. Pure parts here.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import path from 'node:path';

/** The certificate served when no host's own matches (the local CA's or the operator's). */
export const DEFAULT_CERT = '_default';

/** A host name (the certificate's SNI filter and its file name) or the default. Lower case,
 * DNS labels only: nothing that could end a crt-list line or a runtime-API word. */
const CERT_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** HAProxy 2.6 takes a command and its payload in one buffer (tune.bufsize, 16 KiB): a chain
 * and key above this cannot be set at runtime. A chain of three 4096-bit RSA certificates and
 * their key take some 9 KB. */
export const MAX_CERT_PEM_BYTES = 15_000;

export function assertCertName(name: string): void {
  if (name !== DEFAULT_CERT && (name.length > 253 || !CERT_NAME.test(name))) {
    throw new Error(
      `a certificate name must be a lower-case host name or ${DEFAULT_CERT}, got '${name.slice(0, 80)}'`,
    );
  }
}

export function certFile(certsDir: string, name: string): string {
  assertCertName(name);
  return path.join(certsDir, `${name}.pem`);
}

/** The names of the certificate files in a listing of the certs dir. */
export function certNames(files: readonly string[]): string[] {
  return files
    .filter((f) => f.endsWith('.pem'))
    .map((f) => f.slice(0, -'.pem'.length))
    .filter((n) => n === DEFAULT_CERT || (n.length <= 253 && CERT_NAME.test(n)));
}

/** The default certificate's SNI filter: a name no client sends (.invalid is reserved). Without
 * one, HAProxy indexes it under its own names, and a host certificate added later for one of
 * them (the API host, DOMAIN) would lose to it; as the first line it stays the certificate of
 * every client whose name matches no line, and of those that send none. */
export const DEFAULT_SNI = 'default.petri.invalid';

/** The crt-list: the default certificate first, then each host's with the host as its SNI
 * filter. */
export function renderCrtList(certsDir: string, names: readonly string[]): string {
  const hosts = names.filter((n) => n !== DEFAULT_CERT).sort();
  const lines = [
    `${certFile(certsDir, DEFAULT_CERT)} ${DEFAULT_SNI}`,
    ...hosts.map((h) => `${certFile(certsDir, h)} ${h}`),
  ];
  return `${lines.join('\n')}\n`;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]{1,40})-----\n[A-Za-z0-9+/=\n]{1,20000}?-----END \1-----/g;

/**
 * What HAProxy will load, checked first so that a bad one never starts a runtime transaction:
 * PEM certificates (the leaf first) and exactly one private key, the leaf's. Returns the
 * blocks alone, one after the other with no blank line (the runtime API's payload ends at a
 * blank line). A message never quotes the key.
 */
export function normalizeCertificatePem(pem: string): string {
  // Before any parsing: what is far bigger than any chain is refused as it is.
  if (pem.length > 4 * MAX_CERT_PEM_BYTES) {
    throw new Error(
      `a certificate chain and key of ${pem.length} bytes is more than the router can swap in at runtime (${MAX_CERT_PEM_BYTES})`,
    );
  }
  const blocks = [...pem.replace(/\r/g, '').matchAll(PEM_BLOCK)].map((m) => ({
    label: m[1] as string,
    text: m[0].replace(/\n+/g, '\n'),
  }));
  const certs = blocks.filter((b) => b.label === 'CERTIFICATE');
  const keys = blocks.filter((b) => /PRIVATE KEY$/.test(b.label));
  if (certs.length === 0 || keys.length !== 1) {
    throw new Error(
      `a certificate PEM must hold the certificate chain and one private key; got ${certs.length} certificate(s) and ${keys.length} key(s)`,
    );
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate((certs[0] as { text: string }).text);
  } catch (err) {
    throw new Error(`the certificate cannot be read: ${(err as Error).message}`);
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey((keys[0] as { text: string }).text));
  } catch {
    throw new Error('the private key cannot be read (an unencrypted PEM key is needed)');
  }
  if (!matches) throw new Error("the private key is not the certificate's");
  const text = `${[...certs, ...keys].map((b) => b.text).join('\n')}\n`;
  if (text.length > MAX_CERT_PEM_BYTES) {
    throw new Error(
      `a certificate chain and key of ${text.length} bytes is more than the router can swap in at runtime (${MAX_CERT_PEM_BYTES}); leave unneeded certificates (the root) out of the chain`,
    );
  }
  return text;
}

/** `show ssl cert`: one certificate file per line, '*' before one in a transaction. */
export function parseShowSslCert(text: string): Set<string> {
  const files = new Set<string>();
  for (const line of text.split('\n')) {
    const file = line.trim().replace(/^\*/, '');
    if (file.startsWith('/')) files.add(file);
  }
  return files;
}
