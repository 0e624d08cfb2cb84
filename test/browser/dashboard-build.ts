// The dashboard's static files for the browser tests: built by scripts/install.sh, and built
// again here only when a source file is newer than the build (a developer's edit), so the
// tests neither pay a Vite build each nor rewrite dist/dashboard under another test's feet.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(file) : statSync(file).mtimeMs);
  }
  return newest;
}

export async function ensureDashboardBuilt(): Promise<void> {
  const index = path.join(ROOT, 'dist/dashboard/index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newestMtime(path.join(ROOT, 'src/dashboard'))) return;
  await build({ configFile: path.join(ROOT, 'src/dashboard/vite.config.ts'), logLevel: 'warn' });
}
