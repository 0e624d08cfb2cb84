// Attacks on the parts of a sandbox made ahead of a wake (issue 16: LocalDriver's `ahead`,
// src/runtime/local/network.ts spares and src/runtime/local/spare-disks.ts). Real ip, nft,
// bwrap, cgroups and loop mounts, as in test/runtime/ahead.test.ts. Needs root.
//
// 1. A spare namespace keeps its own names (petri-<hash of the spare's id>) once an instance
//    takes it, but attach() for an instance that has a record already (start() over an earlier
//    run's leftovers, which the driver promises to replace) computes the instance's names and
//    removes only those: the namespace the instance had is left on the bridge with the same
//    address as the new one, recorded nowhere, after the instance stops too. Every such start
//    leaks a namespace and a veth, and two ports of the bridge hold one address (the leaked
//    one for ever, also once the address is handed to another app's instance; here the host
//    still reached the new holder, the leaked namespace having nothing running in it).
//    Fix: in attach(), remove the namespace the existing record names (removeNamespace(existing))
//    before recording the new names, or keep the record's names.
// 2. A spare disk half made when the control plane died (cloned and mounted at
//    app-spares/.<name>.<random>, not yet renamed) is never removed by a restarted one: make()
//    and evict() skip dot names, only --stop-all's removeAll() takes them. Each restart during
//    a fill leaks a loop device, a mount and an image of an app's code.
//    Fix: a new SpareDisks removes the dot entries it did not make (at its first make()).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exec } from '../../src/lib/exec.js';
import { isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import type { InstanceSpec } from '../../src/runtime/driver.js';
import { cloneAppDisk, mountPoints } from '../../src/runtime/local/app-disk.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import type { Attachment } from '../../src/runtime/local/network-plan.js';
import { makeWorld, type World } from '../runtime/world.js';

const NET_APP = fileURLToPath(new URL('../runtime/fixtures/net-app', import.meta.url));
const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);

let world: World;
let driver: LocalDriver;
let slugDir: string;
/** Namespaces this file may leave that the world's cleanup does not know of (no record). */
const strays: Attachment[] = [];

before(async () => {
  world = await makeWorld('attackW', {
    network: { bridge: `pw${tag}`, subnet: `10.237.${X}.16/28`, hostPorts: [] },
    ahead: { namespaces: 2, disks: 2 },
  });
  driver = world.driver;
  slugDir = path.join(world.root, 'net-slug');
  await cp(NET_APP, slugDir, { recursive: true });
  await driver.prepare();
});

after(async () => {
  for (const a of strays) {
    await exec('ip', ['link', 'delete', 'dev', a.hostVeth]);
    await exec('ip', ['netns', 'delete', a.netns]);
  }
  await world?.cleanup();
});

async function records(): Promise<Attachment[]> {
  const dir = path.join(world.options.stateDir, 'network');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
  return Promise.all(
    files.map(async (f) => JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Attachment),
  );
}

/** The host's named namespaces that hold `address` on their eth0. */
async function namespacesWith(address: string): Promise<string[]> {
  const found: string[] = [];
  for (const ns of await readdir('/run/netns').catch(() => [] as string[])) {
    const out = await exec('ip', ['-n', ns, '-4', '-o', 'address', 'show']);
    if (out.stdout.split(/\s+/).includes(`${address}/28`)) found.push(ns);
  }
  return found.sort();
}

function spec(id: string, command: string[]): InstanceSpec {
  return world.instanceSpec(id, { slugDir, command });
}

test('an instance started again over its leftovers (it had taken a spare namespace) has one namespace at its address, and none stays after its stop', async () => {
  await until(async () => (await records()).filter((a) => a.kind === 'spare' && a.ready).length === 2, {
    timeout: 15_000,
    message: 'two spare namespaces',
  });
  // A first run whose process ends by itself: its namespace (a spare it took) and record stay
  // until a stop, the leftovers start() replaces ("a fresh namespace, replacing a leftover of
  // an earlier run, keeping the address it had").
  const first = await driver.start(spec('leftover', ['node', '-e', 'process.exit(3)']));
  const address = first.address!;
  const had = (await records()).find((a) => a.kind === 'instance' && a.id === 'leftover')!;
  assert.ok(had, 'the first run has its record');
  strays.push(had);
  await until(async () => !(await driver.status('leftover')).running, { timeout: 10_000, message: 'exited' });
  assert.deepEqual(await namespacesWith(address), [had.netns], 'the first run: one namespace at its address');

  const again = await driver.start(spec('leftover', ['node', 'server.mjs']));
  assert.equal(again.address, address, 'the address it had');
  await until(() => isListening(again.port!, address), { timeout: 10_000, message: 'listening' });
  const now = (await records()).find((a) => a.kind === 'instance' && a.id === 'leftover')!;
  strays.push(now);
  const twice = await namespacesWith(address);

  await driver.stop('leftover', 5000);
  await driver.removeFiles(spec('leftover', []));
  const leaked = await namespacesWith(address);

  // The harm: the address goes round (13 in this /28) to another app's instance, while the
  // leaked namespace still answers ARP for it on the bridge.
  let other: { id: string; port: number } | undefined;
  for (let i = 0; i < 20 && !other; i++) {
    const id = `other-${i}`;
    const s = world.instanceSpec(id, {
      slugDir,
      command: ['node', 'server.mjs'],
      labels: { app: 'other', kind: 'instance', process: 'web.1' },
    });
    const status = await driver.start(s);
    if (status.address === address) other = { id, port: status.port! };
    else {
      await driver.stop(id, 0);
      await driver.removeFiles(s);
    }
  }
  assert.ok(other, `${address} handed to another instance`);
  const otherNetns = (await records()).find((a) => a.kind === 'instance' && a.id === other.id)!.netns;
  const shared = await namespacesWith(address);
  const reached = await until(() => isListening(other.port, address), { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
  assert.equal(reached, true, `the other app's instance at ${address} is reached`);
  assert.deepEqual(
    twice,
    [now.netns],
    `one namespace holds ${address} on the bridge (the first run's ${had.netns} was replaced)`,
  );
  assert.deepEqual(leaked, [], `nothing holds ${address} once the instance stopped`);
  assert.deepEqual(shared, [otherNetns], `only the other app's instance holds ${address}`);
});

test('a spare disk half made when the control plane died is removed by the next one', async () => {
  const sparesDir = path.join(world.options.stateDir, 'app-spares');
  const s = spec('disk-1', ['node', 'server.mjs']);
  await driver.start(s);
  await driver.stop(s.id, 5000);
  await driver.removeFiles(s);
  await until(async () => (await readdir(sparesDir).catch(() => [])).some((n) => !n.startsWith('.')), {
    timeout: 15_000,
    message: 'a spare disk',
  });
  const [name] = (await readdir(sparesDir)).filter((n) => !n.startsWith('.'));
  const templates = path.join(world.options.stateDir, 'app-templates');
  const [template] = (await readdir(templates)).filter((n) => n.endsWith('.img'));
  // Exactly what make() leaves when the control plane dies between cloneAppDisk and rename:
  // the clone, mounted, under its aside name.
  const aside = path.join(sparesDir, `.${name}.0badc0de`);
  await cloneAppDisk(path.join(templates, template!), aside);

  // The restart: a new driver on the same state dir, which wakes and puts the app to sleep.
  await driver.close();
  driver = new LocalDriver(world.options);
  await driver.prepare();
  const s2 = spec('disk-2', ['node', 'server.mjs']);
  await driver.start(s2);
  await driver.stop(s2.id, 5000);
  await driver.removeFiles(s2);
  await until(async () => (await readdir(sparesDir)).some((n) => n === name), {
    timeout: 15_000,
    message: 'the spare made again by the new driver',
  });
  const mounts = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
  assert.deepEqual(
    mounts.filter((m) => m.startsWith(`${aside}/`) || m === `${aside}/app`),
    [],
    'the half-made spare is not mounted any more',
  );
  assert.deepEqual(
    (await readdir(sparesDir)).filter((n) => n.startsWith('.')),
    [],
    'nor kept (its image holds the app code)',
  );
});
