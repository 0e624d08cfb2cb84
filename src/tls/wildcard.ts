// The wildcard mode: the operator's certificate for *.<domain> and its key, read at start
// (refused then with a message that says what is wrong) and watched: a new pair is checked
// and swapped in with no reload; a bad one is refused with a warning and the old one serves on.
import { type StatWatcher, unwatchFile, watchFile } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { type CertificatePair, checkCertificatePair } from './cert-files.js';

/** Files bigger than this are no certificate chain or key an operator means to give. */
const MAX_FILE_BYTES = 1024 * 1024;

/** The pair in these files, checked: valid now, the key the certificate's, for *.<domain>. */
export async function readWildcardPair(
  certFile: string,
  keyFile: string,
  domain: string,
): Promise<CertificatePair> {
  const [chain, key] = await Promise.all([
    readPem(certFile, 'tls.certFile'),
    readPem(keyFile, 'tls.keyFile'),
  ]);
  try {
    return checkCertificatePair(chain, key, `*.${domain}`);
  } catch (err) {
    throw new Error(
      `the wildcard certificate (${certFile}, ${keyFile}) is refused: ${(err as Error).message}`,
    );
  }
}

async function readPem(file: string, key: string): Promise<string> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(file);
  } catch (err) {
    throw new Error(
      `cannot read ${key} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  // Checked before reading: a device (/dev/zero) or a huge file would never end or fill memory.
  if (!info.isFile()) throw new Error(`${key} ${file} is not a regular file`);
  if (info.size > MAX_FILE_BYTES)
    throw new Error(`${key} ${file} is ${info.size} bytes: no PEM file is that big`);
  try {
    return (await readFile(file)).subarray(0, MAX_FILE_BYTES).toString('utf8');
  } catch (err) {
    throw new Error(
      `cannot read ${key} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

export interface WildcardWatcherOptions {
  certFile: string;
  keyFile: string;
  domain: string;
  /** The pair served now (read at start). */
  current: CertificatePair;
  /** Serves a new pair (the router's setCertificate('_default', pem)). */
  install(pem: string): Promise<void>;
  logger: { info(o: object, msg: string): void; warn(o: object, msg: string): void };
  /** How often the files' mtimes are polled; default 2 s. */
  intervalMs?: number;
}

/**
 * Polls both files (fs.watchFile: a rename over the file, as certbot and editors do, is seen
 * too, where inotify watches the old inode). An operator replaces the certificate and the key
 * one after the other: a check in between sees a mismatch and waits for the next change,
 * keeping the pair that serves.
 */
export class WildcardWatcher {
  private served: string;
  private pending: Promise<void> = Promise.resolve();
  private readonly listener = () => {
    this.pending = this.pending.then(() => this.check());
  };
  private watchers: StatWatcher[] = [];

  constructor(private readonly opts: WildcardWatcherOptions) {
    this.served = opts.current.pem;
  }

  start(): void {
    const interval = this.opts.intervalMs ?? 2000;
    for (const file of [this.opts.certFile, this.opts.keyFile]) {
      this.watchers.push(watchFile(file, { interval, persistent: false }, this.listener));
    }
  }

  stop(): void {
    for (const file of [this.opts.certFile, this.opts.keyFile]) unwatchFile(file, this.listener);
    this.watchers = [];
  }

  /** Resolves once the changes seen so far are handled (tests). */
  settled(): Promise<void> {
    return this.pending;
  }

  private async check(): Promise<void> {
    const { certFile, keyFile, domain, logger } = this.opts;
    let pair: CertificatePair;
    try {
      pair = await readWildcardPair(certFile, keyFile, domain);
    } catch (err) {
      logger.warn(
        { certFile, keyFile, err: (err as Error).message },
        'new wildcard certificate refused; the previous one keeps serving',
      );
      return;
    }
    if (pair.pem === this.served) return;
    try {
      await this.opts.install(pair.pem);
    } catch (err) {
      logger.warn(
        { certFile, err: (err as Error).message },
        'the router refused the new wildcard certificate; the previous one keeps serving',
      );
      return;
    }
    this.served = pair.pem;
    logger.info({ certFile, notAfter: pair.notAfter.toISOString() }, 'new wildcard certificate serving');
  }
}
