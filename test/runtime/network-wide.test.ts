// A /16 sandbox network (the default) with the real ip and nft: a sandbox attached after
// more sandboxes than the old /24 could hold gets an address beyond it and answers the host,
// and with thousands of sandboxes recorded an attach stays fast. Needs root.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { exec, execOk } from '../../src/lib/exec.js';
import { until } from '../../src/lib/until.js';
import { SandboxNetwork } from '../../src/runtime/local/network.js';
import { attachmentNames, formatIPv4, parseSubnet } from '../../src/runtime/local/network-plan.js';

const tag = randomBytes(3).toString('hex');
const BRIDGE = `pw${tag}`;
/** Outside the 10.213/10.214 ranges the other network tests take their /24s from. */
const SUBNET = '10.216.0.0/16';
/** Sandboxes an earlier control plane left recorded: far more than a /24 holds. */
const RECORDED = 5000;

let stateDir: string;
const children: ChildProcess[] = [];
let network: SandboxNetwork;

before(async () => {
  stateDir = await mkdtemp(path.join(tmpdir(), 'petri-netwide-'));
  const subnet = parseSubnet(SUBNET);
  await mkdir(path.join(stateDir, 'network'), { recursive: true });
  for (let i = 0; i < RECORDED; i++) {
    const id = `old-${i}`;
    const record = {
      kind: 'instance',
      id,
      ...attachmentNames(stateDir, 'instance', id),
      address: formatIPv4(subnet.network + 2 + i),
    };
    await writeFile(path.join(stateDir, 'network', `instance_${id}.json`), JSON.stringify(record));
  }
  network = new SandboxNetwork({ bridge: BRIDGE, subnet: SUBNET, hostPorts: [] }, stateDir);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  for (const id of ['new-1', 'new-2', 'new-3']) await network?.detach('instance', id).catch(() => {});
  await network?.remove().catch(() => {});
  await exec('ip', ['link', 'delete', 'dev', BRIDGE]);
  await rm(stateDir, { recursive: true, force: true });
});

test('a sandbox beyond the first 5,000 gets a free /16 address and answers the host', async () => {
  const a = await network.attach('instance', 'new-1');
  assert.equal(a.address, formatIPv4(parseSubnet(SUBNET).network + 2 + RECORDED));
  const shown = (await execOk('ip', ['-n', a.netns, '-4', '-o', 'address', 'show', 'dev', 'eth0'])).stdout;
  assert.match(shown, new RegExp(`inet ${a.address.replace(/\./g, '\\.')}/16 `));
  // A server in the namespace, reached from the host through the bridge.
  const server = spawn(
    'ip',
    [
      'netns',
      'exec',
      a.netns,
      process.execPath,
      '-e',
      "require('net').createServer((s) => s.end('hi\\n')).listen(5000)",
    ],
    { stdio: 'ignore' },
  );
  children.push(server);
  const greeting = await until(() => readGreeting(a.address, 5000), {
    timeout: 10_000,
    message: 'the sandbox to answer',
  });
  assert.equal(greeting, 'hi\n');
  assert.equal((await network.at(a.address))?.id, 'new-1');
});

test('attaching stays fast with thousands of sandboxes recorded', async () => {
  const started = performance.now();
  const b = await network.attach('instance', 'new-2');
  const c = await network.attach('instance', 'new-3');
  const ms = (performance.now() - started) / 2;
  assert.notEqual(b.address, c.address);
  console.log(`attach with ${RECORDED} recorded sandboxes: ${ms.toFixed(0)} ms each`);
  assert.ok(ms < 150, `an attach took ${ms.toFixed(0)} ms`);
});

/** What a server at host:port says, or false while nothing answers. */
function readGreeting(host: string, port: number): Promise<string | false> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, timeout: 1000 });
    let data = '';
    socket.on('data', (chunk) => {
      data += chunk.toString();
    });
    socket.on('end', () => resolve(data));
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
