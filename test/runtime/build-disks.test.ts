// A build's disks with the real driver: its /app and its cache are filesystems of their own
// sizes, a task that fills one is told which, and the dependency cache is restored and saved
// by tasks as the app's user, so a link the build put in the cache reaches nothing of the host.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RESTORE_FAILED, restoreThen, saveTask } from '../../src/build/cache.js';
import type { BuildDisks, TaskSpec } from '../../src/runtime/driver.js';
import { mountCount } from '../../src/runtime/local/app-disk.js';
import { APP_GID, APP_UID, makeWorld, type World } from './world.js';

let world: World;
let source: string;
before(async () => {
  world = await makeWorld('build-disks');
  source = path.join(world.root, 'source');
  await mkdir(source);
  await writeFile(path.join(source, 'package.json'), '{}\n');
});
after(async () => {
  await world?.cleanup();
});

const DEPS = { keyFiles: ['package.json'], paths: ['node_modules'] };

function disksSpec(id: string, extra: { freshCache?: boolean } = {}) {
  return {
    id,
    uid: APP_UID,
    gid: APP_GID,
    workDir: path.join(world.root, 'builds', id),
    sourceDir: source,
    diskMiB: 16,
    cacheDir: path.join(world.root, 'cache'),
    cacheMiB: 16,
    ...extra,
  };
}

async function run(id: string, disks: BuildDisks, command: string[]) {
  let output = '';
  const spec: TaskSpec = {
    id,
    app: 'probe',
    uid: APP_UID,
    gid: APP_GID,
    appDir: disks.appDir,
    writableMounts: { [disks.cacheDir]: '/cache' },
    command,
    env: {},
    limits: { memoryMiB: 256, cpus: 1, pids: 64 },
    timeoutMs: 30_000,
    onOutput: (chunk) => {
      output += chunk;
    },
  };
  return { ...(await world.driver.runTask(spec)), output };
}

test("a build's /app holds its source as the app's, and is capped: the task is told which disk is full", async () => {
  const spec = disksSpec('b1');
  const disks = await world.driver.openBuildDisks(spec);
  try {
    assert.deepEqual(await readdir(disks.appDir), ['package.json'], 'the source, and nothing of mkfs');
    assert.equal((await stat(path.join(disks.appDir, 'package.json'))).uid, APP_UID);
    const app = await run('b1-fill', disks, ['sh', '-c', 'head -c 32M /dev/zero > /app/big']);
    assert.notEqual(app.exitCode, 0);
    assert.deepEqual(app.fullDisks, ['/app']);
    assert.equal(app.limitHit, 'disk');
    await run('b1-free', disks, ['rm', '/app/big']);
    const cache = await run('b1-cache', disks, ['sh', '-c', 'head -c 32M /dev/zero > /cache/big']);
    assert.deepEqual(cache.fullDisks, ['/cache']);
    await run('b1-free2', disks, ['rm', '/cache/big']);
  } finally {
    await world.driver.closeBuildDisks(spec);
  }
  assert.equal(await mountCount(path.join(spec.workDir, 'app')), 0);
  assert.equal(await mountCount(path.join(spec.cacheDir, 'cache')), 0);
});

test('the dependency cache is saved and restored as the app, kept between builds, emptied by freshCache', async () => {
  const first = await world.driver.openBuildDisks(disksSpec('b2'));
  try {
    assert.equal(
      (await run('b2-restore', first, restoreThen('k1', DEPS, ['true']))).exitCode,
      RESTORE_FAILED,
    );
    await run('b2-install', first, [
      'sh',
      '-c',
      'mkdir -p /app/node_modules/x && echo v1 > /app/node_modules/x/i',
    ]);
    assert.equal((await run('b2-save', first, saveTask('k1', DEPS))).exitCode, 0);
  } finally {
    await world.driver.closeBuildDisks(disksSpec('b2'));
  }
  const second = await world.driver.openBuildDisks(disksSpec('b3'));
  try {
    assert.equal((await run('b3-restore', second, restoreThen('k1', DEPS, ['true']))).exitCode, 0);
    assert.equal(await readFile(path.join(second.appDir, 'node_modules/x/i'), 'utf8'), 'v1\n');
    assert.equal((await run('b3-other', second, restoreThen('k2', DEPS, ['true']))).exitCode, RESTORE_FAILED);
  } finally {
    await world.driver.closeBuildDisks(disksSpec('b3'));
  }
  const fresh = await world.driver.openBuildDisks(disksSpec('b4', { freshCache: true }));
  try {
    assert.equal(
      (await run('b4-restore', fresh, restoreThen('k1', DEPS, ['true']))).exitCode,
      RESTORE_FAILED,
    );
  } finally {
    await world.driver.closeBuildDisks(disksSpec('b4'));
  }
});

test('a cache whose deps is a link to a host directory: saving replaces the link, the directory stays', async () => {
  const host = await mkdtemp(path.join(os.tmpdir(), 'petri-precious-'));
  try {
    await writeFile(path.join(host, 'keep.txt'), 'precious\n');
    const disks = await world.driver.openBuildDisks(disksSpec('b5'));
    try {
      await run('b5-link', disks, ['sh', '-c', `rm -rf /cache/deps && ln -s ${host} /cache/deps`]);
      await run('b5-install', disks, ['mkdir', '-p', '/app/node_modules']);
      assert.equal((await run('b5-save', disks, saveTask('k1', DEPS))).exitCode, 0);
    } finally {
      await world.driver.closeBuildDisks(disksSpec('b5'));
    }
    assert.deepEqual(await readdir(host), ['keep.txt']);
  } finally {
    await rm(host, { recursive: true, force: true });
  }
});

test('cache paths that could climb out or pass as options are refused', () => {
  for (const bad of ['../x', '/etc', '-rf', 'a/../../b', '']) {
    assert.throws(() => saveTask('k', { keyFiles: [], paths: [bad] }), /plain relative paths/);
  }
});
