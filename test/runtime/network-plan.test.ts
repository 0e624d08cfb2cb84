// Network isolation as data: golden files of the nftables ruleset, the commands that
// attach a sandbox and the launch argv that runs it in its namespace; the subnet
// arithmetic and the options that must be refused. UPDATE_GOLDEN=1 rewrites the golden files.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/lib/config.js';
import {
  allocateAddress,
  attachCommands,
  attachmentNames,
  bridgeCommands,
  formatIPv4,
  networkPlan,
  parseSubnet,
  renderRuleset,
} from '../../src/runtime/local/network-plan.js';
import { ENTER_AND_RECORD, enterArgv, sandboxLaunch } from '../../src/runtime/local/sandbox-args.js';

function golden(name: string, actual: string): void {
  const file = fileURLToPath(new URL(`./golden/${name}`, import.meta.url));
  if (process.env.UPDATE_GOLDEN) writeFileSync(file, actual);
  assert.equal(actual, readFileSync(file, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

const plan = networkPlan({ bridge: 'petri0', subnet: '10.213.0.0/24', hostPorts: [3128, 25, 3128] });
const withAddons = networkPlan({
  bridge: 'petri0',
  subnet: '10.213.0.0/24',
  hostPorts: [3128],
  forwards: [
    { port: 6379, to: { host: '127.0.0.1', port: 41002 } },
    { port: 5432, to: { host: '127.0.0.1', port: 41001 } },
    { port: 3306, to: { host: '192.0.2.10', port: 3306 } },
  ],
});

test('the nftables ruleset matches the golden file', () => {
  golden('network-ruleset.nft', renderRuleset(plan));
});

test('add-on servers are reached at gateway ports, rewritten to where they listen', () => {
  golden('network-ruleset-addons.nft', renderRuleset(withAddons));
  assert.throws(
    () =>
      networkPlan({
        bridge: 'petri0',
        subnet: '10.213.0.0/24',
        hostPorts: [5432],
        forwards: withAddons.forwards,
      }),
    /gateway port 5432 is given twice/,
  );
  assert.throws(
    () =>
      networkPlan({
        bridge: 'petri0',
        subnet: '10.213.0.0/24',
        hostPorts: [],
        forwards: [{ port: 5432, to: { host: 'db.internal', port: 5432 } }],
      }),
    /not an IPv4 address/,
  );
});

test('bridge and namespace commands match the golden file', () => {
  const names = attachmentNames('/var/lib/petri/runtime', 'instance', 'web-1');
  const attach = attachCommands(plan, { kind: 'instance', id: 'web-1', ...names, address: '10.213.0.2' });
  const text = [
    ...bridgeCommands(plan).map((argv) => argv.join(' ')),
    ...attach.map((c) => `${c.argv.join(' ')} <<EOF\n${c.input}EOF`),
  ];
  golden('network-attach.txt', `${text.join('\n')}\n`);
});

test('the launch argv joins the namespace as root, before setpriv drops privileges', () => {
  const launch = sandboxLaunch({
    uid: 20001,
    gid: 20002,
    appDir: '/var/lib/petri/instances/web-1/app',
    env: { PORT: '5001' },
    command: ['node', 'server.js'],
    dieWithParent: false,
    netns: '/run/netns/petri-0123456789',
    limits: {},
    seccompArch: 'x86_64',
  });
  const shell = enterArgv(
    ENTER_AND_RECORD,
    ['/state/web-1.exit'],
    ['/cg/memory/petri/web-1/cgroup.procs'],
    launch.argv,
  );
  golden('instance-netns-argv.txt', `${['# /bin/sh', ...shell.map((a) => `  ${a}`)].join('\n')}\n`);
  assert.ok(!launch.bwrapArgs.includes('--unshare-net'), 'bwrap inherits the namespace');
  assert.ok(
    launch.bwrapArgs.join(' ').includes('--ro-bind /dev/null /etc/resolv.conf'),
    "no resolver to wait for: the host's is out of reach",
  );
  assert.throws(
    () => sandboxLaunch({ ...launchPlan(), netns: '/proc/1/ns/net' }),
    /under \/run\/netns/,
    'only named namespaces',
  );
});

function launchPlan() {
  return {
    uid: 1000,
    gid: 1000,
    appDir: '/a',
    env: {},
    command: ['true'],
    dieWithParent: true,
    limits: {},
    seccompArch: 'x86_64' as const,
  };
}

test('the table name derives from the bridge; ports are sorted and unique', () => {
  assert.equal(plan.table, 'petri_petri0');
  assert.deepEqual(plan.hostPorts, [25, 3128]);
  assert.equal(networkPlan({ bridge: 'pt-a1', subnet: '10.0.0.0/30', hostPorts: [] }).table, 'petri_pt_a1');
  assert.doesNotMatch(
    renderRuleset(networkPlan({ bridge: 'b', subnet: '10.0.0.0/30', hostPorts: [] })),
    /dport/,
  );
});

test('subnet arithmetic: the gateway is the first address', () => {
  const s = parseSubnet('10.213.7.0/24');
  assert.equal(s.gateway, '10.213.7.1');
  assert.equal(s.cidr, '10.213.7.0/24');
  assert.equal(allocateAddress(s, []), '10.213.7.2');
  assert.equal(allocateAddress(s, ['10.213.7.2', '10.213.7.4']), '10.213.7.3');
  const tiny = parseSubnet('192.168.1.4/30');
  assert.equal(tiny.gateway, '192.168.1.5');
  assert.equal(allocateAddress(tiny, []), '192.168.1.6');
  assert.throws(() => allocateAddress(tiny, ['192.168.1.6']), /no free address/, 'never the broadcast');
});

test('the default sandbox network holds far more than one tenant may run (a /16), and allocation stays fast', () => {
  const s = parseSubnet(loadConfig({}, {}).network.subnet);
  assert.equal(s.prefix, 16);
  assert.equal(s.gateway, '10.213.0.1');
  // One member once took all 253 addresses of the old /24: 1,000 sandboxes leave room.
  const taken = Array.from({ length: 1000 }, (_, i) => formatIPv4(s.network + 2 + i));
  assert.equal(allocateAddress(s, taken), '10.213.3.234');
  // Nearly full: 65,000 in use, the free ones at the very end, after a round-robin wrap.
  const nearlyFull = Array.from({ length: 65_000 }, (_, i) => formatIPv4(s.network + 2 + i));
  const started = performance.now();
  assert.equal(allocateAddress(s, nearlyFull, formatIPv4(s.broadcast - 1)), formatIPv4(s.network + 65_002));
  const ms = performance.now() - started;
  assert.ok(ms < 200, `allocation among 65,000 used addresses took ${ms.toFixed(1)} ms`);
  assert.throws(
    () =>
      allocateAddress(s, [
        ...nearlyFull,
        ...Array.from({ length: 533 }, (_, i) => formatIPv4(s.network + 65_002 + i)),
      ]),
    /65533 sandboxes/,
  );
});

test('refuses options that would break the host or the ruleset', () => {
  const ok = { bridge: 'petri0', subnet: '10.213.0.0/24', hostPorts: [3128] };
  assert.throws(() => networkPlan({ ...ok, bridge: 'a-very-long-bridge' }), /15 characters/);
  assert.throws(() => networkPlan({ ...ok, bridge: 'br0"; flush ruleset' }), /bridge/);
  assert.throws(() => networkPlan({ ...ok, subnet: '10.213.0.1/24' }), /host bits/);
  assert.throws(() => networkPlan({ ...ok, subnet: '10.213.0.0' }), /CIDR/);
  assert.throws(() => networkPlan({ ...ok, subnet: '10.0.0.0/8' }), /CIDR/);
  assert.throws(() => networkPlan({ ...ok, subnet: '10.213.0.256/24' }), /IPv4/);
  assert.throws(() => networkPlan({ ...ok, hostPorts: [0] }), /ports/);
  assert.throws(() => networkPlan({ ...ok, hostPorts: [1.5] }), /ports/);
  assert.throws(() => networkPlan({ ...ok, table: 'x; flush ruleset' }), /table/);
});

test('namespace and veth names are short, stable and apart per driver and kind', () => {
  const a = attachmentNames('/state/a', 'instance', 'x'.repeat(128));
  assert.deepEqual(a, attachmentNames('/state/a', 'instance', 'x'.repeat(128)));
  assert.ok(a.hostVeth.length <= 15, `interface names fit IFNAMSIZ: ${a.hostVeth}`);
  assert.match(a.netns, /^petri-[0-9a-f]{10}$/);
  assert.notEqual(
    attachmentNames('/state/b', 'instance', 'x').netns,
    attachmentNames('/state/a', 'instance', 'x').netns,
  );
  assert.notEqual(
    attachmentNames('/state/a', 'task', 'x').netns,
    attachmentNames('/state/a', 'instance', 'x').netns,
  );
});
