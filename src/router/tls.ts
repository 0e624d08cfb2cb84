// HTTPS at the router: the TLS lines of the HAProxy config (config.ts renders them). Pure, so
// the golden config test shows them. One frontend serves both ports: HTTPS gets exactly the
// routing, gate and header rules HTTP has.
import { formatAddress } from './routes.js';

export interface HttpsOptions {
  port: number;
  /** Strict-Transport-Security on every HTTPS answer (not with the local CA: a laptop's
   * browser would then refuse plain HTTP to every *.localhost app for a year). */
  hsts: boolean;
  /** HTTP answers a 308 to the same URL on HTTPS, but for the router's own well-known
   * answers (ACME and domain checks must work over HTTP), which come first. */
  redirectHttp: boolean;
}

/** A year, as browsers' preload lists want at least. */
export const HSTS_VALUE = 'max-age=31536000';

/**
 * Mozilla's "intermediate" TLS settings (ssl-config.mozilla.org, HAProxy, 2024): TLS 1.2 and
 * 1.3, AEAD ciphers with forward secrecy. Its DHE suites are left out: they need DH
 * parameters, and every client that has TLS 1.2 has ECDHE. No session tickets: HAProxy 2.6
 * never rotates the ticket key it makes at start, which would undo forward secrecy for as
 * long as a worker runs; sessions resume from its session cache instead.
 */
export const TLS_GLOBAL_LINES = [
  '  ssl-default-bind-ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305',
  '  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
  '  ssl-default-bind-options prefer-client-ciphers ssl-min-ver TLSv1.2 no-tls-tickets',
];

/** The HTTPS listener: every certificate from the crt-list (the default one first, then one
 * per host, changed at runtime by certificates.ts), HTTP/2 or HTTP/1.1 by ALPN. */
export function httpsBindLine(address: string, https: HttpsOptions, crtList: string): string {
  return `  bind ${formatAddress(address, https.port)} ssl crt-list ${crtList} alpn h2,http/1.1`;
}

/** The redirect of plain HTTP, once the host is known (txn.host: the Host header's name,
 * checked by config.ts to be letters, digits, dots, hyphens, colons and brackets only).
 * After the well-known answers (config.ts), so only the paths the router's map answers are
 * served over HTTP: an app's own /.well-known/ documents (openid-configuration, jwks.json,
 * security.txt) are redirected like any path, or anyone on the way could rewrite them. */
export function redirectLines(https: HttpsOptions): string[] {
  if (!https.redirectHttp) return [];
  const port = https.port === 443 ? '' : `:${https.port}`;
  return [
    `  http-request redirect location https://%[var(txn.host)]${port}%[pathq] code 308 if !{ ssl_fc } { var(txn.host) -m found }`,
  ];
}

/** After every answer, the router's own (404 pages, redirects, gate refusals) included. */
export function hstsLines(https: HttpsOptions): string[] {
  return https.hsts
    ? [`  http-after-response set-header Strict-Transport-Security "${HSTS_VALUE}" if { ssl_fc }`]
    : [];
}
