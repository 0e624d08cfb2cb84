// The TLS component: what the router serves by default, per tls.mode. self-signed and acme:
// the local CA (made at first start) and a certificate of its own for *.<domain>, <domain> and
// the API host, renewed before it expires; wildcard: the operator's files, checked at start
// and watched. Prepared before the router starts (its HTTPS bind needs a certificate), started
// once the router runs.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { PetriConfig } from '../lib/config.js';
import { UserError } from '../lib/errors.js';
import type { Router } from '../router/router.js';
import { checkCertificatePair, covers, writeFileAtomic } from './cert-files.js';
import { LocalCa } from './local-ca.js';
import { readWildcardPair, WildcardWatcher } from './wildcard.js';

const DAY_MS = 86_400_000;
/** How often the default certificate's expiry is looked at. */
const RENEW_CHECK_MS = 6 * 3_600_000;
const DEFAULT_NAME = '_default';

export interface RunningTls {
  /** The local CA (self-signed and acme modes); none in the wildcard mode. */
  ca: LocalCa | undefined;
  /** DATA_DIR/tls/ca.pem when there is a local CA: what clients are told to trust. */
  caPath: string | undefined;
  /** The router's default certificate (chain then key, PEM). */
  defaultCertificate: string;
  /** Watches the wildcard files, or renews the local CA's default certificate. */
  start(router: Router): void;
  stop(): void;
}

/** Undefined when HTTPS is off (httpsPort 0). */
export async function prepareTls(config: PetriConfig, logger: Logger): Promise<RunningTls | undefined> {
  if (config.httpsPort === 0) return undefined;
  const dir = path.join(config.dataDir, 'tls');
  if (config.tls.mode === 'wildcard') return wildcardMode(config, logger);
  const { ca, created } = await LocalCa.open(dir);
  if (created) logger.info({ ca: ca.certPath }, 'made the local certificate authority');
  const names = [...new Set([`*.${config.domain}`, config.domain, config.apiHost])];
  const renewMs = config.tls.renewBeforeDays * DAY_MS;
  const own = new LocalDefault(ca, path.join(dir, 'default.pem'), names, renewMs);
  let pem = await own.current();
  let timer: NodeJS.Timeout | undefined;
  return {
    ca,
    caPath: ca.certPath,
    defaultCertificate: pem,
    start(router) {
      timer = setInterval(() => {
        own
          .current()
          .then(async (next) => {
            if (next === pem) return;
            await router.setCertificate(DEFAULT_NAME, next);
            pem = next;
            logger.info({ names }, "renewed the router's default certificate");
          })
          .catch((err: unknown) =>
            logger.warn({ err: String(err) }, "renewing the router's default certificate failed"),
          );
      }, RENEW_CHECK_MS);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
    },
  };
}

async function wildcardMode(config: PetriConfig, logger: Logger): Promise<RunningTls> {
  const { certFile, keyFile } = config.tls as { certFile: string; keyFile: string };
  let current: Awaited<ReturnType<typeof readWildcardPair>>;
  try {
    current = await readWildcardPair(certFile, keyFile, config.domain);
  } catch (err) {
    // Refused at start: serving a certificate browsers refuse is worse than not starting.
    throw new UserError('bad_request', `${(err as Error).message}; fix tls.certFile and tls.keyFile`);
  }
  if (!covers(current.leaf, config.apiHost)) {
    logger.warn(
      { apiHost: config.apiHost, names: current.leaf.subjectAltName },
      'the wildcard certificate is not for the API host: https://API_HOST/ will be refused by browsers',
    );
  }
  let watcher: WildcardWatcher | undefined;
  return {
    ca: undefined,
    caPath: undefined,
    defaultCertificate: current.pem,
    start(router) {
      watcher = new WildcardWatcher({
        certFile,
        keyFile,
        domain: config.domain,
        current,
        install: (pem) => router.setCertificate(DEFAULT_NAME, pem),
        logger,
      });
      watcher.start();
    },
    stop() {
      watcher?.stop();
    },
  };
}

/** The local CA's certificate for the router's own names, kept in DATA_DIR/tls/default.pem
 * (0600) so a restart serves the same one; a new one when it is for other names, nears its
 * end, or the CA changed. */
class LocalDefault {
  constructor(
    private readonly ca: LocalCa,
    private readonly file: string,
    private readonly names: string[],
    private readonly renewMs: number,
  ) {}

  async current(): Promise<string> {
    const kept = await this.read();
    if (kept !== undefined) return kept;
    const issued = await this.ca.issueHostCertificate(this.names);
    const pem = checkCertificatePair(issued.certPem, issued.keyPem).pem;
    await writeFileAtomic(this.file, pem, 0o600);
    return pem;
  }

  private async read(): Promise<string | undefined> {
    const text = await readFile(this.file, 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      const pair = checkCertificatePair(text, text);
      const fresh = pair.notAfter.getTime() - Date.now() > this.renewMs;
      const ca = new X509Certificate(this.ca.certPem);
      const issuedHere = pair.leaf.checkIssued(ca) && pair.leaf.verify(ca.publicKey);
      const named = this.names.every((n) =>
        (pair.leaf.subjectAltName ?? '').split(/,\s*/).includes(`DNS:${n}`),
      );
      return fresh && issuedHere && named ? pair.pem : undefined;
    } catch {
      return undefined;
    }
  }
}
