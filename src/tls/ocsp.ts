// OCSP stapling (issue 20). HAProxy 2.6 cannot fetch OCSP responses itself (ocsp-update came
// in 2.8), so Petri does: for each certificate the router serves whose issuer names an OCSP
// responder (Authority Information Access) and is in its chain, it asks the responder, checks
// the answer (this serial, status good, signed by the issuer or its delegated responder, in
// date), and has the router staple it; again at half its validity, with backoff on failure. A
// failed fetch never withdraws a good response that has not expired, nor stops serving.
import { createHash, verify, X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type { BasicOCSPResponse, CertID } from '@peculiar/asn1-ocsp';
import { backoffDelay } from '../lib/backoff.js';
import type { Router } from '../router/router.js';
import { pemBlocks } from './cert-files.js';

/** HAProxy 2.6 takes a runtime command in one 16 KiB buffer: a response above this (in
 * base64) could not be stapled. Real ones are 0.5 to 3 KB. */
export const MAX_OCSP_RESPONSE_BYTES = 10_000;
/** The whole exchange, connection to last byte: a responder that hangs costs this, no more. */
const FETCH_TIMEOUT_MS = 10_000;
/** Clocks a few minutes apart (the responder's, ours); also HAProxy's: it staples no response
 * within 5 minutes of its nextUpdate. */
const SKEW_MS = 5 * 60_000;
/** Refreshes come at half of what is left of a response's validity, within these bounds. */
const MIN_REFRESH_MS = 60_000;
const MAX_REFRESH_MS = 7 * 86_400_000;
/** Failed fetches: 1 min, 2, 4 ... up to an hour apart. */
const RETRY_MS = 60_000;
const RETRY_MAX_MS = 3_600_000;
/** Refreshes at a time: a start with thousands of certificates does not flood a responder. */
const MAX_IN_FLIGHT = 4;

const SHA1 = '1.3.14.3.2.26';
const HASHES: Record<string, string> = {
  [SHA1]: 'sha1',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};
/** Signature algorithms of OCSP responses, and the digest node:crypto's verify takes (null:
 * the algorithm has its own). RSA-PSS is left out: no public CA signs OCSP with it. */
const SIGNATURES: Record<string, string | null> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
  '1.3.101.113': null,
};

/** The ASN.1 modules (1 MiB and more of heap), needed only for a certificate whose issuer
 * offers OCSP: none of the local CA's, so they are loaded with the first such certificate.
 * require, not import(): ocspTarget and checkOcspResponse stay synchronous, and these
 * packages have one (CommonJS) entry point, so it is the very module import would give. */
const requireHere = createRequire(import.meta.url);
interface Asn1 {
  ocsp: typeof import('@peculiar/asn1-ocsp');
  schema: typeof import('@peculiar/asn1-schema');
  x509: typeof import('@peculiar/asn1-x509');
}
let asn1Modules: Asn1 | undefined;

function asn1(): Asn1 {
  asn1Modules ??= {
    ocsp: requireHere('@peculiar/asn1-ocsp'),
    schema: requireHere('@peculiar/asn1-schema'),
    x509: requireHere('@peculiar/asn1-x509'),
  };
  return asn1Modules;
}

/** The OCSP responder's http(s) URL in a certificate's Authority Information Access, as
 * node:crypto prints it ("OCSP - URI:http://...", JSON-quoted when it holds odd characters). */
function ocspUrlOf(cert: X509Certificate): string | undefined {
  for (const line of (cert.infoAccess ?? '').split('\n')) {
    const m = /^OCSP - URI:(.*)$/.exec(line);
    if (!m) continue;
    let value = m[1] as string;
    if (value.startsWith('"')) {
      try {
        value = JSON.parse(value) as string;
      } catch {
        continue;
      }
    }
    if (/^https?:\/\//i.test(value)) return value;
  }
  return undefined;
}

/** Where a certificate's status is asked, and about what. */
export interface OcspTarget {
  url: string;
  leaf: X509Certificate;
  issuer: X509Certificate;
  /** The DER request (SHA-1 CertID, no nonce: responders answer from a cache). */
  request: Uint8Array;
}

/** The responder and request for a chain (PEM, leaf first), or why there is none: that is
 * no error (Let's Encrypt dropped OCSP in 2025, the local CA never had it). */
export function ocspTarget(pem: string): OcspTarget | { none: string } {
  const blocks = pemBlocks(pem).filter((b) => b.label === 'CERTIFICATE');
  const [leafPem, ...chain] = blocks.map((b) => b.pem);
  if (leafPem === undefined) return { none: 'no certificate' };
  const leaf = new X509Certificate(leafPem);
  const url = ocspUrlOf(leaf);
  if (url === undefined) return { none: 'none offered by issuer' };
  const issuer = chain
    .map((c) => new X509Certificate(c))
    .find((c) => leaf.checkIssued(c) && leaf.verify(c.publicKey));
  if (issuer === undefined) return { none: "the issuer's certificate is not in the chain" };
  const certId = certIdOf(leaf, issuer, SHA1);
  const { OCSPRequest, TBSRequest, Request } = asn1().ocsp;
  const { AsnConvert } = asn1().schema;
  const request = new OCSPRequest({
    tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certId })] }),
  });
  return { url, leaf, issuer, request: new Uint8Array(AsnConvert.serialize(request)) };
}

function certIdOf(leaf: X509Certificate, issuer: X509Certificate, hashOid: string): CertID {
  const hash = HASHES[hashOid];
  if (hash === undefined) throw new Error(`unknown CertID hash ${hashOid}`);
  const { ocsp } = asn1();
  const { AsnConvert, OctetString } = asn1().schema;
  const { AlgorithmIdentifier, Certificate } = asn1().x509;
  const issuerAsn = AsnConvert.parse(issuer.raw, Certificate);
  const leafAsn = AsnConvert.parse(leaf.raw, Certificate);
  const digest = (data: ArrayBuffer) =>
    new OctetString(createHash(hash).update(new Uint8Array(data)).digest());
  return new ocsp.CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: hashOid, parameters: null }),
    issuerNameHash: digest(AsnConvert.serialize(issuerAsn.tbsCertificate.subject)),
    issuerKeyHash: digest(issuerAsn.tbsCertificate.subjectPublicKeyInfo.subjectPublicKey),
    serialNumber: leafAsn.tbsCertificate.serialNumber,
  });
}

export interface OcspAnswer {
  status: 'good' | 'revoked' | 'unknown';
  thisUpdate: Date;
  nextUpdate: Date;
}

/**
 * Checks a responder's answer about `target` at `now` and says what it says: thrown when it
 * is not one to trust or to staple (not successful, another certificate's, badly signed, not
 * yet valid, expired or within 5 minutes of it, no nextUpdate).
 */
export function checkOcspResponse(der: Uint8Array, target: OcspTarget, now = Date.now()): OcspAnswer {
  const { ocsp } = asn1();
  const { OCSPResponse, OCSPResponseStatus, id_pkix_ocsp_basic } = ocsp;
  const { AsnConvert } = asn1().schema;
  let basic: BasicOCSPResponse;
  try {
    const response = AsnConvert.parse(der, OCSPResponse);
    if (response.responseStatus !== OCSPResponseStatus.successful) {
      throw new Error(
        `the responder answered ${OCSPResponseStatus[response.responseStatus] ?? response.responseStatus}`,
      );
    }
    if (response.responseBytes?.responseType !== id_pkix_ocsp_basic)
      throw new Error('not a basic OCSP response');
    basic = AsnConvert.parse(response.responseBytes.response.buffer, ocsp.BasicOCSPResponse);
  } catch (err) {
    throw new Error(`unreadable OCSP response: ${(err as Error).message}`);
  }
  const { leaf, issuer } = target;
  const single = basic.tbsResponseData.responses.find((r) => {
    if (HASHES[r.certID.hashAlgorithm.algorithm] === undefined) return false;
    const mine = certIdOf(leaf, issuer, r.certID.hashAlgorithm.algorithm);
    return (
      sameBytes(r.certID.issuerNameHash.buffer, mine.issuerNameHash.buffer) &&
      sameBytes(r.certID.issuerKeyHash.buffer, mine.issuerKeyHash.buffer) &&
      sameBytes(stripZeros(r.certID.serialNumber), stripZeros(mine.serialNumber))
    );
  });
  if (single === undefined) throw new Error(`the OCSP response is not about serial ${leaf.serialNumber}`);
  const thisUpdate = single.thisUpdate;
  const nextUpdate = single.nextUpdate;
  if (nextUpdate === undefined) throw new Error('the OCSP response has no nextUpdate');
  if (thisUpdate.getTime() > now + SKEW_MS) {
    throw new Error(`the OCSP response is not valid before ${thisUpdate.toISOString()}`);
  }
  if (nextUpdate.getTime() <= thisUpdate.getTime() || nextUpdate.getTime() <= now + SKEW_MS) {
    throw new Error(`the OCSP response is stale (next update ${nextUpdate.toISOString()})`);
  }
  checkSignature(basic, issuer, now);
  const { certStatus } = single;
  const status = certStatus.revoked !== undefined ? 'revoked' : certStatus.good === null ? 'good' : 'unknown';
  return { status, thisUpdate, nextUpdate };
}

/** Signed by the issuer itself, or by a responder certificate the issuer gave id-kp-OCSPSigning
 * (RFC 6960 4.2.2.2) that is valid now. */
function checkSignature(basic: BasicOCSPResponse, issuer: X509Certificate, now: number): void {
  const alg = basic.signatureAlgorithm.algorithm;
  const digest = SIGNATURES[alg];
  if (digest === undefined)
    throw new Error(`the OCSP response is signed with an unsupported algorithm ${alg}`);
  const data = basic.tbsResponseDataRaw;
  if (data === undefined) throw new Error('unreadable OCSP response data');
  const signature = new Uint8Array(basic.signature);
  const { id_kp_OCSPSigning } = asn1().ocsp;
  const { AsnConvert } = asn1().schema;
  const delegated = (basic.certs ?? [])
    .map((c) => new X509Certificate(new Uint8Array(AsnConvert.serialize(c))))
    .filter(
      (c) =>
        c.checkIssued(issuer) &&
        c.verify(issuer.publicKey) &&
        (c.keyUsage ?? []).includes(id_kp_OCSPSigning) &&
        Date.parse(c.validFrom) <= now + SKEW_MS &&
        now < Date.parse(c.validTo),
    );
  for (const signer of [issuer, ...delegated]) {
    try {
      if (verify(digest, new Uint8Array(data), signer.publicKey, signature)) return;
    } catch {
      // A key of another type than the algorithm's: try the next signer.
    }
  }
  throw new Error('the OCSP response is not signed by the issuer nor by a responder it delegated to');
}

function stripZeros(buf: ArrayBuffer): ArrayBuffer {
  const bytes = new Uint8Array(buf);
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.slice(i).buffer;
}

function sameBytes(a: ArrayBuffer, b: ArrayBuffer): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}

/** POSTs the request (RFC 6960 A.1), reads at most MAX_OCSP_RESPONSE_BYTES, within the timeout. */
export async function fetchOcspResponse(
  target: Pick<OcspTarget, 'url' | 'request'>,
  signal?: AbortSignal,
  timeoutMs = FETCH_TIMEOUT_MS,
): Promise<Uint8Array> {
  const abort = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(signal ? [signal] : [])]);
  try {
    const res = await fetch(target.url, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
      body: new Blob([Buffer.from(target.request)]),
      redirect: 'error',
      signal: abort,
    });
    if (res.status !== 200 || res.body === null) {
      await res.body?.cancel();
      throw new Error(`the responder answered HTTP ${res.status}`);
    }
    const chunks: Uint8Array[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += chunk.length;
      if (size > MAX_OCSP_RESPONSE_BYTES) {
        await res.body.cancel().catch(() => undefined);
        throw new Error(`the OCSP response is larger than ${MAX_OCSP_RESPONSE_BYTES} bytes`);
      }
      chunks.push(chunk);
    }
    return new Uint8Array(Buffer.concat(chunks));
  } catch (err) {
    if (abort.aborted && !signal?.aborted)
      throw new Error(`the responder did not answer within ${timeoutMs} ms`);
    const cause = (err as { cause?: { message?: string } }).cause?.message;
    throw new Error(
      `asking the OCSP responder failed: ${(err as Error).message}${cause ? ` (${cause})` : ''}`,
    );
  }
}

/** The router's side of stapling (HaproxyRouter). */
export interface OcspRouter {
  /** The certificates it serves (chain and key PEM), by name. */
  installedCertificates(): Promise<Map<string, string>>;
  /** Staples `der` to the certificate `name` (none: stops stapling) while it is still `pem`;
   * false when it is not (replaced, removed meanwhile). */
  setOcspResponse(name: string, pem: string, der: Uint8Array | undefined): Promise<boolean>;
}

export interface OcspLogger {
  info(o: object, msg?: string): void;
  warn(o: object, msg?: string): void;
}

/** What `petri certs` may show. */
export interface OcspState {
  /** stapled; none (the issuer offers no OCSP, or no issuer in the chain); revoked; failing. */
  state: 'stapled' | 'none' | 'revoked' | 'failing' | 'pending';
  detail?: string;
  nextUpdate?: Date;
  failures: number;
}

interface Entry {
  pem: string;
  target: OcspTarget | undefined;
  state: OcspState;
  timer?: NodeJS.Timeout;
  /** A newer watch() of the same name makes an older fetch's answer moot. */
  generation: number;
}

export interface OcspStaplerOptions {
  router: OcspRouter;
  logger: OcspLogger;
  retryMs?: number;
  retryMaxMs?: number;
  fetchTimeoutMs?: number;
  /** Tests: refresh a good response this often, not at half its validity. */
  refreshMs?: number;
}

/** Keeps a fresh OCSP response stapled to each certificate the router serves that has one. */
export class OcspStapler {
  private readonly entries = new Map<string, Entry>();
  private readonly stopping = new AbortController();
  private generation = 0;
  private inFlight = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly opts: OcspStaplerOptions) {}

  /** Every certificate the router already serves (kept from before a restart). */
  async start(): Promise<void> {
    for (const [name, pem] of await this.opts.router.installedCertificates()) {
      if (!this.entries.has(name)) this.watch(name, pem);
    }
  }

  stop(): void {
    this.stopping.abort();
    for (const entry of this.entries.values()) clearTimeout(entry.timer);
  }

  /** A certificate the router now serves (new, renewed, or the same again). */
  watch(name: string, pem: string): void {
    const had = this.entries.get(name);
    if (had?.pem === pem || this.stopping.signal.aborted) return;
    if (had) clearTimeout(had.timer);
    let target: OcspTarget | undefined;
    let none: string | undefined;
    try {
      const found = ocspTarget(pem);
      if ('none' in found) none = found.none;
      else target = found;
    } catch (err) {
      none = `the certificate cannot be read: ${(err as Error).message}`;
    }
    const entry: Entry = {
      pem,
      target,
      state:
        none === undefined ? { state: 'pending', failures: 0 } : { state: 'none', detail: none, failures: 0 },
      generation: ++this.generation,
    };
    this.entries.set(name, entry);
    if (target !== undefined) this.schedule(name, entry, 0);
  }

  forget(name: string): void {
    clearTimeout(this.entries.get(name)?.timer);
    this.entries.delete(name);
  }

  state(name: string): OcspState | undefined {
    const state = this.entries.get(name)?.state;
    return state && { ...state };
  }

  private schedule(name: string, entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      // Whatever fails (the router's runtime API too) is retried: an entry is never dropped.
      this.limited(() => this.refresh(name, entry)).catch((err: unknown) => {
        if (this.current(name, entry)) this.failed(name, entry, (err as Error).message ?? String(err));
      });
    }, delayMs);
    entry.timer.unref();
  }

  private async limited(work: () => Promise<void>): Promise<void> {
    if (this.inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.inFlight++;
    try {
      await work();
    } finally {
      this.inFlight--;
      this.waiting.shift()?.();
    }
  }

  private current(name: string, entry: Entry): boolean {
    return this.entries.get(name)?.generation === entry.generation && !this.stopping.signal.aborted;
  }

  private async refresh(name: string, entry: Entry): Promise<void> {
    if (!this.current(name, entry)) return;
    const target = entry.target as OcspTarget;
    const { router, logger } = this.opts;
    let answer: OcspAnswer;
    let der: Uint8Array;
    try {
      der = await fetchOcspResponse(target, this.stopping.signal, this.opts.fetchTimeoutMs);
      answer = checkOcspResponse(der, target);
    } catch (err) {
      if (!this.current(name, entry)) return;
      this.failed(name, entry, (err as Error).message);
      return;
    }
    if (!this.current(name, entry)) return;
    if (answer.status === 'unknown') {
      this.failed(name, entry, 'the responder does not know the certificate (status unknown)');
      return;
    }
    if (answer.status === 'revoked') {
      // Not stapled, and a good one stapled before is withdrawn: the issuer says otherwise now.
      logger.warn(
        { certificate: name, serial: target.leaf.serialNumber, responder: target.url },
        'the OCSP responder says this certificate is REVOKED: it is not stapled; replace the certificate',
      );
      await router.setOcspResponse(name, entry.pem, undefined);
      entry.state = { state: 'revoked', nextUpdate: answer.nextUpdate, failures: 0 };
      this.schedule(name, entry, this.opts.refreshMs ?? refreshDelay(answer));
      return;
    }
    if (!(await router.setOcspResponse(name, entry.pem, der))) return;
    const first = entry.state.state !== 'stapled';
    entry.state = { state: 'stapled', nextUpdate: answer.nextUpdate, failures: 0 };
    if (first) {
      logger.info(
        { certificate: name, nextUpdate: answer.nextUpdate.toISOString() },
        'OCSP response stapled',
      );
    }
    this.schedule(name, entry, this.opts.refreshMs ?? refreshDelay(answer));
  }

  /** Retried with backoff; a response stapled before stays until it expires (HAProxy then
   * stops sending it on its own). */
  private failed(name: string, entry: Entry, reason: string): void {
    const failures = entry.state.failures + 1;
    const kept =
      entry.state.state === 'stapled' || entry.state.state === 'failing' ? entry.state.nextUpdate : undefined;
    const stillGood = kept !== undefined && kept.getTime() > Date.now();
    entry.state = { state: stillGood ? 'stapled' : 'failing', detail: reason, nextUpdate: kept, failures };
    const delay = backoffDelay(failures, this.opts.retryMs ?? RETRY_MS, this.opts.retryMaxMs ?? RETRY_MAX_MS);
    this.opts.logger.warn(
      { certificate: name, responder: entry.target?.url, failures, reason, retryInMs: delay },
      stillGood
        ? 'refreshing the OCSP response failed; the stapled one is kept until it expires'
        : 'getting an OCSP response failed; nothing is stapled',
    );
    this.schedule(name, entry, delay);
  }
}

function refreshDelay(answer: OcspAnswer): number {
  const half = (answer.nextUpdate.getTime() - Date.now()) / 2;
  return Math.min(Math.max(half, MIN_REFRESH_MS), MAX_REFRESH_MS);
}

/** The router, with every certificate set through it watched by the stapler. */
export function withOcspStapling(router: Router, stapler: OcspStapler): Router {
  return {
    start: () => router.start(),
    apply: (routes) => router.apply(routes),
    drained: (serverId) => router.drained(serverId),
    lastRequests: () => router.lastRequests(),
    stop: () => router.stop(),
    setWellKnown: (urlPath, body) => router.setWellKnown(urlPath, body),
    deleteWellKnown: (urlPath) => router.deleteWellKnown(urlPath),
    async setCertificate(name, pem) {
      await router.setCertificate(name, pem);
      stapler.watch(name, pem);
    },
    async removeCertificate(name) {
      await router.removeCertificate(name);
      stapler.forget(name);
    },
  };
}
