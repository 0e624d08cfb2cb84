// GET /v1/certs: the router's certificates of their own (issue 20), one per host: where each
// comes from, its expiry, and how the last attempt to get or renew it went.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

/** Certificates expiring within this many days are highlighted (`petri certs`). */
export const CERT_EXPIRY_WARN_DAYS = 14;

/** OCSP stapling of a certificate the router serves (src/tls/ocsp.ts). */
export const OcspInfo = Type.Object({
  state: StringEnum(['stapled', 'none', 'revoked', 'failing', 'pending'], {
    description:
      'stapled: a fresh good answer goes with every handshake; none: the issuer offers no OCSP; revoked; failing: asking the responder failed (a good answer still in date stays stapled); pending: not asked yet',
  }),
  detail: Nullable(Type.String()),
  nextUpdate: Nullable(Type.String({ description: 'when the stapled answer stops being valid' })),
});
export type OcspInfo = Static<typeof OcspInfo>;

export const CertificateInfo = Type.Object({
  host: Type.String(),
  source: StringEnum(['acme', 'local-ca', 'wildcard'], {
    description:
      'where the certificate is had from: the ACME directory, Petri’s local CA, the operator’s files',
  }),
  issuer: Nullable(Type.String(), { description: 'null until a certificate was had' }),
  serial: Nullable(Type.String({ description: 'hex' })),
  notBefore: Nullable(Type.String()),
  notAfter: Nullable(Type.String()),
  daysLeft: Nullable(Type.Integer({ description: 'whole days to expiry; negative once expired' })),
  expiringSoon: Type.Boolean({
    description: `no certificate yet, or it expires within ${CERT_EXPIRY_WARN_DAYS} days (or has)`,
  }),
  lastAttemptAt: Nullable(Type.String()),
  lastOutcome: Nullable(Type.String({ description: "'ok', or why the last attempt failed" })),
  failures: Type.Integer({ description: 'failed attempts in a row' }),
  nextAttemptAt: Nullable(Type.String({ description: 'after a failure: when it is tried again' })),
  ocsp: Nullable(OcspInfo, { description: 'null while the router does not serve it' }),
  unwantedSince: Nullable(
    Type.String({ description: 'no route wants the host since then: the certificate goes a day after' }),
  ),
});
export type CertificateInfo = Static<typeof CertificateInfo>;

/** The router's default certificate: what every host without one of its own is served. */
export const DefaultCertificate = Type.Object({
  names: Type.Array(Type.String(), { description: 'the names it is for (its DNS SANs)' }),
  issuer: Type.String(),
  notAfter: Type.String(),
  daysLeft: Type.Integer(),
  expiringSoon: Type.Boolean(),
  ocsp: Nullable(OcspInfo),
});
export type DefaultCertificate = Static<typeof DefaultCertificate>;

export const CertificateList = Type.Object({
  mode: StringEnum(['self-signed', 'wildcard', 'acme'], { description: 'tls.mode' }),
  renewBeforeDays: Type.Number(),
  default: Nullable(DefaultCertificate, { description: 'null without HTTPS' }),
  certificates: Type.Array(CertificateInfo),
});
export type CertificateList = Static<typeof CertificateList>;
