// petri.toml, the app's optional manifest: what Petri should know about it. Read at build
// time; only what this version uses is checked strictly, unknown keys are left for later.
import path from 'node:path';
import { parse } from 'smol-toml';
import { validateEgressPattern } from '../egress/matching.js';
import { UserError } from '../lib/errors.js';
import { readSourceFile } from './source-file.js';

export interface Manifest {
  name?: string;
  description?: string;
  /** Path that must answer 2xx/3xx before an instance gets traffic, e.g. "/health". */
  healthCheck?: string;
  /** [network] egress: host:port patterns the app may reach through the egress proxy. */
  egress?: string[];
  /** The data the experiment holds (none, anonymous, personal, sensitive), checked with its
   * privacy note and retention by the control plane at deploy (domain/experiments.ts). */
  data?: string;
  privacy?: string;
  /** "30d", "12w", or a number of days. */
  retention?: string | number;
  /** Who may reach the app (public, staff, invite), applied at deploy (domain/audiences.ts). */
  audience?: string;
}

export function readManifest(sourceDir: string): Manifest {
  const source = readSourceFile(path.join(sourceDir, 'petri.toml'), 'petri.toml');
  if (source === undefined) return {};
  let doc: Record<string, unknown>;
  try {
    doc = parse(source) as Record<string, unknown>;
  } catch (err) {
    throw new UserError(
      'build_failed',
      `petri.toml is not valid TOML: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  const manifest: Manifest = {};
  if (doc.name !== undefined) manifest.name = text(doc, 'name');
  if (doc.description !== undefined) manifest.description = text(doc, 'description');
  if (doc.data !== undefined) manifest.data = text(doc, 'data');
  if (doc.privacy !== undefined) manifest.privacy = text(doc, 'privacy');
  if (doc.audience !== undefined) manifest.audience = text(doc, 'audience');
  if (doc.retention !== undefined) {
    const retention = doc.retention;
    if (typeof retention !== 'string' && !Number.isInteger(retention)) {
      throw new UserError(
        'build_failed',
        `petri.toml: retention must be a duration like "30d" or a number of days, got ${JSON.stringify(retention)}`,
      );
    }
    manifest.retention = retention as string | number;
  }
  const health = doc.health_check ?? (doc.web as Record<string, unknown> | undefined)?.health_check;
  if (health !== undefined) {
    if (typeof health !== 'string' || !/^\/[\x21-\x7e]*$/.test(health)) {
      throw new UserError(
        'build_failed',
        `petri.toml: health_check must be a path starting with '/', like "/health", got ${JSON.stringify(health)}`,
      );
    }
    manifest.healthCheck = health;
  }
  const network = doc.network as Record<string, unknown> | undefined;
  if (network?.egress !== undefined) {
    const egress = network.egress;
    if (!Array.isArray(egress) || egress.some((e) => typeof e !== 'string')) {
      throw new UserError(
        'build_failed',
        'petri.toml: [network] egress must be a list of "host:port" strings',
      );
    }
    for (const pattern of egress as string[]) {
      try {
        validateEgressPattern(pattern);
      } catch (err) {
        throw new UserError('build_failed', `petri.toml: [network] egress: ${(err as Error).message}`);
      }
    }
    manifest.egress = egress as string[];
  }
  return manifest;
}

function text(doc: Record<string, unknown>, key: string): string {
  const v = doc[key];
  if (typeof v !== 'string') throw new UserError('build_failed', `petri.toml: ${key} must be a string`);
  return v;
}
