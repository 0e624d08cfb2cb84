// The Node.js stack, the main one: which install a tree gets (npm ci with a lockfile, npm
// install with dependencies only, none without), the build script, the web command, the
// cache key, and the errors a user meets (bad package.json, no web process).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { planBuild } from '../../src/build/detect.js';
import { nodeDetector } from '../../src/build/detect-node.js';
import { UserError } from '../../src/lib/errors.js';

const dirs: string[] = [];
function tree(files: Record<string, string | object>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-node-'));
  dirs.push(dir);
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(path.join(dir, name), typeof content === 'string' ? content : JSON.stringify(content));
  }
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const NPM_FLAGS = ['--no-audit', '--no-fund', '--loglevel=error'];

describe('node detector', () => {
  test('no package.json: not a Node.js app', async () => {
    assert.equal(await nodeDetector.detect(tree({ 'index.html': '<p>hi</p>', 'server.js': '' })), undefined);
  });

  test('a lockfile installs with npm ci, cached by the lockfile', async () => {
    const plan = await nodeDetector.detect(
      tree({
        'package.json': { dependencies: { express: '^4' }, scripts: { start: 'node app.js' } },
        'package-lock.json': {},
      }),
    );
    assert.ok(plan);
    assert.equal(plan.stack, 'node');
    assert.deepEqual(plan.steps, [
      { title: 'Installing dependencies (npm ci)', argv: ['npm', 'ci', ...NPM_FLAGS], installs: true },
    ]);
    assert.deepEqual(plan.dependencies, {
      keyFiles: ['package-lock.json', 'npm-shrinkwrap.json'],
      paths: ['node_modules'],
    });
    assert.deepEqual(plan.processTypes, { web: 'node app.js' });
    assert.equal(plan.env.NODE_ENV, 'production');
    assert.match(plan.env.PATH ?? '', /^\/app\/node_modules\/\.bin:/, "the app's own binaries first");
  });

  test('a shrinkwrap counts as a lockfile', async () => {
    const plan = await nodeDetector.detect(
      tree({ 'package.json': { scripts: { start: 'node a.js' } }, 'npm-shrinkwrap.json': {} }),
    );
    assert.deepEqual(
      plan?.steps.map((s) => s.argv[1]),
      ['ci'],
    );
  });

  test('dependencies without a lockfile install with npm install, cached by package.json', async () => {
    const plan = await nodeDetector.detect(
      tree({ 'package.json': { devDependencies: { typescript: '^5' }, scripts: { start: 'node a.js' } } }),
    );
    assert.deepEqual(plan?.steps, [
      {
        title: 'Installing dependencies (npm install)',
        argv: ['npm', 'install', ...NPM_FLAGS],
        installs: true,
      },
    ]);
    assert.deepEqual(plan?.dependencies, { keyFiles: ['package.json'], paths: ['node_modules'] });
  });

  test('nothing to install: no step and no cache', async () => {
    const plan = await nodeDetector.detect(tree({ 'package.json': { name: 'tiny' }, 'server.js': '' }));
    assert.deepEqual(plan?.steps, []);
    assert.equal(plan?.dependencies, undefined);
  });

  test('a build script runs after the install', async () => {
    const plan = await nodeDetector.detect(
      tree({
        'package.json': { dependencies: { a: '1' }, scripts: { build: 'tsc', start: 'node dist/a.js' } },
        'package-lock.json': {},
      }),
    );
    assert.deepEqual(
      plan?.steps.map((s) => s.title),
      ['Installing dependencies (npm ci)', 'Building (npm run build)'],
    );
    assert.deepEqual(plan?.steps[1]?.argv, ['npm', 'run', 'build']);
    assert.equal(plan?.steps[1]?.installs, undefined, 'the build is not part of what the cache keeps');
  });

  test("the web process is the start script's own command, not npm start", async () => {
    const plan = await nodeDetector.detect(
      tree({ 'package.json': { scripts: { start: 'node --enable-source-maps srv.js' } }, 'server.js': '' }),
    );
    assert.deepEqual(plan?.processTypes, { web: 'node --enable-source-maps srv.js' });
  });

  test("without a start script, server.js is run as npm's default would", async () => {
    const plan = await nodeDetector.detect(tree({ 'package.json': {}, 'server.js': '' }));
    assert.deepEqual(plan?.processTypes, { web: 'node server.js' });
  });

  test('without a start script or server.js there is no web process', async () => {
    const plan = await nodeDetector.detect(tree({ 'package.json': {} }));
    assert.deepEqual(plan?.processTypes, {});
  });

  for (const [what, text] of [
    ['broken JSON', '{"name": '],
    ['an array', '[1, 2]'],
    ['a string', '"app"'],
    ['null', 'null'],
  ] as const) {
    test(`a package.json holding ${what} is a user error that says what to fix`, async () => {
      await assert.rejects(nodeDetector.detect(tree({ 'package.json': text })), (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.equal(err.code, 'build_failed');
        assert.match(err.message, /^package\.json is not valid JSON \(.+\); fix it and deploy again$/);
        return true;
      });
    });
  }
});

describe('planBuild with a Node.js app', () => {
  test('a Procfile wins over the start script and its release line becomes the release command', async () => {
    const plan = await planBuild(
      tree({
        'package.json': { scripts: { start: 'node a.js' } },
        Procfile: 'web: node b.js\nworker: node w.js\nrelease: node migrate.js\n',
      }),
    );
    assert.equal(plan.stack, 'node');
    assert.deepEqual(plan.processTypes, { web: 'node b.js', worker: 'node w.js' });
    assert.equal(plan.releaseCommand, 'node migrate.js');
  });

  test('no web process: the error names the three ways to give one', async () => {
    await assert.rejects(
      planBuild(tree({ 'package.json': { scripts: { build: 'tsc' } } })),
      /no web process: add a "start" script to package\.json, a server\.js, or a Procfile with a web: line/,
    );
  });

  test('Node.js wins over the other stacks when a tree has several markers', async () => {
    const plan = await planBuild(
      tree({ 'package.json': {}, 'server.js': '', 'requirements.txt': 'flask\n', 'index.html': '' }),
    );
    assert.equal(plan.stack, 'node');
  });
});
