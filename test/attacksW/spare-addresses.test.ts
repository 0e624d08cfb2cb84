// Attack (issue 16, namespaces made ahead): spare namespaces hold addresses of the subnet that
// only instances can take. Tasks (builds) and one-offs (petri run) always allocate a fresh
// address, and the spares (4 in production, components/host.ts) count as in use. A subnet the
// driver accepts (/30 is "the smallest with a gateway and one sandbox", network-plan.ts; a /29
// has 5) is then full of spares with nothing running: every build fails with "no free address
// left" although no sandbox runs. Fix: a task or one-off takes a spare too (or the fill leaves
// free at least the addresses it would hold, e.g. no more spares than a quarter of the subnet).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import type { Attachment } from '../../src/runtime/local/network-plan.js';
import { APP_GID, APP_UID, makeWorld, type World } from '../runtime/world.js';

const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);

let world: World;

before(async () => {
  world = await makeWorld('attackW-addr', {
    network: { bridge: `px${tag}`, subnet: `10.238.${X}.0/30`, hostPorts: [] },
    ahead: { namespaces: 4, disks: 0 },
  });
  await world.driver.prepare();
});

after(async () => {
  await world?.cleanup();
});

async function spares(): Promise<Attachment[]> {
  const dir = path.join(world.options.stateDir, 'network');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith('spare_'));
  const all = await Promise.all(
    files.map(async (f) => JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Attachment),
  );
  return all.filter((a) => a.ready);
}

test('with nothing running, a build still gets an address of the subnet', async () => {
  // The fill takes what there is (here the one address) and stops there.
  await until(async () => (await spares()).length === 1, { timeout: 15_000, message: 'a spare' });
  const appDir = path.join(world.root, 'tasks', 'build-1');
  await mkdir(appDir, { recursive: true });
  let output = '';
  const result = await world.driver
    .runTask({
      id: 'build-1',
      app: 'probe',
      uid: APP_UID,
      gid: APP_GID,
      appDir,
      command: ['node', '-e', 'console.log("built")'],
      env: {},
      limits: { memoryMiB: 256, cpus: 1, pids: 64 },
      timeoutMs: 30_000,
      onOutput: (chunk) => {
        output += chunk;
      },
    })
    .catch((err: Error) => ({ error: err.message }));
  assert.deepEqual(
    'error' in result ? result.error : output.trim(),
    'built',
    'the build ran (no sandbox runs: the one address is held by a spare nobody may use for it)',
  );
});
