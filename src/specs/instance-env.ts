// The environment of an app's process: what the build decided (PATH, NODE_ENV ...), the
// release's config vars, and what Petri promises every process (PORT, HOME ...).
import { releaseRuntimeEnv } from '../domain/release-json.js';
import { readConfig } from '../domain/sealed-config.js';
import type { SecretBox } from '../lib/secrets.js';
import type { App, Release } from '../store/schema.js';

export function instanceEnv(input: {
  secrets: SecretBox;
  app: App;
  release: Release;
  process: string;
  /** PORT; absent for an instance, whose port the driver chooses and sets. */
  port?: number;
  /** The egress proxy, when sandboxes have their own network: http://GATEWAY:PORT. */
  proxy?: string;
}): Record<string, string> {
  const { app, release } = input;
  // Both spellings: curl and Python read the lower-case ones, most others the upper-case.
  const proxy: Record<string, string> = input.proxy
    ? {
        HTTP_PROXY: input.proxy,
        HTTPS_PROXY: input.proxy,
        NO_PROXY: 'localhost,127.0.0.1',
        http_proxy: input.proxy,
        https_proxy: input.proxy,
        no_proxy: 'localhost,127.0.0.1',
      }
    : {};
  return {
    ...proxy,
    ...releaseRuntimeEnv(release),
    ...readConfig(input.secrets, release.config_sealed),
    // Petri's own names come last: config cannot override them (PETRI_ keys are refused).
    ...(input.port !== undefined && { PORT: String(input.port) }),
    HOME: '/app',
    PETRI_APP: app.name,
    PETRI_RELEASE: `v${release.version}`,
    PETRI_PROCESS: input.process,
  };
}
