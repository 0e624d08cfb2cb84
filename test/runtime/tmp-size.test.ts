// /tmp is a tmpfs, and tmpfs pages are charged to the instance's memory cgroup: a /tmp as
// large as the disk limit let an app fill it past its memory limit and be OOM-killed
// instead of getting ENOSPC (issue 11). /tmp is at most half the memory limit, so writing
// too much to it fails with ENOSPC and the app lives on. Needs root, bwrap and cgroups.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { makeWorld, outputOf, type World } from './world.js';

const MiB = 1024 * 1024;
let world: World;
before(async () => {
  world = await makeWorld('tmpsize');
});
after(async () => {
  await world?.cleanup();
});

test('writing more to /tmp than the memory limit is ENOSPC at half of it, not an OOM kill', async () => {
  const spec = world.instanceSpec('tmp-1', {
    command: [
      'sh',
      '-c',
      'dd if=/dev/zero of=/tmp/fill bs=1M count=128 2>&1 | grep -o "No space left on device"; echo "tmp $(wc -c < /tmp/fill)"; echo done; sleep 30',
    ],
    limits: { memoryMiB: 64, cpus: 1, pids: 32, diskMiB: 1024 },
  });
  await world.driver.start(spec);
  const output = () => readFile(outputOf(spec), 'utf8').catch(() => '');
  // Either the script finishes or the instance is gone (killed).
  await until(
    async () => (await output()).includes('done') || !(await world.driver.status('tmp-1')).running,
    {
      timeout: 20_000,
      message: 'the script to finish or the instance to die',
    },
  );
  const status = await world.driver.status('tmp-1');
  const out = await output();
  assert.equal(status.oomKilled ?? false, false, `OOM-killed: ${out}`);
  assert.ok(status.running, `the instance lives on: ${out}`);
  assert.match(out, /No space left on device/);
  const size = Number(/tmp (\d+)/.exec(out)?.[1]);
  assert.ok(size <= 32 * MiB && size > 24 * MiB, `/tmp took ${size} bytes under a 64 MiB memory limit`);
  await world.driver.stop('tmp-1', 1000);
  await world.driver.removeFiles(spec);
});
