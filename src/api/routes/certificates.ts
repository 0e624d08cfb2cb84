// GET /v1/certs (admins and auditors): every certificate the router has of its own, with its
// expiry and the last attempt to get or renew it (the certificate controller's work).
import { X509Certificate } from 'node:crypto';
import {
  CERT_EXPIRY_WARN_DAYS,
  CertificateList,
  type DefaultCertificate,
  errorResponses,
  type OcspInfo,
} from '../../contract/index.js';
import { daysLeft, listCertificates } from '../../domain/certificates.js';
import type { Api, ApiContext } from '../context.js';

export function certificateRoutes(api: Api, ctx: ApiContext): void {
  api.get(
    '/v1/certs',
    {
      config: { access: 'platform.read' },
      schema: {
        summary:
          "The router's certificates, one per host: source, issuer, expiry, the last attempt and its outcome (admins and auditors)",
        response: { 200: CertificateList, ...errorResponses },
      },
    },
    async () => {
      const now = Date.now();
      const rows = await listCertificates(ctx.db);
      return {
        mode: ctx.config.tls.mode,
        renewBeforeDays: ctx.config.tls.renewBeforeDays,
        default: defaultCertificate(await ctx.defaultCertificate?.(), now, ctx.ocsp?.(null) ?? null),
        certificates: rows.map((r) => {
          const left = r.not_after === null ? null : daysLeft(r.not_after, now);
          return {
            host: r.host,
            source: r.source,
            issuer: r.issuer,
            serial: r.serial,
            notBefore: r.not_before,
            notAfter: r.not_after,
            daysLeft: left,
            expiringSoon: left === null || left < CERT_EXPIRY_WARN_DAYS,
            lastAttemptAt: r.last_attempt_at,
            lastOutcome: r.last_outcome,
            failures: r.failures,
            nextAttemptAt: r.next_attempt_at,
            ocsp: ctx.ocsp?.(r.host) ?? null,
            unwantedSince: r.unwanted_since,
          };
        }),
      };
    },
  );
}

function defaultCertificate(
  chain: string | undefined,
  now: number,
  ocsp: OcspInfo | null,
): DefaultCertificate | null {
  if (chain === undefined) return null;
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chain);
  } catch {
    return null;
  }
  const notAfter = new Date(leaf.validTo).toISOString();
  const left = daysLeft(notAfter, now);
  return {
    names: (leaf.subjectAltName ?? '')
      .split(/,\s*/)
      .filter((n) => n.startsWith('DNS:'))
      .map((n) => n.slice(4)),
    issuer: /(?:^|\n)CN=([^\n]+)/.exec(leaf.issuer)?.[1] ?? leaf.issuer,
    notAfter,
    daysLeft: left,
    expiringSoon: left < CERT_EXPIRY_WARN_DAYS,
    ocsp,
  };
}
