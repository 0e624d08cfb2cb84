// Petri's own certificate authority for the self-signed mode (and the acme mode's first
// certificate): made at first start in DATA_DIR/tls (ca.pem, ca.key mode 0600), it issues
// host certificates so HTTPS works on a laptop once ca.pem is trusted. ECDSA P-256 keys,
// made and used through node:crypto's WebCrypto; @peculiar/x509 writes the certificates. It
// is 3 MiB of heap, so it is loaded when a certificate is first written, not at start: a
// restart that finds its CA and default certificate on disk never needs it (issue 16).
import { randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { X509Certificate as PeculiarCertificate } from '@peculiar/x509';
import { assertCertHost, writeFileAtomic } from './cert-files.js';

type X509Module = typeof import('@peculiar/x509');
let x509Module: Promise<X509Module> | undefined;

/** @peculiar/x509, set up to use node:crypto's WebCrypto: loaded by the first issue. */
function loadX509(): Promise<X509Module> {
  x509Module ??= import('@peculiar/x509').then((x509) => {
    x509.cryptoProvider.set(webcrypto as unknown as Crypto);
    return x509;
  });
  return x509Module;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** Ten years: a CA the operator trusted once should not need trusting again soon. */
const CA_DAYS = 3650;
/** Under the 398 days browsers accept for a server certificate. */
export const HOST_CERT_DAYS = 397;
/** Certificates are back-dated a little, for clocks a few minutes behind. */
const BACKDATE_MS = 10 * 60_000;
/** Names one certificate may carry (every host of an app; far more than any needs). */
const MAX_HOSTS = 100;

export interface IssuedCertificate {
  /** The host's certificate then the CA's (the chain a client is sent). */
  certPem: string;
  /** PKCS#8 PEM. Never logged. */
  keyPem: string;
  notAfter: Date;
}

export class LocalCa {
  private constructor(
    /** DATA_DIR/tls/ca.pem: what clients trust (curl --cacert, NODE_EXTRA_CA_CERTS). */
    readonly certPath: string,
    readonly certPem: string,
    private readonly key: CryptoKey,
  ) {}

  /** The CA's certificate as @peculiar/x509 reads it (its subject and key identifier go into
   * what it issues): made with the first certificate issued. */
  private issuerCert?: PeculiarCertificate;

  /** The CA in `dir` (DATA_DIR/tls), made when there is none. `created` says which. */
  static async open(dir: string): Promise<{ ca: LocalCa; created: boolean }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const certPath = path.join(dir, 'ca.pem');
    const keyPath = path.join(dir, 'ca.key');
    const [certPem, keyPem] = await Promise.all([readOrUndefined(certPath), readOrUndefined(keyPath)]);
    if (certPem !== undefined && keyPem !== undefined) {
      return { ca: await LocalCa.load(certPath, certPem, keyPem), created: false };
    }
    if (certPem !== undefined) {
      // A new CA would leave every client that trusts the old one refusing Petri: say so.
      throw new Error(
        `${certPath} is there but its key ${keyPath} is missing; restore the key, or remove both files to make a new CA (clients must then trust the new ca.pem)`,
      );
    }
    const made = await LocalCa.create();
    // The key first: a ca.pem on disk always has its key beside it.
    await writeFileAtomic(keyPath, made.keyPem, 0o600);
    await writeFileAtomic(certPath, made.certPem, 0o644);
    return { ca: await LocalCa.load(certPath, made.certPem, made.keyPem), created: true };
  }

  private static async load(certPath: string, certPem: string, keyPem: string): Promise<LocalCa> {
    // Read now, so a damaged ca.pem stops the start rather than the first issue.
    try {
      new X509Certificate(certPem);
    } catch (err) {
      throw new Error(`the local CA's certificate ${certPath} cannot be read: ${(err as Error).message}`);
    }
    const der = Buffer.from(keyPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    let key: CryptoKey;
    try {
      key = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, false, ['sign']);
    } catch {
      throw new Error(`the local CA's key next to ${certPath} cannot be read (ca.key: PKCS#8 P-256 PEM)`);
    }
    return new LocalCa(certPath, certPem, key);
  }

  private static async create(): Promise<{ certPem: string; keyPem: string }> {
    const x509 = await loadX509();
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      // The host's name tells two laptops' CAs apart in a browser's list of trusted ones.
      name: `CN=Petri local CA (${safeDnValue(os.hostname())}), O=Petri`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_DAYS * DAY_MS),
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    return { certPem: cert.toString('pem'), keyPem: await pkcs8Pem(keys.privateKey) };
  }

  /** A server certificate for these hosts (the first is its subject), signed by this CA. */
  async issueHostCertificate(hosts: string[], days = HOST_CERT_DAYS): Promise<IssuedCertificate> {
    const names = [...new Set(hosts)];
    if (names.length === 0 || names.length > MAX_HOSTS) {
      throw new Error(`a certificate is for 1 to ${MAX_HOSTS} hosts, got ${names.length}`);
    }
    for (const host of names) assertCertHost(host);
    const x509 = await loadX509();
    this.issuerCert ??= new x509.X509Certificate(this.certPem);
    const caCert = this.issuerCert;
    const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const notAfter = new Date(now + days * DAY_MS);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names[0]}`,
      issuer: caCert.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter,
      signingAlgorithm: ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: this.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    // Seconds: what the certificate says (it holds no milliseconds).
    const expires = new Date(Math.floor(notAfter.getTime() / 1000) * 1000);
    return {
      certPem: `${cert.toString('pem')}\n${this.certPem.trim()}\n`,
      keyPem: await pkcs8Pem(keys.privateKey),
      notAfter: expires,
    };
  }
}

/** 16 random bytes, the top bit clear: a positive serial, as RFC 5280 wants. */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] as number) & 0x7f;
  return bytes.toString('hex');
}

/** A host name as a DN value: anything but letters, digits, dots and hyphens becomes '-'. */
function safeDnValue(value: string): string {
  return value.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 48) || 'host';
}

async function pkcs8Pem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function readOrUndefined(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
