// A sandbox reaches the host only at the gateway's platform ports, never at another of the
// host's addresses, even on the very port it may use on the gateway: packets to any local
// address meet the input chain, whose accept names the gateway alone. The other address
// is one this test puts on a veth of its own (TEST-NET-2, like the documentation address
// this project's machine has on its interface). Real ip, nft and bwrap; needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type net from 'node:net';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { exec, execOk } from '../../src/lib/exec.js';
import { freePort, isListening } from '../../src/lib/ports.js';
import { APP_GID, APP_UID, greeter, makeWorld, type World } from './world.js';

const canRun = process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);
const BRIDGE = `ph${tag}`;
const GATEWAY = `10.215.${X}.1`;
const QUAD = 4 * (randomBytes(1)[0]! % 64);
/** A second address of the host, on a veth whose other end is in a namespace of this test. */
const OTHER_ADDR = `198.51.100.${QUAD + 1}`;
const PEER_NS = `ph${tag}-peer`;
const VETH = `ph${tag}v`;

let world: World;
let port: number;
const servers: net.Server[] = [];

before(async () => {
  if (!canRun) return;
  port = await freePort();
  world = await makeWorld('hostaddr', {
    network: { bridge: BRIDGE, subnet: `10.215.${X}.0/24`, hostPorts: [port] },
  });
  await world.driver.networkDrops();
  await execOk('ip', ['netns', 'add', PEER_NS]);
  await execOk('ip', ['link', 'add', VETH, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', PEER_NS]);
  await execOk('ip', ['address', 'add', `${OTHER_ADDR}/30`, 'dev', VETH]);
  await execOk('ip', ['link', 'set', 'dev', VETH, 'up']);
  // The same service on both addresses, as one listening on all interfaces would be.
  for (const host of [GATEWAY, OTHER_ADDR]) servers.push(await greeter(host, port));
});

after(async () => {
  for (const server of servers) server.close();
  await exec('ip', ['link', 'delete', 'dev', VETH]);
  await exec('ip', ['netns', 'delete', PEER_NS]);
  await world?.cleanup();
});

/** Runs a task in a sandbox that connects to host:port and prints what it got. */
async function connectFromSandbox(host: string): Promise<string> {
  const appDir = path.join(world.root, 'tasks', 'probe');
  await mkdir(appDir, { recursive: true });
  let output = '';
  await world.driver.runTask({
    id: `probe-${host}`,
    app: 'probe',
    uid: APP_UID,
    gid: APP_GID,
    appDir,
    command: [
      'node',
      '-e',
      `const s = require('net').connect(${port}, '${host}'); s.setTimeout(1000, () => { console.log('timeout'); process.exit(1); });` +
        ` s.on('data', (d) => process.stdout.write(d)); s.on('error', (e) => { console.log(e.code); process.exit(1); });`,
    ],
    env: {},
    limits: { memoryMiB: 256, cpus: 1, pids: 64 },
    timeoutMs: 30_000,
    onOutput: (chunk) => {
      output += chunk;
    },
  });
  return output;
}

test("a sandbox reaches the gateway's platform port, but not the same port at another host address", {
  skip: !canRun && 'needs root',
}, async () => {
  assert.equal(await isListening(port, OTHER_ADDR), true, 'the host itself reaches it there');
  assert.equal(await connectFromSandbox(GATEWAY), 'hello\n');
  const before = await world.driver.networkDrops();
  assert.equal(await connectFromSandbox(OTHER_ADDR), 'timeout\n');
  assert.ok(
    (await world.driver.networkDrops())!.input > before!.input,
    'dropped by the input chain, and counted',
  );
});
