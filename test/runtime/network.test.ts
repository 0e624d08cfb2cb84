// Network isolation with the real ip, nft, bwrap and cgroups: each sandbox in its own
// namespace on a bridge of this test, reachable from the host, reaching only the host
// ports it was given. "The internet" is another namespace this test makes itself: no
// packet goes to an address the test did not create. Needs root.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exec, execOk } from '../../src/lib/exec.js';
import { freePort, isListening } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import type { InstanceStatus } from '../../src/runtime/driver.js';
import { LocalDriver } from '../../src/runtime/local/local-driver.js';
import type { Attachment } from '../../src/runtime/local/network-plan.js';
import { APP_GID, APP_UID, greeter, makeWorld, type World } from './world.js';

const NET_APP = fileURLToPath(new URL('./fixtures/net-app', import.meta.url));
const tag = randomBytes(4).toString('hex').slice(0, 6);
const X = 1 + (randomBytes(1)[0]! % 250);
const BRIDGE = `pt${tag}`;
const SUBNET = `10.233.${X}.0/24`;
const GATEWAY = `10.233.${X}.1`;
/** "The internet": a namespace behind a veth of its own, outside the sandboxes' subnet. */
const INET_NS = `pt${tag}-inet`;
const INET_VETH = `pt${tag}o`;
const INET_HOST = `10.214.${X}.1`;
const INET_ADDR = `10.214.${X}.2`;
const INET_PORT = 8080;

let world: World;
let slugDir: string;
let allowedPort: number;
let deniedPort: number;
let loopbackPort: number;
const servers: net.Server[] = [];
let internet: ChildProcess | undefined;

before(async () => {
  allowedPort = await freePort();
  world = await makeWorld('net', { network: { bridge: BRIDGE, subnet: SUBNET, hostPorts: [allowedPort] } });
  slugDir = path.join(world.root, 'net-slug');
  await cp(NET_APP, slugDir, { recursive: true });
  // The bridge and its gateway address exist once the driver set its network up.
  await world.driver.networkDrops();
  servers.push(await greeter(GATEWAY, allowedPort));
  deniedPort = (await greeter(GATEWAY, 0).then(remember)).port;
  loopbackPort = (await greeter('127.0.0.1', 0).then(remember)).port;
});

after(async () => {
  internet?.kill('SIGKILL');
  for (const server of servers) server.close();
  await exec('ip', ['link', 'delete', 'dev', INET_VETH]);
  await exec('ip', ['netns', 'delete', INET_NS]);
  await world?.cleanup();
});

function remember(server: net.Server): { port: number } {
  servers.push(server);
  return { port: (server.address() as net.AddressInfo).port };
}

function spec(id: string) {
  return world.instanceSpec(id, { slugDir });
}

/** The port each instance's driver chose, by the instance's address. */
const portAt: Record<string, number> = {};

async function startInstance(
  id: string,
  driver = world.driver,
): Promise<InstanceStatus & { address: string; port: number }> {
  const status = await driver.start(spec(id));
  assert.ok(status.address, `instance ${id} has an address`);
  assert.ok(status.port, `instance ${id} has a port`);
  const { address, port } = status;
  portAt[address] = port;
  await until(() => isListening(port, address), { timeout: 10_000, message: `${id} to listen` });
  return { ...status, address, port };
}

interface Reach {
  connected: boolean;
  error?: string;
  data: string;
}

/** Asks the app inside the instance to connect to host:port. */
async function reach(from: string, host: string, port: number): Promise<Reach> {
  const res = await fetch(`http://${from}:${portAt[from]}/connect?host=${host}&port=${port}`);
  return (await res.json()) as Reach;
}

async function attachmentOf(kind: string, id: string): Promise<Attachment> {
  return JSON.parse(
    await readFile(path.join(world.options.stateDir, 'network', `${kind}_${id}.json`), 'utf8'),
  );
}

const instances: Record<string, string> = {};

test('an instance gets its own address in the subnet and answers there from the host', async () => {
  assert.equal(world.driver.networkGateway(), GATEWAY);
  const a = await startInstance('net-a');
  instances.a = a.address;
  assert.match(a.address, new RegExp(`^10\\.233\\.${X}\\.[0-9]+$`));
  assert.notEqual(a.address, GATEWAY);
  const res = await fetch(`http://${a.address}:${a.port}/`);
  assert.deepEqual(await res.json(), { ok: true });
  assert.equal(await isListening(a.port), false, 'nothing of it on the host loopback');
  const listed = (await world.driver.list()).find((s) => s.id === 'net-a');
  assert.equal(listed?.address, a.address);
  const { netns } = await attachmentOf('instance', 'net-a');
  assert.ok(existsSync(`/run/netns/${netns}`));
});

test('an instance reaches the allowed host port on the gateway', async () => {
  assert.deepEqual(await reach(instances.a!, GATEWAY, allowedPort), { connected: true, data: 'hello\n' });
});

test('an instance cannot reach another port of the host, nor the host loopback', async () => {
  const before = await world.driver.networkDrops();
  assert.equal(await isListening(deniedPort, GATEWAY), true, 'the host itself reaches that port');
  const denied = await reach(instances.a!, GATEWAY, deniedPort);
  assert.deepEqual([denied.connected, denied.error], [false, 'timeout'], 'dropped, not refused');
  assert.ok((await world.driver.networkDrops())!.input > before!.input, 'the drop is counted');

  assert.equal(await isListening(loopbackPort), true);
  const loopback = await reach(instances.a!, '127.0.0.1', loopbackPort);
  assert.deepEqual([loopback.connected, loopback.error], [false, 'ECONNREFUSED'], 'its loopback is its own');
});

test('an instance cannot reach another instance', async () => {
  const b = await startInstance('net-b');
  instances.b = b.address;
  assert.notEqual(b.address, instances.a);
  assert.equal(await isListening(b.port, b.address), true, 'the host reaches it');
  assert.equal((await reach(instances.a!, b.address, b.port)).connected, false);
  assert.equal((await reach(b.address, instances.a!, portAt[instances.a!]!)).connected, false);
});

test('an instance cannot reach the outside world, even with forwarding on', async () => {
  await execOk('ip', ['netns', 'add', INET_NS]);
  await execOk('ip', ['link', 'add', INET_VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', INET_NS]);
  await execOk('ip', ['address', 'add', `${INET_HOST}/30`, 'dev', INET_VETH]);
  await execOk('ip', ['link', 'set', 'dev', INET_VETH, 'up']);
  await execOk('ip', ['-n', INET_NS, 'address', 'add', `${INET_ADDR}/30`, 'dev', 'eth0']);
  await execOk('ip', ['-n', INET_NS, 'link', 'set', 'dev', 'eth0', 'up']);
  await execOk('ip', ['-n', INET_NS, 'route', 'add', SUBNET, 'via', INET_HOST]);
  // Routing between the two, for these two interfaces only: were it not for the firewall,
  // the sandbox's packets would be forwarded.
  for (const dev of [BRIDGE, INET_VETH]) await writeFile(`/proc/sys/net/ipv4/conf/${dev}/forwarding`, '1');
  internet = spawn(
    'ip',
    [
      'netns',
      'exec',
      INET_NS,
      process.execPath,
      '-e',
      `require('net').createServer((s) => s.end('hello\\n')).listen(${INET_PORT}, '${INET_ADDR}')`,
    ],
    { stdio: 'ignore' },
  );
  await until(() => isListening(INET_PORT, INET_ADDR), {
    timeout: 10_000,
    message: '"the internet" to listen',
  });

  const before = await world.driver.networkDrops();
  const outside = await reach(instances.a!, INET_ADDR, INET_PORT);
  assert.deepEqual([outside.connected, outside.error], [false, 'timeout']);
  assert.ok((await world.driver.networkDrops())!.forward > before!.forward, 'dropped in forward');
});

test('a restarted control plane knows every address, hands out no used one, and tears down on stop', async () => {
  const restarted = new LocalDriver(world.options);
  const listed = await restarted.list();
  assert.deepEqual(listed.map((s) => [s.id, s.running, s.address]).sort(), [
    ['net-a', true, instances.a],
    ['net-b', true, instances.b],
  ]);
  const c = await startInstance('net-c', restarted);
  assert.ok(![instances.a, instances.b, GATEWAY].includes(c.address), `new address ${c.address}`);

  for (const id of ['net-a', 'net-b', 'net-c']) {
    const { netns, hostVeth } = await attachmentOf('instance', id);
    await restarted.stop(id, 5000);
    assert.equal(existsSync(`/run/netns/${netns}`), false, `${id}'s namespace is gone`);
    assert.notEqual((await exec('ip', ['link', 'show', 'dev', hostVeth])).code, 0, `${id}'s veth is gone`);
    assert.equal((await restarted.status(id)).address, undefined, 'its address is free');
    await restarted.stop(id, 5000); // idempotent
    await restarted.removeFiles(spec(id));
  }
  assert.deepEqual(await readdir(path.join(world.options.stateDir, 'network')), []);
});

const connectScript = (port: number) =>
  `const s = require('net').connect(${port}, '${GATEWAY}'); s.setTimeout(1000, () => { console.log('timeout'); process.exit(1); });` +
  ` s.on('data', (d) => process.stdout.write(d)); s.on('error', (e) => { console.log(e.code); process.exit(1); });`;

test('a task runs in its own namespace and reaches the allowed port (the egress proxy)', async () => {
  const appDir = path.join(world.root, 'tasks', 'net-build');
  await mkdir(appDir, { recursive: true });
  const run = async (port: number) => {
    let output = '';
    const result = await world.driver.runTask({
      id: 'net-build',
      app: 'probe',
      uid: APP_UID,
      gid: APP_GID,
      appDir,
      command: ['node', '-e', connectScript(port)],
      env: {},
      limits: { memoryMiB: 256, cpus: 1, pids: 64 },
      timeoutMs: 30_000,
      onOutput: (chunk) => {
        output += chunk;
      },
    });
    return { exitCode: result.exitCode, output };
  };
  const allowed = await run(allowedPort);
  assert.equal(allowed.exitCode, 0, allowed.output);
  assert.match(allowed.output, /hello/);
  const denied = await run(deniedPort);
  assert.notEqual(denied.exitCode, 0);
  assert.match(denied.output, /timeout/);
  assert.deepEqual(await readdir(path.join(world.options.stateDir, 'network')), [], 'its namespace is gone');
});

test('a one-off runs in its own namespace too', async () => {
  const proc = await world.driver.runInteractive({
    id: 'net-run',
    app: 'probe',
    labels: { app: 'probe', kind: 'run', process: 'run' },
    uid: APP_UID,
    gid: APP_GID,
    slugDir,
    workDir: path.join(world.root, 'runs', 'net-run'),
    command: ['node', '-e', connectScript(allowedPort)],
    env: {},
    limits: { memoryMiB: 128, cpus: 1, pids: 32 },
    tty: false,
  });
  let out = '';
  proc.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  const result = await proc.wait();
  assert.equal(result.exitCode, 0, out);
  assert.equal(out, 'hello\n');
  assert.deepEqual(await readdir(path.join(world.options.stateDir, 'network')), [], 'its namespace is gone');
});
