// The limits every sandbox gets besides its cgroup, seen from inside as an app would: the
// seccomp filter, the open-files rlimit, and the disk (a filesystem of its own under /app, a
// sized tmpfs at /tmp); also what the driver reports and leaves behind. Needs root, bwrap,
// loop devices, mkfs.ext4 and an x86_64 host (the syscall number probed below).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { exec } from '../../src/lib/exec.js';
import { isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import type { InstanceSpec, InteractiveProcess } from '../../src/runtime/driver.js';
import { makeAppDir } from '../../src/runtime/local/app-dir.js';
import {
  APP_IMAGE,
  createAppDisk,
  mountCount,
  mountPoints,
  removeAppDisk,
} from '../../src/runtime/local/app-disk.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import { APP_GID, APP_UID, getJson, makeWorld, outputOf, type World } from './world.js';

const MiB = 1024 * 1024;
let world: World;
const oneOffs: InteractiveProcess[] = [];
before(async () => {
  world = await makeWorld('limits');
});
after(async () => {
  for (const p of oneOffs) p.signal('SIGKILL');
  await Promise.allSettled(oneOffs.map((p) => p.wait()));
  await world?.cleanup();
});

const appDirOf = (spec: Pick<InstanceSpec, 'workDir'>) => path.join(spec.workDir, 'app');
const imageOf = (spec: Pick<InstanceSpec, 'workDir'>) => path.join(spec.workDir, APP_IMAGE);
const output = (spec: InstanceSpec) => readFile(outputOf(spec), 'utf8').catch(() => '');

/** Starts a shell script as an instance and waits until its output has `done`. */
async function runInstance(id: string, script: string, overrides: Partial<InstanceSpec> = {}) {
  const spec = world.instanceSpec(id, { command: ['sh', '-c', `${script}; echo done`], ...overrides });
  await world.driver.start(spec);
  await until(async () => (await output(spec)).includes('done'), {
    timeout: 20_000,
    message: `instance ${id} to finish its script`,
  });
  return { spec, out: await output(spec) };
}

async function finish(id: string, spec: InstanceSpec): Promise<void> {
  await world.driver.stop(id, 1000);
  await world.driver.removeFiles(spec);
}

test('ulimit -n shows the nofile limit, and the app cannot raise it', async () => {
  const { spec, out } = await runInstance(
    'nofile-1',
    'ulimit -n; ulimit -Hn; ulimit -n 4096 2>/dev/null && echo raised || echo refused',
    { limits: { memoryMiB: 128, cpus: 1, pids: 32, nofile: 256 } },
  );
  assert.equal(out, '256\n256\nrefused\ndone\n');
  await finish('nofile-1', spec);

  const byDefault = await runInstance('nofile-2', 'ulimit -n');
  assert.equal(byDefault.out, '1024\ndone\n', 'default 1024');
  await finish('nofile-2', byDefault.spec);
});

test('seccomp: a denied syscall fails with EPERM inside an instance, and a Node server still serves', async () => {
  const python =
    'import ctypes; libc = ctypes.CDLL(None, use_errno=True); print(libc.syscall(165, 0, 0, 0, 0, 0), ctypes.get_errno())';
  const spec = world.instanceSpec('seccomp-1', {
    command: [
      'sh',
      '-c',
      // mount (165) answers EPERM from the filter; then the probe app, a Node web server.
      'grep Seccomp: /proc/self/status; python3 -c "$1"; ls /proc/self/fd | sort -n | tr "\\n" " "; echo; exec node server.mjs',
      'sh',
      python,
    ],
  });
  const port = (await world.driver.start(spec)).port!;
  await until(() => isListening(port), { timeout: 10_000, message: 'the instance to listen' });
  assert.equal((await getJson(port)).uid, APP_UID);
  const [mode, mount, fds] = (await output(spec)).split('\n');
  assert.match(mode ?? '', /^Seccomp:\s+2$/, 'a filter is installed');
  assert.equal(mount, '-1 1', 'mount(2) gets EPERM');
  // 3 is ls's own directory; higher ones would be whatever the control plane inherited.
  const open = (fds ?? '').trim().split(' ').map(Number);
  assert.deepEqual(
    open.filter((fd) => fd >= 4 && fd <= 6),
    [],
    `no launch fd (args, passwd, group, filter) is left open for the app: ${fds}`,
  );
  await finish('seccomp-1', spec);
});

test('an app filling /app stops at diskMiB with ENOSPC; /tmp likewise', async () => {
  const limits = { memoryMiB: 256, cpus: 1, pids: 32, diskMiB: 16 };
  const { spec, out } = await runInstance(
    'disk-1',
    // 64 MiB into each: dd says why it stopped; then the sizes that made it.
    'for d in /app /tmp; do dd if=/dev/zero of=$d/fill bs=1M count=64 2>&1 | grep -o "No space left on device"; echo "$d $(wc -c < $d/fill)"; done',
    { limits },
  );
  const lines = out.split('\n');
  assert.deepEqual(
    lines.filter((l) => l.startsWith('No space')),
    ['No space left on device', 'No space left on device'],
    out,
  );
  for (const dir of ['/app', '/tmp']) {
    const size = Number(lines.find((l) => l.startsWith(`${dir} `))?.split(' ')[1]);
    assert.ok(size <= 16 * MiB && size > 12 * MiB, `${dir} took ${size} bytes under a 16 MiB limit`);
  }
  // On the host: a mount of its own, backed by an image of that size.
  assert.equal(await mountCount(appDirOf(spec)), 1);
  assert.equal((await stat(imageOf(spec))).size, 16 * MiB);

  await world.driver.stop('disk-1', 1000);
  await world.driver.removeFiles(spec);
  assert.equal(await mountCount(appDirOf(spec)), 0, 'unmounted');
  assert.ok(!existsSync(spec.workDir), 'image and workDir deleted');
  assert.ok(
    !mountPoints(await readFile('/proc/self/mountinfo', 'utf8')).some((m) => m.startsWith(spec.workDir)),
  );
});

test('a restarted driver stops an adopted instance and removes its disk', async () => {
  const spec = world.instanceSpec('adopt-disk-1', {
    limits: { memoryMiB: 256, cpus: 1, pids: 64, diskMiB: 32 },
  });
  const port = (await world.driver.start(spec)).port!;
  await until(() => isListening(port), { timeout: 10_000, message: 'the instance to listen' });
  const restarted = new LocalDriver(world.options);
  assert.deepEqual(
    (await restarted.list()).map((s) => [s.id, s.running]),
    [['adopt-disk-1', true]],
  );
  assert.equal(await mountCount(appDirOf(spec)), 1, 'the mount is not the control plane’s to keep');
  await restarted.stop('adopt-disk-1', 5000);
  assert.equal(await isListening(port), false);
  await restarted.removeFiles(spec);
  assert.equal(await mountCount(appDirOf(spec)), 0);
  assert.ok(!existsSync(imageOf(spec)));
  await restarted.removeFiles(spec); // idempotent
});

test('start() makes a fresh disk over a stale one: still mounted, or gone after a reboot', async () => {
  const spec = world.instanceSpec('restart-1');
  const startServing = async () => {
    const port = (await world.driver.start(spec)).port!;
    await until(() => isListening(port), { timeout: 10_000, message: 'the instance to listen' });
    return getJson(port);
  };
  await startServing();
  await world.driver.stop('restart-1', 5000);
  // Stopped, files kept, started again: the old mount is replaced, not stacked.
  assert.equal(await mountCount(appDirOf(spec)), 1);
  assert.equal((await startServing()).writeApp, true);
  assert.equal(await mountCount(appDirOf(spec)), 1);
  await world.driver.stop('restart-1', 5000);
  // A reboot: the mount is gone, workDir/app is an empty directory, the image is still there.
  await exec('umount', ['--', appDirOf(spec)]);
  assert.equal(await mountCount(appDirOf(spec)), 0);
  const probe = await startServing();
  assert.equal(await mountCount(appDirOf(spec)), 1);
  assert.deepEqual([probe.writeApp, probe.modifySlugFile], [true, false]);
  await finish('restart-1', spec);
});

test('the slug on its own disk: root-owned files the app cannot change in place, its own directories', async () => {
  const workDir = path.join(world.root, 'instances', 'owner-1');
  await mkdir(workDir, { recursive: true });
  const t0 = performance.now();
  const appDir = await createAppDisk(workDir, 1024);
  const method = await makeAppDir(world.slugDir, appDir, APP_UID, APP_GID);
  const ms = performance.now() - t0;
  // Every instance start pays this; the report quotes it.
  console.log(`# a 1 GiB disk for the probe slug: mkfs + mount + ${method} in ${ms.toFixed(0)} ms`);
  assert.equal(method, 'copy', 'links cannot cross into the image');
  assert.ok(ms < 5000, `disk setup took ${ms} ms`);
  assert.ok(!existsSync(path.join(appDir, 'lost+found')), 'only the slug is there');
  const dir = await stat(appDir);
  const file = await stat(path.join(appDir, 'server.mjs'));
  assert.deepEqual([dir.uid, dir.gid], [APP_UID, APP_GID]);
  assert.deepEqual([file.uid, file.gid], [0, 0]);
  assert.equal(file.mode & 0o777, (await stat(path.join(world.slugDir, 'server.mjs'))).mode & 0o777);
  // Sparse: the host pays for what is written, not for the limit.
  assert.ok((await stat(path.join(workDir, APP_IMAGE))).blocks * 512 < 16 * MiB);
  await removeAppDisk(workDir);
  assert.equal(await mountCount(appDir), 0);
  assert.ok(!existsSync(path.join(workDir, APP_IMAGE)));
});

test('a slug larger than the disk limit fails the start with a message that says so', async () => {
  const big = path.join(world.root, 'big-slug');
  await mkdir(big);
  await exec('dd', ['if=/dev/zero', `of=${big}/blob`, 'bs=1M', 'count=20']);
  const spec = world.instanceSpec('too-big-1', {
    slugDir: big,
    limits: { memoryMiB: 64, cpus: 1, pids: 8, diskMiB: 8 },
  });
  await assert.rejects(world.driver.start(spec), /does not fit the app's disk limit.*diskMiB/);
  await world.driver.removeFiles(spec);
  assert.equal(await mountCount(appDirOf(spec)), 0);
});

test('a one-off gets the disk too, and leaves nothing mounted', async () => {
  const workDir = path.join(world.root, 'runs', 'fill-1');
  const proc = await world.driver.runInteractive({
    id: 'fill-1',
    app: 'probe',
    labels: { app: 'probe', kind: 'run', process: 'run' },
    uid: APP_UID,
    gid: APP_GID,
    slugDir: world.slugDir,
    workDir,
    command: [
      'sh',
      '-c',
      'dd if=/dev/zero of=/app/fill bs=1M count=64 2>&1 | grep -c "No space left"; ulimit -n',
    ],
    env: {},
    limits: { memoryMiB: 128, cpus: 1, pids: 32, diskMiB: 16, nofile: 100 },
    tty: false,
  });
  oneOffs.push(proc);
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const result = await proc.wait();
  await until(() => proc.stdout.readableEnded, { timeout: 5000 });
  assert.equal(result.exitCode, 0);
  assert.equal(out, '1\n100\n');
  assert.equal(await mountCount(path.join(workDir, 'app')), 0);
  assert.ok(!existsSync(workDir));
});

test('a task: /tmp is capped, the caller’s /app is not', async () => {
  const appDir = path.join(world.root, 'tasks', 'tmp-1');
  await mkdir(appDir, { recursive: true });
  await chown(appDir, APP_UID, APP_GID);
  let out = '';
  const result = await world.driver.runTask({
    id: 'tmp-1',
    app: 'probe',
    uid: APP_UID,
    gid: APP_GID,
    appDir,
    command: [
      'sh',
      '-c',
      'dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1 | grep -c "No space left"; dd if=/dev/zero of=/app/out bs=1M count=24 2>/dev/null; wc -c < /app/out',
    ],
    env: {},
    limits: { memoryMiB: 256, cpus: 1, pids: 32, diskMiB: 16 },
    timeoutMs: 30_000,
    onOutput: (chunk) => {
      out += chunk;
    },
  });
  assert.equal(result.exitCode, 0, out);
  assert.equal(out, `1\n${24 * MiB}\n`);
});

test('onLimitHit tells of a fork refused at the pids limit as it happens, once however often forks fail', async () => {
  const told: string[] = [];
  const stop = world.driver.onLimitHit((id) => told.push(id));
  try {
    // Forks only once told to (/app/go appears), so the driver lists it running first.
    const spec = world.instanceSpec('forks-2', {
      // Forks for 5 s once told to, every 50 ms, counting those refused: the driver reads
      // pids.events every 2 s meanwhile.
      command: [
        'node',
        '-e',
        `const { existsSync } = require('node:fs');
const { spawn } = require('node:child_process');
const wait = setInterval(() => {
  if (!existsSync('/app/go')) return;
  clearInterval(wait);
  let refused = 0;
  const end = Date.now() + 5000;
  const fork = setInterval(() => {
    if (Date.now() < end) return void spawn('sleep', ['30']).on('error', () => refused++);
    clearInterval(fork);
    console.log('rounds done: ' + refused + ' forks refused');
  }, 50);
}, 50);`,
      ],
      limits: { memoryMiB: 128, cpus: 1, pids: 16 },
    });
    await world.driver.start(spec);
    await until(async () => (await world.driver.list()).some((s) => s.id === 'forks-2' && s.running), {
      timeout: 10_000,
      message: 'forks-2 listed running',
    });
    assert.deepEqual(told, []);
    await writeFile(path.join(appDirOf(spec), 'go'), '');
    await until(() => told.length > 0, { timeout: 10_000, message: 'the limit told' });
    // Forks refused for seconds, and the passes (list) meanwhile: still told once.
    await until(
      async () => {
        await world.driver.list();
        return (await output(spec)).includes('rounds done');
      },
      { timeout: 20_000, message: '5 s of forks' },
    );
    assert.ok(Number(/(\d+) forks refused/.exec(await output(spec))?.[1]) > 10, await output(spec));
    assert.deepEqual(told, ['forks-2']);
    await finish('forks-2', spec);
  } finally {
    stop();
  }
});

test('limitHit: pids when a fork was refused, also after stop; memory for an OOM kill', async () => {
  const spec = world.instanceSpec('forks-1', {
    command: ['sh', '-c', 'i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; wait'],
    limits: { memoryMiB: 128, cpus: 1, pids: 12 },
  });
  await world.driver.start(spec);
  await until(async () => (await world.driver.status('forks-1')).limitHit === 'pids', {
    timeout: 20_000,
    message: 'a refused fork to be reported',
  });
  assert.match(await output(spec), /fork/i);
  await world.driver.stop('forks-1', 500);
  const stopped = await new LocalDriver(world.options).status('forks-1');
  assert.deepEqual([stopped.running, stopped.limitHit], [false, 'pids'], 'kept after the cgroup is gone');
  await world.driver.removeFiles(spec);
  assert.equal((await world.driver.status('forks-1')).limitHit, undefined, 'forgotten with the files');

  const calm = await runInstance('calm-1', 'true');
  assert.equal((await world.driver.status('calm-1')).limitHit, undefined);
  await finish('calm-1', calm.spec);

  const appDir = path.join(world.root, 'tasks', 'oom-2');
  await mkdir(appDir, { recursive: true });
  const oom = await world.driver.runTask({
    id: 'oom-2',
    app: 'probe',
    uid: APP_UID,
    gid: APP_GID,
    appDir,
    command: ['node', '-e', 'const a = []; for (;;) a.push(Buffer.alloc(8 << 20, 1));'],
    env: {},
    limits: { memoryMiB: 64, cpus: 1, pids: 64 },
    timeoutMs: 30_000,
    onOutput: () => {},
  });
  assert.deepEqual([oom.oomKilled, oom.limitHit], [true, 'memory']);
});
