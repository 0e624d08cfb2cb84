// Node.js: package.json. npm ci with a lockfile (reproducible), npm install without; the
// build script when there is one; `npm start`'s command (or node server.js, npm's own
// default) as the web process unless a Procfile says otherwise; engines.node picks the
// Node.js version (the builder installs it, see node-runtimes.ts).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../lib/errors.js';
import { enginesNodeRange } from './node-versions.js';
import type { BuildPlan, BuildStep, StackDetector } from './plan.js';
import { readSourceFile } from './source-file.js';

interface PackageJson {
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
  engines?: unknown;
}

const NPM_FLAGS = ['--no-audit', '--no-fund', '--loglevel=error'];

export const nodeDetector: StackDetector = {
  name: 'node',
  async detect(dir) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) return undefined;
    const pkg = readPackageJson(file);
    const steps: BuildStep[] = [];
    const hasLock =
      existsSync(path.join(dir, 'package-lock.json')) || existsSync(path.join(dir, 'npm-shrinkwrap.json'));
    const hasDeps = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies }).length > 0;
    if (hasLock) {
      steps.push({
        title: 'Installing dependencies (npm ci)',
        argv: ['npm', 'ci', ...NPM_FLAGS],
        installs: true,
      });
    } else if (hasDeps) {
      steps.push({
        title: 'Installing dependencies (npm install)',
        argv: ['npm', 'install', ...NPM_FLAGS],
        installs: true,
      });
    }
    if (pkg.scripts?.build) {
      steps.push({ title: 'Building (npm run build)', argv: ['npm', 'run', 'build'] });
    }
    const processTypes: Record<string, string> = {};
    const start =
      pkg.scripts?.start ?? (existsSync(path.join(dir, 'server.js')) ? 'node server.js' : undefined);
    // The start script's own command rather than `npm start`: the same process with
    // node_modules/.bin on PATH, as npm would run it, without npm's 200 ms and 50 MB.
    if (start) processTypes.web = start;
    const plan: BuildPlan = {
      stack: 'node',
      // The Node.js of the build and of the release: engines.node, else the newest LTS.
      node: { range: enginesNodeRange(pkg.engines) },
      steps,
      // Keyed by the lockfile when there is one (what npm ci installs), else by package.json.
      dependencies:
        hasLock || hasDeps
          ? {
              keyFiles: hasLock ? ['package-lock.json', 'npm-shrinkwrap.json'] : ['package.json'],
              paths: ['node_modules'],
            }
          : undefined,
      processTypes,
      env: { NODE_ENV: 'production', PATH: '/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin' },
    };
    return plan;
  },
};

function readPackageJson(file: string): PackageJson {
  // Read (and refused when too large) outside the try: that message is not about JSON.
  const text = readSourceFile(file, 'package.json') ?? '';
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new Error('not an object');
    return parsed as PackageJson;
  } catch (err) {
    throw new UserError(
      'build_failed',
      `package.json is not valid JSON (${(err as Error).message}); fix it and deploy again`,
    );
  }
}
