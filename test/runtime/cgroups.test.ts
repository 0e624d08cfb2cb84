// The cgroup file layout for v2 and v1, against a fake cgroupfs in a temp dir (this host
// runs v1, so the v2 path is checked here; local-driver.test.ts drives the real one).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { detectCgroups } from '../../src/runtime/local/cgroups.js';

const limits = { memoryMiB: 64, cpus: 0.5, pids: 32 };
const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function fakeRoot(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'petri-cgroupfs-'));
  roots.push(root);
  return root;
}

const read = (file: string) => readFile(file, 'utf8');

test('v2: limits, delegation of controllers, process list and usage', async () => {
  const root = await fakeRoot();
  await writeFile(path.join(root, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  const cg = await detectCgroups({ root, parent: 'petri' });
  assert.equal(cg.version, 2);

  await cg.create('web-1', limits);
  const dir = path.join(root, 'petri', 'web-1');
  assert.equal(await read(path.join(root, 'cgroup.subtree_control')), '+memory +cpu +pids');
  assert.equal(await read(path.join(root, 'petri', 'cgroup.subtree_control')), '+memory +cpu +pids');
  assert.equal(await read(path.join(dir, 'memory.max')), String(64 * 1024 * 1024));
  assert.equal(await read(path.join(dir, 'cpu.max')), '50000 100000');
  assert.equal(await read(path.join(dir, 'pids.max')), '32');
  assert.deepEqual(cg.procsFiles('web-1'), [path.join(dir, 'cgroup.procs')]);
  assert.deepEqual(await cg.names(), ['web-1']);

  await writeFile(path.join(dir, 'cgroup.procs'), '42\n43\n');
  await writeFile(path.join(dir, 'memory.current'), '1048576\n');
  await writeFile(path.join(dir, 'cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\n');
  await writeFile(path.join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
  assert.deepEqual(await cg.pids('web-1'), [42, 43]);
  assert.deepEqual(await cg.usage('web-1'), { memoryBytes: 1048576, cpuSeconds: 2.5, oomKilled: true });
  await writeFile(path.join(dir, 'pids.events'), 'max 2\n');
  assert.equal((await cg.usage('web-1')).pidsLimitHit, true, 'forks were refused at pids.max');
  assert.deepEqual(await cg.pids('gone'), []);
});

test('v1: one cgroup per hierarchy, memsw only when swap accounting exists', async () => {
  const root = await fakeRoot();
  for (const c of ['memory', 'cpu', 'cpuacct', 'pids']) await mkdir(path.join(root, c));
  const cg = await detectCgroups({ root, parent: 'petri/test' });
  assert.equal(cg.version, 1);

  await cg.create('web-1', limits);
  const at = (c: string, file: string) => path.join(root, c, 'petri', 'test', 'web-1', file);
  assert.equal(await read(at('memory', 'memory.limit_in_bytes')), String(64 * 1024 * 1024));
  await assert.rejects(read(at('memory', 'memory.memsw.limit_in_bytes')), /ENOENT/);
  assert.equal(await read(at('cpu', 'cpu.cfs_period_us')), '100000');
  assert.equal(await read(at('cpu', 'cpu.cfs_quota_us')), '50000');
  assert.equal(await read(at('pids', 'pids.max')), '32');
  assert.equal(cg.procsFiles('web-1').length, 4);

  await writeFile(at('memory', 'memory.usage_in_bytes'), '2048\n');
  await writeFile(at('cpuacct', 'cpuacct.usage'), '1500000000\n');
  await writeFile(at('memory', 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n');
  await writeFile(at('memory', 'memory.failcnt'), '12\n');
  // failcnt counts hitting the limit, not kills: with oom_kill present it is not an OOM.
  assert.deepEqual(await cg.usage('web-1'), { memoryBytes: 2048, cpuSeconds: 1.5, oomKilled: false });
  await writeFile(at('pids', 'pids.events'), 'max 0\n');
  assert.equal((await cg.usage('web-1')).pidsLimitHit, false);
  await writeFile(at('pids', 'pids.events'), 'max 7\n');
  assert.equal((await cg.usage('web-1')).pidsLimitHit, true);
});

test('refuses a parent that climbs out of the cgroup root, and bad limits', async () => {
  const root = await fakeRoot();
  await writeFile(path.join(root, 'cgroup.controllers'), 'memory pids cpu\n');
  await assert.rejects(detectCgroups({ root, parent: '../escape' }), /parent/);
  await assert.rejects(detectCgroups({ root, parent: '/abs' }), /parent/);
  const cg = await detectCgroups({ root, parent: 'petri' });
  await assert.rejects(cg.create('web-1', { memoryMiB: 0, cpus: 1, pids: 1 }), /memoryMiB/);
});
