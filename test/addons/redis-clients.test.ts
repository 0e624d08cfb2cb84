// The Redis clients and job queues apps use, with their default options, run inside a
// sandbox on a bridge of this test and reach a managed Redis through the gateway forward,
// as a deployed app does, with only what Petri gives an app (REDIS_URL, REDIS_KEY_PREFIX).
// Then what their connect-time commands (INFO, CLIENT SETNAME) may reveal, and how logins
// made by an older Petri get them. Real redis-server, bwrap, ip and nft; needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { AddonCredentials, AddonProvider, Endpoint } from '../../src/addons/provider.js';
import { ManagedRedis } from '../../src/addons/redis/managed.js';
import { createRedisProvider, loginRules } from '../../src/addons/redis/provider.js';
import { execOk } from '../../src/lib/exec.js';
import { freePort } from '../../src/lib/ports.js';
import { APP_GID, APP_UID, makeWorld, type World } from '../runtime/world.js';

const canRun = process.getuid?.() === 0;
const FIXTURE = fileURLToPath(new URL('./fixtures/redis-clients', import.meta.url));
const NODE_MODULES = fileURLToPath(new URL('../../node_modules', import.meta.url));
const tag = randomBytes(3).toString('hex');
const X = 1 + (randomBytes(1)[0]! % 250);
const BRIDGE = `prc${tag}`;
const GATEWAY = `10.217.${X}.1`;
const id = `rc_${tag}`;

let root: string;
let server: ManagedRedis;
let adminUrl: string;
let provider: AddonProvider;
let local: Endpoint;
let world: World | undefined;
let gatewayPort: number;
let appDir: string;
let a: AddonCredentials;
let b: AddonCredentials;
const open: Redis[] = [];

function connect(url: string): Redis {
  const r = new Redis(url, { maxRetriesPerRequest: 1 });
  r.on('error', () => {}); // commands report their own failures
  open.push(r);
  return r;
}

before(async () => {
  if (!canRun) return;
  root = await mkdtemp(path.join(tmpdir(), 'petri-redis-clients-'));
  await chmod(root, 0o711);
  server = new ManagedRedis({ dir: path.join(root, 'server'), user: 'petri-addons', port: await freePort() });
  adminUrl = await server.start();
  provider = createRedisProvider(adminUrl);
  local = await server.endpoint();
  a = await provider.provision(`${id}_a`);
  b = await provider.provision(`${id}_b`);
  await connect(provider.url(b, local)).set(`${b.database}secret`, 'of b');

  gatewayPort = await freePort();
  world = await makeWorld('redis-clients', {
    network: {
      bridge: BRIDGE,
      subnet: `10.217.${X}.0/24`,
      hostPorts: [],
      forwards: [{ port: gatewayPort, to: local }],
    },
  });
  await world.driver.networkDrops(); // the bridge and its forward exist from here on
  appDir = path.join(world.root, 'tasks', 'clients');
  await mkdir(path.dirname(appDir), { recursive: true });
  await cp(FIXTURE, appDir, { recursive: true });
  // Hard links: a second, not a copy of the whole tree; the sandbox's user only reads them.
  await execOk('cp', ['-al', NODE_MODULES, path.join(appDir, 'node_modules')]);
});

after(async () => {
  for (const r of open) r.disconnect();
  await world?.cleanup();
  await provider?.close();
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Runs `command` in a sandbox as app A and returns the JSON report it prints last. */
async function inSandbox(name: string, command: string[]): Promise<Record<string, unknown>> {
  let output = '';
  const result = await world!.driver.runTask({
    id: `${name}-${tag}`,
    app: 'clients',
    uid: APP_UID,
    gid: APP_GID,
    appDir,
    command,
    env: {
      REDIS_URL: provider.url(a, { host: GATEWAY, port: gatewayPort }),
      REDIS_KEY_PREFIX: a.database,
      OTHER_PREFIX: b.database,
      HOME: '/app',
    },
    limits: { memoryMiB: 512, cpus: 1, pids: 64 },
    timeoutMs: 60_000,
    onOutput: (chunk) => {
      output += chunk;
    },
  });
  assert.equal(result.exitCode, 0, output);
  const last = output.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

describe('Redis clients from a sandbox', { skip: !canRun && 'needs root' }, () => {
  test('ioredis, node-redis and BullMQ work with their default options, warn of nothing, and reach no other app', async () => {
    const report = await inSandbox('node', ['node', '/app/clients.cjs']);
    assert.deepEqual(report.warnings, [], 'no client printed a warning or an error');
    const refused = /NOPERM|no permissions/;
    const io = report.ioredis as { got: string; theirs: string };
    assert.equal(io.got, 'ioredis');
    assert.match(io.theirs, refused);
    const nr = report.nodeRedis as { got: string; theirs: string };
    assert.equal(nr.got, 'node-redis');
    assert.match(nr.theirs, refused);
    const bull = report.bullmq as { result: number; theirs: string; shared: string; failed?: string };
    assert.equal(bull.result, 42, bull.failed);
    assert.match(bull.theirs, refused, "a queue under another app's prefix");
    assert.match(bull.shared, refused, "BullMQ's default prefix, which every app would share");

    const admin = connect(adminUrl);
    assert.equal(await admin.get(`${b.database}secret`), 'of b');
    const strays = (await admin.keys('*')).filter(
      (k) => !k.startsWith(a.database) && !k.startsWith(b.database),
    );
    assert.deepEqual(strays, [], 'nothing was written outside the two prefixes');
    assert.ok((await admin.keys(`${a.database}bull:mail:*`)).length > 0, "the queue's keys are A's");
  });

  test("redis-py works with its defaults; RQ is refused, since its keys are 'rq:' for every app", async () => {
    const report = await inSandbox('python', ['/usr/bin/python3', '/app/clients.py']);
    const py = report['redis-py'] as { got: string; version: string; named: boolean; theirs: string };
    assert.equal(py.got, 'redis-py');
    assert.match(py.version, /^\d+\.\d+\.\d+$/);
    assert.equal(py.named, true, 'CLIENT SETNAME and GETNAME');
    assert.match(py.theirs, /NoPermissionError/);
    const rq = report.rq as { failed?: string; enqueued?: string };
    assert.match(rq.failed ?? `enqueued ${rq.enqueued}`, /NoPermissionError.*(rq:|keys)/);
    assert.deepEqual(report.warnings, []);
  });
});

describe('what the connect-time commands reveal', { skip: !canRun && 'needs root' }, () => {
  test("INFO tells an app the server's totals, never another app's keys, user, addresses or names", async () => {
    const theirs = connect(provider.url(b, local));
    await theirs.client('SETNAME', 'b-connection-name');
    await theirs.subscribe(`${b.database}events`);
    const mine = connect(provider.url(a, local));
    const info = String(await mine.info('everything'));
    assert.match(info, /redis_version:/);
    assert.match(info, /^db0:keys=\d+/m, 'the keyspace section: counts only');
    for (const secret of [b.database, b.user, 'b-connection-name', 'secret', 'events', a.user]) {
      assert.ok(!info.includes(secret), `INFO names '${secret}'`);
    }
    const refused: string[] = [];
    for (const command of [
      ['CLIENT', 'LIST'],
      ['CLIENT', 'KILL', 'USER', b.user],
      ['CLIENT', 'PAUSE', '100'],
      ['MONITOR'],
      ['CONFIG', 'GET', 'maxmemory'],
      ['KEYS', '*'],
      ['FLUSHALL'],
      ['SCRIPT', 'FLUSH'],
      ['PUBSUB', 'CHANNELS'],
    ]) {
      const [name, ...args] = command;
      await mine.call(name!, ...args).then(
        () => refused.push(`${command.join(' ')} ran`),
        (err: Error) => assert.match(err.message, /NOPERM/, command.join(' ')),
      );
    }
    assert.deepEqual(refused, []);
  });

  test('logins an older Petri made get INFO when the provider starts; users it did not make stay as they were', async () => {
    const admin = connect(adminUrl);
    const old = `${id}_old`;
    // The rules of before: INFO refused. The password is only on the server, as a hash.
    await admin.call('ACL', 'SETUSER', `${old}_a`, ...loginRules(old, 'old-password'), '-info');
    await admin.call('ACL', 'SETUSER', `${id}_x_a`, 'on', '>x', '~elsewhere:*', '+get');
    const dryInfo = async (user: string) => admin.call('ACL', 'DRYRUN', user, 'INFO');
    assert.notEqual(await dryInfo(`${old}_a`), 'OK');
    const fresh = createRedisProvider(adminUrl);
    try {
      assert.equal(await fresh.secureServer(), undefined);
    } finally {
      await fresh.close();
    }
    assert.equal(await dryInfo(`${old}_a`), 'OK');
    assert.notEqual(await dryInfo(`${id}_x_a`), 'OK', 'a user Petri did not make is not changed');
    const login = connect(`redis://${old}_a:old-password@127.0.0.1:${local.port}`);
    assert.match(String(await login.info('server')), /redis_version/);
    await assert.rejects(login.get(`${b.database}secret`), /NOPERM/);
    // Saved in the aclfile, which the server reads back at a restart.
    await admin.call('ACL', 'LOAD');
    assert.equal(await dryInfo(`${old}_a`), 'OK');
  });
});
