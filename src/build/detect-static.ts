// Static sites: an index.html at the root and no other stack (the fallback detector, after
// node and python). The web process is Petri's own static file server, run by the host's
// node; the sandbox cannot see Petri's install, so the build writes the server into the slug.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BuildPlan, StackDetector } from './plan.js';

/** Where the server lands in the slug: a dotdir, which the server itself never serves. */
export const STATIC_SERVER_PATH = '/app/.petri/static-server.mjs';

/** Files that mean another stack, whichever detector handles it. */
const OTHER_STACKS = ['package.json', 'requirements.txt', 'pyproject.toml'];

// The server is a real .mjs file in src/build/static-server/, which tsc does not copy into
// dist/. Both this module's layouts are two levels under the package root (src/build/*.ts
// run by tsx, dist/build/*.js compiled), so this URL names the same file from either.
const SERVER_SOURCE = new URL('../../src/build/static-server/server.mjs', import.meta.url);

// Runs in the build sandbox as the app's user. The source travels in the environment
// (bwrap reads it from a pipe), not in argv, which would put 10 KB of it in `ps`.
const INSTALL_SCRIPT = [
  'const fs = require("node:fs");',
  `fs.mkdirSync(${JSON.stringify(path.posix.dirname(STATIC_SERVER_PATH))}, { recursive: true });`,
  `fs.writeFileSync(${JSON.stringify(STATIC_SERVER_PATH)}, process.env.PETRI_STATIC_SERVER_SOURCE);`,
].join(' ');

export const staticDetector: StackDetector = {
  name: 'static',
  async detect(dir) {
    if (!existsSync(path.join(dir, 'index.html'))) return undefined;
    if (OTHER_STACKS.some((name) => existsSync(path.join(dir, name)))) return undefined;
    const plan: BuildPlan = {
      stack: 'static',
      steps: [
        {
          title: 'Installing the static file server',
          argv: ['/usr/bin/node', '-e', INSTALL_SCRIPT],
          env: { PETRI_STATIC_SERVER_SOURCE: staticServerSource() },
        },
      ],
      processTypes: { web: `node ${STATIC_SERVER_PATH}` },
      env: { PATH: '/usr/local/bin:/usr/bin:/bin' },
    };
    return plan;
  },
};

/** The server's source, read when a static site is planned (so a missing file fails that
 * build with its path, not Petri's start). */
export function staticServerSource(): string {
  try {
    return readFileSync(SERVER_SOURCE, 'utf8');
  } catch (err) {
    throw new Error(`the static file server's source is missing at ${SERVER_SOURCE.pathname}: ${err}`);
  }
}
