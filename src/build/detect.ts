// Picks the build plan for a source tree: the first detector that recognises it, with the
// Procfile's process types over the detector's.
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { nodeDetector } from './detect-node.js';
import { pythonDetector } from './detect-python.js';
import { staticDetector } from './detect-static.js';
import { readManifest } from './manifest.js';
import type { BuildPlan, StackDetector } from './plan.js';
import { checkProcessTypes, parseProcfile } from './procfile.js';
import { readSourceFile } from './source-file.js';

export const DETECTORS: StackDetector[] = [nodeDetector, pythonDetector, staticDetector];

export async function planBuild(sourceDir: string, detectors = DETECTORS): Promise<BuildPlan> {
  const procfile = readSourceFile(path.join(sourceDir, 'Procfile'), 'Procfile');
  const declared = procfile === undefined ? {} : parseProcfile(procfile);
  let plan: BuildPlan | undefined;
  for (const detector of detectors) {
    plan = await detector.detect(sourceDir);
    if (plan) break;
  }
  if (!plan) {
    if (Object.keys(declared).length === 0) {
      throw new UserError(
        'build_failed',
        'could not detect how to run this app: add a package.json (Node.js), requirements.txt or pyproject.toml (Python), an index.html (a static site) or a Procfile with a web: line',
      );
    }
    plan = { stack: 'procfile', steps: [], processTypes: {}, env: { PATH: '/usr/local/bin:/usr/bin:/bin' } };
  }
  plan.processTypes = { ...plan.processTypes, ...declared };
  // Whoever declared them (a Procfile, a detector): names and count are checked once here.
  checkProcessTypes(plan.processTypes);
  // A release phase command runs once per release, not as a long-running process.
  if (plan.processTypes.release) plan.releaseCommand = plan.processTypes.release;
  delete plan.processTypes.release;
  const manifest = readManifest(sourceDir);
  if (manifest.healthCheck) plan.healthPath = manifest.healthCheck;
  if (manifest.egress) plan.egress = manifest.egress;
  const { description, data, privacy, retention } = manifest;
  if ([description, data, privacy, retention].some((v) => v !== undefined))
    plan.describe = { description, data, privacy, retention };
  if (manifest.audience !== undefined) plan.audience = manifest.audience;
  if (!plan.processTypes.web) {
    throw new UserError(
      'build_failed',
      plan.stack === 'node'
        ? 'no web process: add a "start" script to package.json, a server.js, or a Procfile with a web: line'
        : 'no web process: add a web: line to the Procfile',
    );
  }
  return plan;
}
