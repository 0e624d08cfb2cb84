// An app's or a release's config vars, sealed at rest as one JSON object ('' = none).
import type { SecretBox } from '../lib/secrets.js';

export function readConfig(secrets: SecretBox, sealed: string): Record<string, string> {
  return sealed === '' ? {} : (JSON.parse(secrets.open(sealed)) as Record<string, string>);
}

export function sealConfig(secrets: SecretBox, config: Record<string, string>): string {
  return Object.keys(config).length === 0 ? '' : secrets.seal(JSON.stringify(config));
}
