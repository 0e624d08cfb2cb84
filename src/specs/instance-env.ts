// The environment of an app's process: what the build decided (PATH, NODE_ENV ...), the
// release's config vars, and what Petri promises every process (PORT, HOME ...).

import { mailEnv, mailListenAddress } from '../domain/mail-credentials.js';
import { releaseRuntimeEnv } from '../domain/release-json.js';
import { readConfig } from '../domain/sealed-config.js';
import type { PetriConfig } from '../lib/config.js';
import type { SecretBox } from '../lib/secrets.js';
import type { App, Release } from '../store/schema.js';

/** What the mail relay's variables are made from. */
export type MailEnvContext = Pick<PetriConfig, 'network' | 'mail'>;

export function instanceEnv(input: {
  secrets: SecretBox;
  app: App;
  release: Release;
  process: string;
  /** PORT; absent for an instance, whose port the driver chooses and sets. */
  port?: number;
  /** The egress proxy, when sandboxes have their own network: http://GATEWAY:PORT. */
  proxy?: string;
  /** The mail relay (SMTP_URL, MAIL_FROM, MAIL_API_URL, MAIL_API_TOKEN), when the server runs one. */
  mail?: MailEnvContext;
}): Record<string, string> {
  const { app, release } = input;
  // The mail relay's HTTP API is on the gateway: reached directly, not through the proxy.
  const noProxy = [
    'localhost',
    '127.0.0.1',
    ...(input.mail?.mail.enabled ? [mailListenAddress(input.mail)] : []),
  ].join(',');
  // Both spellings: curl and Python read the lower-case ones, most others the upper-case.
  const proxy: Record<string, string> = input.proxy
    ? {
        HTTP_PROXY: input.proxy,
        HTTPS_PROXY: input.proxy,
        NO_PROXY: noProxy,
        http_proxy: input.proxy,
        https_proxy: input.proxy,
        no_proxy: noProxy,
      }
    : {};
  return {
    ...proxy,
    ...releaseRuntimeEnv(release),
    // Before the config vars: an app that sets its own SMTP_URL (another relay) keeps it.
    ...(input.mail && mailEnv(input.mail, input.secrets, app)),
    ...readConfig(input.secrets, release.config_sealed),
    // Petri's own names come last: config cannot override them (PETRI_ keys are refused).
    ...(input.port !== undefined && { PORT: String(input.port) }),
    HOME: '/app',
    PETRI_APP: app.name,
    PETRI_RELEASE: `v${release.version}`,
    PETRI_PROCESS: input.process,
  };
}
