// What the control plane reads of an upload while planning its build: manifests capped at
// 1 MiB and refused by their size before a byte is parsed (a 240 MB package.json took the
// control plane down, issue 11), no link followed, no FIFO waited on, lockfiles hashed in
// chunks. Sparse files make the big ones in microseconds.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { cacheKey } from '../../src/build/cache.js';
import { planBuild } from '../../src/build/detect.js';

const dirs: string[] = [];
function source(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-source-'));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}
/** `name` made `bytes` long (sparse): what a bomb unpacks to, without the disk. */
function grow(dir: string, name: string, bytes: number): void {
  truncateSync(path.join(dir, name), bytes);
}
async function refusal(dir: string): Promise<{ message: string; ms: number }> {
  const started = Date.now();
  const err = await planBuild(dir).then(
    () => assert.fail('the plan was made'),
    (e: Error & { code?: string }) => e,
  );
  assert.equal(err.code, 'build_failed', err.message);
  return { message: err.message, ms: Date.now() - started };
}

after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('manifest files are read with a cap', () => {
  test('a 240 MB package.json is refused by its size, in milliseconds', async (t) => {
    const dir = source({ 'package.json': '{"scripts":{"start":"node s.js"}}' });
    grow(dir, 'package.json', 240_000_000);
    const { message, ms } = await refusal(dir);
    t.diagnostic(`refused in ${ms} ms: ${message}`);
    assert.match(message, /^package\.json is 240 MB; Petri reads at most 1 MiB of it/);
    assert.ok(ms < 500, `took ${ms} ms`);
  });

  test('a package.json of 1 MiB is still read', async () => {
    const pkg = JSON.stringify({ scripts: { start: 'node s.js' }, pad: 'x'.repeat(1024 * 1024 - 60) });
    assert.ok(pkg.length <= 1024 * 1024);
    const plan = await planBuild(source({ 'package.json': pkg }));
    assert.equal(plan.processTypes.web, 'node s.js');
  });

  for (const [name, files] of [
    ['Procfile', { Procfile: 'web: node s.js\n', 'index.html': '' }],
    ['petri.toml', { 'petri.toml': 'name = "x"\n', 'package.json': '{"scripts":{"start":"x"}}' }],
    ['pyproject.toml', { 'pyproject.toml': '[project]\n', 'app.py': 'app = 1\n' }],
    ['app.py', { 'app.py': 'app = 1\n', 'requirements.txt': '' }],
    ['manage.py', { 'manage.py': '#\n', 'requirements.txt': '' }],
    [
      'mysite/settings.py',
      {
        'manage.py': "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n",
        'mysite/settings.py': '#\n',
        'requirements.txt': '',
      },
    ],
  ] as const) {
    test(`${name} over 1 MiB is refused by its size`, async () => {
      const dir = source(files);
      grow(dir, name, 300 * 1024 * 1024);
      const { message } = await refusal(dir);
      assert.ok(message.startsWith(`${name} is 300 MiB; Petri reads at most 1 MiB of it`), message);
    });
  }

  test('a manifest that is a link or a FIFO is refused, not followed or waited on', async () => {
    const linked = source({ 's.js': '' });
    symlinkSync('/etc/passwd', path.join(linked, 'package.json'));
    assert.match((await refusal(linked)).message, /package\.json is a symbolic link/);
    const fifo = source({ 'index.html': '' });
    execFileSync('mkfifo', [path.join(fifo, 'Procfile')]);
    assert.match((await refusal(fifo)).message, /Procfile is not a plain file/);
  });

  test('the cache key hashes a lockfile larger than the cap, and refuses a linked one', async () => {
    const dir = source({ 'package-lock.json': '{}' });
    const deps = { keyFiles: ['package-lock.json', 'npm-shrinkwrap.json'], paths: ['node_modules'] };
    const small = await cacheKey(dir, 'node', deps);
    grow(dir, 'package-lock.json', 64 * 1024 * 1024);
    const big = await cacheKey(dir, 'node', deps);
    assert.match(big, /^[0-9a-f]{32}$/);
    assert.notEqual(big, small);
    rmSync(path.join(dir, 'package-lock.json'));
    symlinkSync('/etc/shadow', path.join(dir, 'package-lock.json'));
    await assert.rejects(cacheKey(dir, 'node', deps), /package-lock\.json is a symbolic link/);
  });
});
