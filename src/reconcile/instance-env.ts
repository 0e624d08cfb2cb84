// The environment of an app's process: what the build decided (PATH, NODE_ENV ...), the
// release's config vars, and what Petri promises every process (PORT, HOME ...).
import type { SecretBox } from '../lib/secrets.js';
import type { App, Release } from '../store/schema.js';

export function decryptConfig(secrets: SecretBox, sealed: string): Record<string, string> {
  return sealed === '' ? {} : (JSON.parse(secrets.open(sealed)) as Record<string, string>);
}

export function instanceEnv(input: {
  secrets: SecretBox;
  app: App;
  release: Release;
  process: string;
  port: number;
}): Record<string, string> {
  const { app, release } = input;
  return {
    ...(JSON.parse(release.runtime_env) as Record<string, string>),
    ...decryptConfig(input.secrets, release.config_sealed),
    // Petri's own names come last: config cannot override them (PETRI_ keys are refused).
    PORT: String(input.port),
    HOME: '/app',
    PETRI_APP: app.name,
    PETRI_RELEASE: `v${release.version}`,
    PETRI_PROCESS: input.process,
  };
}
