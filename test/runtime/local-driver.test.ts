// The local driver with the real bwrap and cgroups: what an app, an operator and a restarted
// control plane would notice. Needs root, bwrap and cgroups (this host's CI runner).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import type { InstanceStatus } from '../../src/runtime/driver.js';
import { APP_IMAGE, mountCount } from '../../src/runtime/local/app-disk.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import { APP_UID, getJson, makeWorld, outputOf, type World } from './world.js';

let world: World;
before(async () => {
  world = await makeWorld('driver');
});
after(async () => {
  await world?.cleanup();
});

function task(id: string, command: string[], extra: Partial<Parameters<LocalDriver['runTask']>[0]> = {}) {
  let output = '';
  const result = world.driver.runTask({
    id,
    app: 'probe',
    uid: APP_UID,
    gid: APP_UID,
    appDir: path.join(world.root, 'tasks', id),
    command,
    env: {},
    limits: { memoryMiB: 256, cpus: 1, pids: 64 },
    timeoutMs: 30_000,
    onOutput: (chunk) => {
      output += chunk;
    },
    ...extra,
  });
  return result.then((r) => ({ ...r, output }));
}

async function taskDir(id: string): Promise<string> {
  const dir = path.join(world.root, 'tasks', id);
  await mkdir(dir, { recursive: true });
  return dir;
}

test('an instance answers on its port, sandboxed', async () => {
  const spec = world.instanceSpec('sandbox-1', {
    env: { HIDDEN_PATH: world.options.stateDir, SECRET: 's3cret' },
  });
  const started = await world.driver.start(spec);
  assert.equal(started.running, true);
  // The driver chose the port and set PORT (the spec has none); a restarted driver knows it.
  const port = started.port!;
  assert.ok(Number.isInteger(port) && port > 0, 'start() says its port');
  assert.equal((await new LocalDriver(world.options).status('sandbox-1')).port, port);
  await until(() => isListening(port), { timeout: 10_000, message: 'the instance to listen' });
  const probe = await getJson(port);

  assert.equal(probe.uid, APP_UID, 'runs as the spec uid');
  assert.equal(probe.user, 'app', 'its own passwd, not the host accounts');
  assert.equal(probe.writeEtc, false, '/etc is read-only');
  assert.equal(probe.writeUsr, false, '/usr is read-only');
  assert.equal(probe.writeApp, true, '/app is writable');
  assert.equal(probe.writeTmp, true, '/tmp is writable');
  assert.equal(probe.readShadow, false, '/etc/shadow is unreadable');
  assert.equal(probe.rootVisible, false, "the host's /root is not there");
  assert.equal(probe.hiddenVisible, false, "the driver's stateDir is not there");
  assert.equal(probe.modifySlugFile, false, 'slug files cannot be changed in place');
  assert.equal(probe.replaceSlugFile, true, 'but the app may replace them in its /app');
  assert.deepEqual(
    Object.keys(probe.env as object).sort(),
    ['HIDDEN_PATH', 'HOME', 'LANG', 'PATH', 'PORT', 'PWD', 'SECRET'],
    'nothing of the host environment',
  );
  assert.equal((probe.env as Record<string, string>).HOME, '/app');

  // The slug itself is untouched by what the app did to its copy.
  assert.equal(await readFile(path.join(world.slugDir, 'data.txt'), 'utf8'), 'original\n');
  assert.ok(!existsSync(path.join(world.slugDir, 'petri-probe')));
  // Its output lands in the output file.
  await until(async () => (await readFile(outputOf(spec), 'utf8')).includes(`listening on ${port}`), {
    timeout: 5000,
  });
  const status = await world.driver.status('sandbox-1');
  assert.ok((status.memoryBytes ?? 0) > 0, 'memory usage is reported');
  assert.ok(status.cpuSeconds !== undefined, 'cpu usage is reported');

  await world.driver.stop('sandbox-1', 5000);
  assert.equal(await isListening(port), false);
  const stopped = await world.driver.status('sandbox-1');
  assert.equal(stopped.running, false);
  assert.equal(stopped.exitCode, 0, 'SIGTERM reached the app, which exited cleanly');
  await world.driver.stop('sandbox-1', 5000); // idempotent
  await world.driver.stop('never-started', 5000);
  await world.driver.removeFiles(spec);
  assert.ok(!existsSync(spec.workDir));
});

test('an instance outlives its control plane (kill -9) and a new driver adopts it', async () => {
  const spec = world.instanceSpec('adopt-1');
  const script = fileURLToPath(new URL('./fixtures/start-instance.ts', import.meta.url));
  let port = 0;
  const controlPlane = spawn(
    process.execPath,
    ['--import', 'tsx', script, JSON.stringify({ options: world.options, spec })],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  try {
    let out = '';
    controlPlane.stdout?.on('data', (chunk) => {
      out += chunk;
    });
    await until(() => out.includes('"running":true'), {
      timeout: 20_000,
      message: 'the control plane to start it',
    });
    port = (JSON.parse(out.trim().split('\n')[0]!) as InstanceStatus).port!;
    await until(() => isListening(port), { timeout: 10_000, message: 'the instance to listen' });
  } finally {
    controlPlane.kill('SIGKILL');
  }
  await new Promise((resolve) => controlPlane.once('close', resolve));

  assert.equal(await isListening(port), true, 'still serving after kill -9 of the control plane');
  const restarted = new LocalDriver(world.options);
  const listed = await restarted.list();
  assert.deepEqual(
    listed.map((s) => [s.id, s.running, s.port]),
    [['adopt-1', true, port]],
    'adopted, with the port the dead control plane was told',
  );
  await restarted.stop('adopt-1', 5000);
  assert.equal(await isListening(port), false);
  assert.deepEqual(await restarted.list(), [], 'stop removes the cgroup');
  assert.equal((await restarted.status('adopt-1')).exitCode, 0, 'the exit is known to the adopter too');
  // The /app disk mounted by the dead control plane is unmounted and deleted by the new one.
  assert.equal(await mountCount(path.join(spec.workDir, 'app')), 1);
  await restarted.removeFiles(spec);
  assert.equal(await mountCount(path.join(spec.workDir, 'app')), 0);
  assert.ok(!existsSync(path.join(spec.workDir, APP_IMAGE)));
});

test('the exit code of a crashing instance is reported, also to a new driver', async () => {
  const spec = world.instanceSpec('crash-1', { command: ['sh', '-c', 'echo bye; exit 3'] });
  await world.driver.start(spec);
  const status = await until(
    async () => {
      const s = await world.driver.status('crash-1');
      return !s.running && s.exitCode !== undefined && s;
    },
    { timeout: 10_000, message: 'the instance to exit' },
  );
  assert.equal(status.exitCode, 3);
  assert.equal(status.oomKilled, false);
  const adopted = (await new LocalDriver(world.options).list()).find((s) => s.id === 'crash-1');
  assert.deepEqual([adopted?.running, adopted?.exitCode], [false, 3], 'listed until stopped, with its code');
  assert.match(await readFile(outputOf(spec), 'utf8'), /bye/);
  await world.driver.stop('crash-1', 1000);
});

test('an instance that ignores SIGTERM is killed after the grace period', async () => {
  const spec = world.instanceSpec('stubborn-1', {
    command: ['sh', '-c', 'trap "" TERM; echo ready; while :; do sleep 0.1; done'],
  });
  await world.driver.start(spec);
  await until(async () => (await readFile(outputOf(spec), 'utf8')).includes('ready'), { timeout: 10_000 });
  const t0 = Date.now();
  await world.driver.stop('stubborn-1', 300);
  assert.ok(Date.now() - t0 < 5000, 'stop does not wait forever');
  assert.equal((await world.driver.status('stubborn-1')).running, false);
  assert.deepEqual(await world.driver.list(), []);
});

test('a task runs as the spec uid, with /app and extra mounts writable', async () => {
  const appDir = await taskDir('id-1');
  const cache = path.join(world.root, 'cache');
  await mkdir(cache);
  const { chown } = await import('node:fs/promises');
  await chown(appDir, APP_UID, APP_UID);
  await chown(cache, APP_UID, APP_UID);
  const result = await task(
    'id-1',
    ['sh', '-c', 'id -u; id -g; echo built > /app/out; echo hit > /cache/c'],
    {
      appDir,
      writableMounts: { [cache]: '/cache' },
    },
  );
  assert.deepEqual(
    { exitCode: result.exitCode, timedOut: result.timedOut, oomKilled: result.oomKilled },
    { exitCode: 0, timedOut: false, oomKilled: false },
  );
  assert.equal(result.output, `${APP_UID}\n${APP_UID}\n`);
  assert.equal(await readFile(path.join(appDir, 'out'), 'utf8'), 'built\n');
  assert.equal(await readFile(path.join(cache, 'c'), 'utf8'), 'hit\n');
});

test('a task that allocates past its memory limit is OOM-killed', async () => {
  await taskDir('oom-1');
  const result = await task(
    'oom-1',
    ['node', '-e', 'const a = []; for (;;) a.push(Buffer.alloc(8 << 20, 1));'],
    { limits: { memoryMiB: 64, cpus: 1, pids: 64 } },
  );
  assert.equal(result.oomKilled, true);
  assert.equal(result.limitHit, 'memory');
  assert.notEqual(result.exitCode, 0);
});

test('a fork loop cannot exceed the pids limit', async () => {
  await taskDir('pids-1');
  const result = await task(
    'pids-1',
    ['sh', '-c', 'i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done'],
    { limits: { memoryMiB: 128, cpus: 1, pids: 16 } },
  );
  const started = Math.max(...result.output.split('\n').map(Number).filter(Number.isFinite));
  assert.ok(started < 16, `started ${started} processes under a limit of 16`);
  assert.match(result.output, /fork/i);
  assert.equal(result.limitHit, 'pids');
  assert.notEqual(result.exitCode, 0);
});

test('a task past its timeout is killed with everything it started', async () => {
  await taskDir('slow-1');
  const t0 = Date.now();
  const result = await task('slow-1', ['sh', '-c', 'sleep 60 & sleep 60'], { timeoutMs: 300 });
  assert.equal(result.timedOut, true);
  assert.ok(Date.now() - t0 < 10_000);
  assert.deepEqual(await world.driver.list(), [], 'task cgroups are not instances, and are removed');
});

test('removeFiles refuses paths that are not an instance dir', async () => {
  await assert.rejects(world.driver.removeFiles({ id: 'x-1', workDir: '/' }), /refusing/);
  await assert.rejects(world.driver.removeFiles({ id: 'x-1', workDir: 'relative/dir' }), /refusing/);
  await assert.rejects(world.driver.removeFiles({ id: '../x', workDir: '/tmp/x' }), /id/);
  const marker = path.join(world.root, 'instances', 'x-1', 'marker');
  await mkdir(path.dirname(marker), { recursive: true });
  await writeFile(marker, '');
  await world.driver.removeFiles({ id: 'x-1', workDir: path.dirname(marker) });
  assert.ok(!existsSync(marker));
});

test('removing the parent cgroup at shutdown leaves nothing behind, and keeps it while a sandbox runs', async () => {
  const spec = world.instanceSpec('parent-1');
  await world.driver.start(spec);
  const parent = `/sys/fs/cgroup/pids/${world.options.cgroupParent}`;
  await world.driver.removeCgroupParent();
  assert.ok(existsSync(parent), 'kept while an instance runs in it');
  await world.driver.stop(spec.id, 2000);
  await world.driver.removeFiles({ id: spec.id, workDir: spec.workDir });
  // An empty cgroup nobody removed (a build cut off by a crash) goes with it.
  mkdirSync(`${parent}/task_orphan`);
  await world.driver.removeCgroupParent();
  assert.equal(existsSync(parent), false, 'gone once empty');
});

test('an instance that ends by itself is told of (onExit), also to a driver that did not start it', async () => {
  const spec = world.instanceSpec('exits-1', { command: ['sh', '-c', 'sleep 1; exit 3'] });
  // Another driver on the same state folder: as after a restart of the control plane.
  const adopter = new LocalDriver(world.options);
  const heard: string[] = [];
  const stop = adopter.onExit((id) => heard.push(id));
  try {
    await world.driver.start(spec);
    assert.equal(heard.length, 0, 'nothing heard while it runs');
    await until(() => heard.includes('exits-1'), { timeout: 10_000, message: 'the exit to be heard' });
    const status = await adopter.status('exits-1');
    assert.equal(status.running, false);
    assert.equal(status.exitCode, 3);
  } finally {
    stop();
    await world.driver.stop('exits-1', 0);
    await world.driver.removeFiles(spec);
  }
});
