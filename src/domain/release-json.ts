// The one decoder of a release row's JSON columns (process types, the build's environment,
// declared egress hosts). The store holds them as text; everything above reads them through
// here, checked rather than cast, so a malformed row fails loudly in one place.
import type { Release } from '../store/schema.js';

/** Process type -> command, as the build (or a Procfile) decided. */
export function releaseProcessTypes(release: Pick<Release, 'process_types'>): Record<string, string> {
  return stringRecord(release.process_types, 'process_types');
}

/** The environment the build decided (PATH, NODE_ENV ...), below the config vars. */
export function releaseRuntimeEnv(release: Pick<Release, 'runtime_env'>): Record<string, string> {
  return stringRecord(release.runtime_env, 'runtime_env');
}

/** The egress host patterns the release declared. */
export function releaseEgress(release: Pick<Release, 'egress'>): string[] {
  const value: unknown = JSON.parse(release.egress);
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new Error(`a release's egress column is not a list of strings: ${release.egress.slice(0, 80)}`);
  return value;
}

function stringRecord(text: string, column: string): Record<string, string> {
  const value: unknown = JSON.parse(text);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error(`a release's ${column} column is not an object`);
  const record: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw new Error(`a release's ${column}.${key} is not a string`);
    record[key] = v;
  }
  return record;
}
