// Certificates from an ACME directory (Let's Encrypt, a company's CA; pebble in the tests):
// a thin layer over acme-client that keeps the account key in DATA_DIR/tls/acme/account.key
// (0600), answers HTTP-01 challenges through the router's well-known map, and bounds every
// exchange in time and size, so a directory that is down, slow or answering garbage costs a
// failed attempt, never a hung or crashed control plane. acme-client (and axios with it)
// loads with the first certificate asked for: a server that never uses ACME never loads it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, readFile, stat } from 'node:fs/promises';
import https from 'node:https';
import { isIP } from 'node:net';
import path from 'node:path';
import { rootCertificates } from 'node:tls';
import type { AcmeConfig, PetriConfig } from '../lib/config.js';
import { errorMessage } from '../lib/errors.js';
import { assertCertHost, checkCertificatePair, covers, writeFileAtomic } from './cert-files.js';
import type { LocalCa } from './local-ca.js';

/** One request to the directory: connect, answer and body, all of it. */
const REQUEST_TIMEOUT_MS = 30_000;
/** A whole order, from the account to the certificate (the CA's validation included). */
const OBTAIN_TIMEOUT_MS = 5 * 60_000;

/** Time limits (tests shorten them). */
export interface AcmeTimeouts {
  requestMs: number;
  obtainMs: number;
}
/** Largest answer taken from the directory (a chain is a few KiB). */
const MAX_ANSWER_BYTES = 1024 * 1024;
const CHALLENGE_TOKEN = /^[A-Za-z0-9_-]{1,128}$/;
const KEY_AUTHORIZATION = /^[A-Za-z0-9_.-]{1,512}$/;

/** How the router answers the CA's HTTP-01 requests (GET /.well-known/acme-challenge/TOKEN). */
export interface ChallengeResponder {
  setWellKnown(path: string, body: string): Promise<void>;
  deleteWellKnown(path: string): Promise<void>;
}

/** A certificate had (from the directory, or from the local CA through checkedCertificate),
 * checked: its key is the leaf's, it covers the hosts, it is valid now. */
export interface HadCertificate {
  /** The chain, leaf first, then the private key: what the router serves. Never logged. */
  pem: string;
  notBefore: Date;
  notAfter: Date;
  /** The issuer's common name (or organization). */
  issuer: string;
  /** Lower-case hex. */
  serial: string;
}

/** A chain and its key checked for these hosts, with the facts the store keeps. */
export function checkedCertificate(chainPem: string, keyPem: string, hosts: string[]): HadCertificate {
  const pair = checkCertificatePair(chainPem, keyPem);
  for (const host of hosts)
    if (!covers(pair.leaf, host)) throw new Error(`the certificate is not for ${host}`);
  return {
    pem: pair.pem,
    notBefore: pair.notBefore,
    notAfter: pair.notAfter,
    issuer: issuerName(pair.leaf.issuer),
    serial: pair.leaf.serialNumber.toLowerCase(),
  };
}

/** Where the certificate controller gets certificates: the ACME directory when tls.acme is
 * set, Petri's local CA when there is one (self-signed and acme modes). None without HTTPS. */
export function certificateSources(
  config: PetriConfig,
  responder: ChallengeResponder,
  ca: Pick<LocalCa, 'issueHostCertificate'> | undefined,
): { acme?: AcmeIssuer; 'local-ca'?: { obtain(hosts: string[]): Promise<HadCertificate> } } {
  if (config.httpsPort === 0) return {};
  return {
    ...(config.tls.acme && {
      acme: new AcmeIssuer(config.tls.acme, path.join(config.dataDir, 'tls', 'acme'), responder),
    }),
    ...(ca && {
      'local-ca': {
        async obtain(hosts: string[]) {
          const issued = await ca.issueHostCertificate(hosts);
          return checkedCertificate(issued.certPem, issued.keyPem, hosts);
        },
      },
    }),
  };
}

/** Why an attempt failed, and whether the directory itself is in trouble (unreachable, slow,
 * 5xx, rate limits): then the other hosts would fail the same way and wait too. */
export class AcmeError extends Error {
  constructor(
    message: string,
    readonly directoryTrouble: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

type AcmeModule = typeof import('acme-client');
type AcmeClient = InstanceType<AcmeModule['Client']>;

/** What the exchanges of one obtain() share: its deadline, and what the directory did last. */
interface Exchange {
  signal: AbortSignal;
  requestMs: number;
  /** Set when the directory could not be reached, timed out, or answered 5xx or 429. */
  trouble?: string;
}

export class AcmeIssuer {
  private client: Promise<AcmeClient> | undefined;

  constructor(
    private readonly config: AcmeConfig,
    /** DATA_DIR/tls/acme: the account key lives there. */
    private readonly dir: string,
    private readonly responder: ChallengeResponder,
    private readonly timeouts: AcmeTimeouts = { requestMs: REQUEST_TIMEOUT_MS, obtainMs: OBTAIN_TIMEOUT_MS },
  ) {}

  /** The ACME account's key file (made at the first certificate asked for). */
  get accountKeyFile(): string {
    return path.join(this.dir, 'account.key');
  }

  /**
   * A certificate for these hosts (host names the platform routes: never a wildcard, which
   * HTTP-01 cannot prove) with a new ECDSA P-256 key. `signal` ends it early (a stopping
   * server); it also ends after timeouts.obtainMs (5 min) whatever the directory does.
   */
  async obtain(hosts: string[], signal?: AbortSignal): Promise<HadCertificate> {
    const names = [...new Set(hosts)];
    if (names.length === 0 || names.length > 100)
      throw new Error(`a certificate is for 1 to 100 hosts, got ${names.length}`);
    for (const host of names) {
      assertCertHost(host);
      if (host.startsWith('*.')) throw new Error(`${host}: a wildcard cannot be proved over HTTP-01`);
      if (isIP(host) !== 0) throw new Error(`${host}: certificates are for host names, not addresses`);
    }
    const { obtainMs, requestMs } = this.timeouts;
    const deadline = AbortSignal.timeout(obtainMs);
    const exchange: Exchange = { signal: signal ? AbortSignal.any([signal, deadline]) : deadline, requestMs };
    try {
      return await exchanges.run(exchange, () => this.order(names));
    } catch (err) {
      if (err instanceof AcmeError) throw err;
      const { trouble } = exchange;
      let why: string;
      if (deadline.aborted) why = `the ACME directory did not finish the order within ${obtainMs / 1000} s`;
      else if (exchange.signal.aborted) why = 'stopped';
      // acme-client's own error after a network failure says nothing (see configureHttp).
      else if (trouble && err instanceof TypeError) why = trouble;
      else
        why =
          trouble && !errorMessage(err).includes(trouble)
            ? `${trouble}: ${errorMessage(err)}`
            : errorMessage(err);
      throw new AcmeError(`${this.config.directoryUrl}: ${why}`, trouble !== undefined, { cause: err });
    }
  }

  private async order(names: string[]): Promise<HadCertificate> {
    const client = await this.account();
    const acme = await loadAcme();
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ altNames: names }, key);
    const answered = new Set<string>();
    let chain: string;
    try {
      chain = await client.auto({
        csr,
        email: this.config.email,
        termsOfServiceAgreed: true,
        challengePriority: ['http-01'],
        // The CA checks; a check of our own would fetch http://HOST:80 from here, which need
        // not reach the router (a NAT, a laptop's names) and would only add a failure.
        skipChallengeVerification: true,
        challengeCreateFn: async (_authz, challenge, keyAuthorization) => {
          if (challenge.type !== 'http-01')
            throw new Error(`only http-01 challenges are answered, got ${challenge.type}`);
          const token = String(challenge.token);
          if (!CHALLENGE_TOKEN.test(token) || !KEY_AUTHORIZATION.test(keyAuthorization)) {
            throw new Error('the ACME directory sent a challenge token that is not base64url');
          }
          const wellKnown = `/.well-known/acme-challenge/${token}`;
          answered.add(wellKnown);
          await this.responder.setWellKnown(wellKnown, keyAuthorization);
        },
        challengeRemoveFn: async (_authz, challenge) => {
          const wellKnown = `/.well-known/acme-challenge/${String(challenge.token)}`;
          if (!answered.delete(wellKnown)) return;
          await this.responder.deleteWellKnown(wellKnown);
        },
      });
    } finally {
      // An order cut short (the deadline) may have left answers acme-client did not remove.
      for (const wellKnown of answered)
        await this.responder.deleteWellKnown(wellKnown).catch(() => undefined);
    }
    try {
      return checkedCertificate(chain, key.toString(), names);
    } catch (err) {
      throw new Error(`the ACME directory's certificate is not usable: ${errorMessage(err)}`);
    }
  }

  /** The client with the account's key; the account itself is made (or found again: the
   * directory knows the key) by the first order. */
  private account(): Promise<AcmeClient> {
    this.client ??= this.makeClient().catch((err) => {
      this.client = undefined;
      throw err;
    });
    return this.client;
  }

  private async makeClient(): Promise<AcmeClient> {
    const acme = await loadAcme();
    const ca = this.config.caFile ? await readFile(this.config.caFile, 'utf8') : undefined;
    configureHttp(acme, ca);
    const { eabKid, eabHmac } = this.config;
    return new acme.Client({
      directoryUrl: this.config.directoryUrl,
      accountKey: await this.accountKey(),
      ...(eabKid && eabHmac ? { externalAccountBinding: { kid: eabKid, hmacKey: eabHmac } } : {}),
      // How often an authorization's and the order's status are polled: about a minute at most.
      backoffAttempts: 8,
      backoffMin: 1000,
      backoffMax: 10_000,
    });
  }

  /** The account key (PKCS#8 PEM, mode 0600), made at first; a key found readable by others
   * is closed again. */
  private async accountKey(): Promise<string> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await chmod(this.dir, 0o700);
    const file = this.accountKeyFile;
    try {
      const found = await readFile(file, 'utf8');
      if (((await stat(file)).mode & 0o077) !== 0) await chmod(file, 0o600);
      return found;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    await writeFileAtomic(file, pem, 0o600);
    return pem;
  }
}

let loaded: Promise<AcmeModule> | undefined;
function loadAcme(): Promise<AcmeModule> {
  loaded ??= import('acme-client').then((m) => (m as unknown as { default: AcmeModule }).default ?? m);
  return loaded;
}

/** The obtain() each request belongs to: acme-client's HTTP client is one for the process. */
const exchanges = new AsyncLocalStorage<Exchange>();
let configured = false;
/**
 * acme-client's HTTP client is one axios instance for the process (one directory per Petri):
 * the directory's CA is trusted besides the system's, no redirect is followed, answers are at
 * most MAX_ANSWER_BYTES, each request ends within its timeout (30 s, and with its order's
 * deadline), and acme-client's own retries are off: a 429's Retry-After could otherwise hold
 * a pass for hours. Failures are retried by the certificate controller, with backoff.
 */
function configureHttp(acme: AcmeModule, ca: string | undefined): void {
  const http = acme.axios;
  if (ca !== undefined) http.defaults.httpsAgent = new https.Agent({ ca: [...rootCertificates, ca] });
  if (configured) return;
  configured = true;
  (http.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings!.retryMaxAttempts = 0;
  http.defaults.maxRedirects = 0;
  http.defaults.maxContentLength = MAX_ANSWER_BYTES;
  http.defaults.timeout = REQUEST_TIMEOUT_MS;
  http.interceptors.request.use((config) => {
    const exchange = exchanges.getStore();
    const own = AbortSignal.timeout(exchange?.requestMs ?? REQUEST_TIMEOUT_MS);
    config.signal = exchange ? AbortSignal.any([exchange.signal, own]) : own;
    return config;
  });
  // Ahead of acme-client's own interceptor, which judges every answer itself and loses a
  // network error on the way (5.4.0 reads the response of an error that has none): what the
  // directory did is noted here first.
  const judge = (status: number | undefined, err?: { code?: string }) => {
    const exchange = exchanges.getStore();
    if (!exchange) return;
    if (status !== undefined) {
      if (status >= 500 || status === 429) exchange.trouble = `the ACME directory answered ${status}`;
    } else if (err?.code === 'ERR_CANCELED') {
      if (!exchange.signal.aborted)
        exchange.trouble = `the ACME directory did not answer within ${exchange.requestMs / 1000} s`;
    } else {
      exchange.trouble = `the ACME directory is not reachable (${errorMessage(err)})`;
    }
  };
  const handlers = (http.interceptors.response as unknown as { handlers: unknown[] }).handlers;
  handlers.unshift({
    fulfilled: (response: { status: number }) => {
      judge(response.status);
      return response;
    },
    rejected: (err: { code?: string; response?: { status: number } }) => {
      judge(err.response?.status, err);
      throw err;
    },
    synchronous: false,
    runWhen: null,
  });
}

/** "CN=Pebble Intermediate CA 2f6210\nO=..." → "Pebble Intermediate CA 2f6210". */
function issuerName(dn: string): string {
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(dn)?.[1];
  const org = /(?:^|\n)O=([^\n]+)/.exec(dn)?.[1];
  return (cn ?? org ?? dn).slice(0, 200);
}
