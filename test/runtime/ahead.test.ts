// Sandbox parts made ahead (LocalDriver's `ahead`): spare network namespaces that any
// instance's start takes, and the app disk of a release whose instance stopped, taken by its
// next start (a wake). With the real ip, nft, bwrap, cgroups and loop mounts. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, readdir, readFile, stat } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import type { InstanceSpec } from '../../src/runtime/driver.js';
import { mountPoints } from '../../src/runtime/local/app-disk.js';
import type { Attachment } from '../../src/runtime/local/network-plan.js';
import { greeter, makeWorld, type World } from './world.js';

const NET_APP = fileURLToPath(new URL('./fixtures/net-app', import.meta.url));
const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);
const GATEWAY = `10.235.${X}.1`;

let world: World;
let slugDir: string;
/** Another release (its own template): the first test's stops made a disk of slugDir's. */
let diskSlugDir: string;
let allowedPort: number;
let deniedPort: number;
const servers: net.Server[] = [];
/** The 'instance started' lines: how each start got its /app. */
const starts: Array<{ id: string; appDir: string }> = [];

before(async () => {
  allowedPort = await freePort();
  world = await makeWorld('ahead', {
    network: { bridge: `pa${tag}`, subnet: `10.235.${X}.0/24`, hostPorts: [allowedPort] },
    ahead: { namespaces: 2, disks: 2 },
    logger: {
      info: (fields, msg) => {
        if (msg === 'instance started') starts.push({ id: String(fields.id), appDir: String(fields.appDir) });
      },
      warn: () => {},
    },
  });
  slugDir = path.join(world.root, 'net-slug');
  await cp(NET_APP, slugDir, { recursive: true });
  diskSlugDir = path.join(world.root, 'disk-slug');
  await cp(NET_APP, diskSlugDir, { recursive: true });
  await world.driver.prepare();
  servers.push(await greeter(GATEWAY, allowedPort));
  const denied = await greeter(GATEWAY, 0);
  servers.push(denied);
  deniedPort = (denied.address() as net.AddressInfo).port;
});

after(async () => {
  for (const server of servers) server.close();
  await world?.cleanup();
});

async function records(): Promise<Attachment[]> {
  const dir = path.join(world.options.stateDir, 'network');
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
  return Promise.all(
    files.map(async (f) => JSON.parse(await readFile(path.join(dir, f), 'utf8')) as Attachment),
  );
}

async function spares(): Promise<Attachment[]> {
  return (await records()).filter((a) => a.kind === 'spare' && a.ready);
}

/** The app disks made ahead (not one being made: a dot-directory until it is whole). */
async function madeDisks(): Promise<string[]> {
  const dir = path.join(world.options.stateDir, 'app-spares');
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.'));
}

async function namespaces(): Promise<string[]> {
  return (await readdir('/run/netns').catch(() => [] as string[])).sort();
}

async function listening(s: InstanceSpec): Promise<{ address: string; port: number }> {
  const status = await world.driver.start(s);
  assert.ok(status.address && status.port, `${s.id} has an address and a port`);
  const { address, port } = status;
  await until(() => isListening(port, address), { timeout: 10_000, message: `${s.id} to listen` });
  return { address, port };
}

async function getJson(address: string, port: number, what = '/'): Promise<Record<string, unknown>> {
  return (await (await fetch(`http://${address}:${port}${what}`)).json()) as Record<string, unknown>;
}

test('spare namespaces are made ahead; an instance that takes one is reached and confined as with its own', async () => {
  await until(async () => (await spares()).length === 2, { timeout: 15_000, message: 'two spares' });
  const made = await spares();
  for (const spare of made) {
    assert.ok((await namespaces()).includes(spare.netns), 'each spare is a namespace');
    assert.equal(await world.driver.sandboxAt(spare.address), undefined, 'no sandbox is behind a spare');
  }

  const a = await listening(world.instanceSpec('ahead-a', { slugDir }));
  const mine = (await records()).find((r) => r.kind === 'instance' && r.id === 'ahead-a');
  assert.ok(mine, 'the instance has its record');
  const taken = made.find((s) => s.netns === mine.netns);
  assert.ok(taken, 'it took a spare namespace');
  assert.equal(a.address, taken.address, "and the spare's address");
  assert.deepEqual(await world.driver.sandboxAt(a.address), world.instanceSpec('ahead-a').labels);
  assert.equal((await spares()).filter((s) => s.netns === taken.netns).length, 0, 'the spare is spent');

  assert.deepEqual(await getJson(a.address, a.port), { ok: true });
  const allowed = await getJson(a.address, a.port, `/connect?host=${GATEWAY}&port=${allowedPort}`);
  assert.equal(allowed.connected, true, 'it reaches the port it was given');
  const denied = await getJson(a.address, a.port, `/connect?host=${GATEWAY}&port=${deniedPort}`);
  assert.equal(denied.connected, false, 'and nothing else on the host');

  await world.driver.stop('ahead-a', 5000);
  assert.ok(!(await namespaces()).includes(taken.netns), 'its namespace goes with it');
  await world.driver.removeFiles(world.instanceSpec('ahead-a'));
  await until(async () => (await spares()).length === 2, {
    timeout: 15_000,
    message: 'the spares made again',
  });
});

/** Lists /app as the app found it at boot, then writes a file there. */
function diskSpec(id: string): InstanceSpec {
  const script = [
    "const fs = require('node:fs');",
    "const found = fs.readdirSync('/app').sort();",
    "fs.writeFileSync('/app/written', 'x');",
    "require('node:http').createServer((q, s) => s.end(JSON.stringify({ found })))",
    '.listen(Number(process.env.PORT), "0.0.0.0");',
  ].join('\n');
  return world.instanceSpec(id, { slugDir: diskSlugDir, command: ['node', '-e', script] });
}

test("a stopped instance's disk is made again ahead: the next start of its release takes a fresh one", async () => {
  const first = await listening(diskSpec('disk-1'));
  const found = (await getJson(first.address, first.port)).found;
  assert.ok((found as string[]).includes('server.mjs'), 'the slug is in /app');
  assert.equal(starts.find((s) => s.id === 'disk-1')?.appDir === 'spare', false, 'no spare before a stop');
  await world.driver.stop('disk-1', 5000);
  await world.driver.removeFiles(diskSpec('disk-1'));

  const sparesDir = path.join(world.options.stateDir, 'app-spares');
  // Two: ahead-a's release (the first test) and this one.
  await until(async () => (await madeDisks()).length === 2, {
    timeout: 15_000,
    message: 'a disk made ahead',
  });
  assert.equal((await stat(sparesDir)).mode & 0o777, 0o700, 'root only until an instance takes it');

  const second = await listening(diskSpec('disk-2'));
  assert.equal(starts.find((s) => s.id === 'disk-2')?.appDir, 'spare', 'the start took it');
  assert.deepEqual(
    (await getJson(second.address, second.port)).found,
    found,
    "a fresh copy of the release's /app: nothing the last instance wrote",
  );
  assert.equal((await madeDisks()).length, 1, 'spent');
  await world.driver.stop('disk-2', 5000);
  await world.driver.removeFiles(diskSpec('disk-2'));
  await until(async () => (await madeDisks()).length === 2, { timeout: 15_000, message: 'made again' });
});

test('an instance started again under its id (a crash restart) gets a fresh disk over its old work dir, not a spare', async () => {
  const s = diskSpec('disk-again');
  const first = await listening(s);
  assert.ok(((await getJson(first.address, first.port)).found as string[]).includes('server.mjs'));
  await world.driver.stop(s.id, 5000);
  // Its work dir stays (output.log, the disk): the supervisor starts it again without removeFiles.
  await until(async () => (await madeDisks()).length === 2, { timeout: 15_000, message: 'its spare made' });
  const spares = await madeDisks();
  const again = await listening(s);
  assert.notEqual(starts.filter((x) => x.id === s.id).at(-1)?.appDir, 'spare', 'no spare over a work dir');
  assert.equal(
    ((await getJson(again.address, again.port)).found as string[]).includes('written'),
    false,
    'a fresh disk all the same',
  );
  assert.deepEqual(await madeDisks(), spares, 'the spare stays for another start');
  await world.driver.stop(s.id, 5000);
  await world.driver.removeFiles(s);
});

test('at most `disks` are kept: the disk of the release stopped longest ago goes', async () => {
  const sparesDir = path.join(world.options.stateDir, 'app-spares');
  const before = (await madeDisks()).sort();
  assert.equal(before.length, 2);
  const made = await Promise.all(before.map(async (n) => (await stat(path.join(sparesDir, n))).ctimeMs));
  const oldest = made[0]! <= made[1]! ? before[0]! : before[1]!;
  const third = path.join(world.root, 'third-slug');
  await cp(NET_APP, third, { recursive: true });
  const s = world.instanceSpec('disk-3', { slugDir: third });
  await listening(s);
  await world.driver.stop('disk-3', 5000);
  await world.driver.removeFiles(s);
  // Made, then the oldest evicted: wait for both.
  await until(
    async () => {
      const now = await madeDisks();
      return now.length === 2 && !now.every((n) => before.includes(n));
    },
    { timeout: 15_000, message: "the third release's disk, and two in all" },
  );
  assert.equal((await madeDisks()).includes(oldest), false, 'the oldest went');
  const mounts = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
  assert.equal(mounts.filter((m) => m.startsWith(`${sparesDir}/`)).length, 2, 'the evicted one unmounted');
});

test("the platform's teardown removes what was made ahead", async () => {
  await until(async () => (await spares()).length === 2, {
    timeout: 15_000,
    message: 'the spares made again',
  });
  const names = (await spares()).map((s) => s.netns);
  await world.driver.teardown();
  const left = await namespaces();
  assert.deepEqual(
    names.filter((n) => left.includes(n)),
    [],
    'no spare namespace',
  );
  const mounts = mountPoints(await readFile('/proc/self/mountinfo', 'utf8'));
  assert.deepEqual(
    mounts.filter((m) => m.startsWith(`${world.options.stateDir}/`)),
    [],
    'no disk mounted',
  );
  assert.deepEqual(await readdir(path.join(world.options.stateDir, 'app-spares')), [], 'no disk');
});
