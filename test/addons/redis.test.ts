// The Redis provider keeps the add-on contract against the machine's Redis (external: default
// user, nothing on disk; this file only touches keys and users named after its random run id)
// and against a ManagedRedis of its own; then what is particular to Redis: the ACL fence
// around each key prefix, failures, persistence of a managed server, and the dump format.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { type AddonCredentials, type Endpoint, EngineUnavailableError } from '../../src/addons/provider.js';
import { ManagedRedis } from '../../src/addons/redis/managed.js';
import { createRedisProvider } from '../../src/addons/redis/provider.js';
import { exec, execOk } from '../../src/lib/exec.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';
import { type AppClient, type AppSession, providerContract } from './contract.js';

const EXTERNAL_URL = 'redis://127.0.0.1:6379';
const EXTERNAL: Endpoint = { host: '127.0.0.1', port: 6379 };
const SERVER_USER = 'petri-addons';
const runId = () => `ct_${randomBytes(3).toString('hex')}`;

/** The sample's values; the binary ones hold CR LF and bytes that are not UTF-8. */
const BINARY_VALUE = Buffer.from([0x00, 0xff, 0x0d, 0x0a, 0x80, 0x7f, 0x24, 0x2a]);
const BINARY_KEY_SUFFIX = Buffer.from([0x62, 0x69, 0x6e, 0xff, 0x00, 0x0d, 0x0a]);
const SAMPLE_KEYS = ['str', 'counter', 'bin', 'hash', 'list', 'set', 'zset', 'stream', 'ttl'];

/** An app's connection: fails fast and never reconnects. (Apps' clients with their default
 * options are in redis-clients.test.ts.) */
async function connectApp(url: string): Promise<Redis> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    enableReadyCheck: false,
    disableClientInfo: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let lastError: unknown;
  redis.on('error', (err: unknown) => {
    lastError = err;
  });
  await redis.connect().catch((err: unknown) => {
    throw lastError ?? err;
  });
  // A failed AUTH leaves a connection as the default user where that one needs no password.
  const expected = decodeURIComponent(new URL(url).username);
  const who = await redis.call('ACL', 'WHOAMI').catch(() => undefined);
  if (who !== expected) {
    redis.disconnect();
    throw new Error(`connected as ${String(who)}, not ${expected}`);
  }
  return redis;
}

function connectAdmin(url: string): Redis {
  const redis = new Redis(url, { protocol: 2, maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // commands report their own failures
  return redis;
}

/** The key prefix of a login: its user name without the slot suffix, then ':' (as the
 * provider makes them: user `<resource>_a` owns keys `<resource>:*`). */
function prefixOf(user: string): string {
  return `${user.replace(/_[ab]$/, '')}:`;
}

interface ClientOptions {
  adminUrl: string;
  /** False where the server's default user needs no password (then anyone is admin). */
  probeDefaultUser: boolean;
}

function redisApps(opts: ClientOptions): AppClient {
  return { connect: async (url) => new RedisAppSession(await connectApp(url), url, opts) };
}

class RedisAppSession implements AppSession {
  private readonly user: string;
  private readonly password: string;
  private readonly prefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly url: string,
    private readonly opts: ClientOptions,
  ) {
    const parsed = new URL(url);
    this.user = decodeURIComponent(parsed.username);
    this.password = decodeURIComponent(parsed.password);
    this.prefix = prefixOf(this.user);
  }

  private k(name: string): string {
    return `${this.prefix}${name}`;
  }

  private binaryKey(): Buffer {
    return Buffer.concat([Buffer.from(this.prefix), BINARY_KEY_SUFFIX]);
  }

  async writeSample(): Promise<void> {
    const k = (name: string) => this.k(name);
    const results = await this.redis
      .multi()
      .set(k('str'), 'héllo wörld ✓')
      .set(k('counter'), '40')
      .incrby(k('counter'), 2)
      .set(k('bin'), BINARY_VALUE)
      .set(this.binaryKey(), 'binary name')
      .hset(k('hash'), { name: 'ada', born: '1815' })
      .del(k('list'))
      .rpush(k('list'), 'a', 'b', 'c', 'a')
      .sadd(k('set'), 'x', 'y', 'z')
      .zadd(k('zset'), '1', 'one', '2.5', 'two', '-3', 'minus three')
      .del(k('stream'))
      .xadd(k('stream'), '1-1', 'event', 'signup')
      .xadd(k('stream'), '2-0', 'event', 'login')
      .set(k('ttl'), 'short-lived', 'PX', 600_000)
      .exec();
    for (const [err] of results ?? []) if (err) throw err;
  }

  async readSample(): Promise<unknown> {
    const r = this.redis;
    const k = (name: string) => this.k(name);
    if ((await r.exists(...SAMPLE_KEYS.map(k))) === 0) throw new Error(`no sample under ${this.prefix}`);
    const hash = await r.hgetall(k('hash'));
    return {
      str: await r.get(k('str')),
      strTtl: await r.pttl(k('str')),
      counter: await r.get(k('counter')),
      bin: (await r.getBuffer(k('bin')))?.toString('hex') ?? null,
      binaryName: await r.get(this.binaryKey()),
      hash: Object.fromEntries(Object.entries(hash).sort()),
      list: await r.lrange(k('list'), 0, -1),
      set: (await r.smembers(k('set'))).sort(),
      zset: await r.zrange(k('zset'), '0', '-1', 'WITHSCORES'),
      stream: await r.xrange(k('stream'), '-', '+'),
      ttl: { value: await r.get(k('ttl')), hasTtl: (await r.pttl(k('ttl'))) > 0 },
      types: await Promise.all(SAMPLE_KEYS.map((name) => r.type(k(name)))),
    };
  }

  async mutate(): Promise<void> {
    await this.redis.set(this.k('str'), 'changed');
    await this.redis.hset(this.k('hash'), 'born', '1816');
    await this.redis.del(this.k('list'));
    await this.redis.set(this.k('added'), 'new');
  }

  async trespass(other: AddonCredentials, at: Endpoint): Promise<string[]> {
    const r = this.redis;
    const theirs = (name: string) => `${other.database}${name}`;
    const own = (name: string) => this.k(name);
    await r.rpush(own('sortme'), '1', '2');
    const attempts: [string, () => Promise<unknown>][] = [
      ['GET their key', () => r.get(theirs('str'))],
      ['SET their key', () => r.set(theirs('planted'), 'x')],
      ['DEL their key', () => r.del(theirs('str'))],
      ['EXISTS their key', () => r.exists(theirs('str'))],
      ['TYPE their key', () => r.type(theirs('str'))],
      ['DUMP their key', () => r.dump(theirs('str'))],
      ['OBJECT ENCODING their key', () => r.call('OBJECT', 'ENCODING', theirs('str'))],
      ['MEMORY USAGE their key', () => r.call('MEMORY', 'USAGE', theirs('str'))],
      ['RENAME their key to ours', () => r.rename(theirs('str'), own('stolen'))],
      ['LMOVE their list to ours', () => r.lmove(theirs('list'), own('stolen'), 'LEFT', 'LEFT')],
      ['KEYS *', () => r.keys('*')],
      ['SCAN 0', () => r.scan(0)],
      ['RANDOMKEY', () => r.randomkey()],
      ['DBSIZE', () => r.dbsize()],
      ['SORT BY their keys', () => r.sort(own('sortme'), 'BY', `${other.database}*`)],
      ['SORT GET their keys', () => r.sort(own('sortme'), 'GET', `${other.database}*`)],
      ['SORT_RO GET their keys', () => r.sort_ro(own('sortme'), 'GET', `${other.database}*`)],
      ['EVAL with their key declared', () => r.eval("return redis.call('GET', KEYS[1])", 1, theirs('str'))],
      ['EVAL with their key undeclared', () => r.eval("return redis.call('GET', ARGV[1])", 0, theirs('str'))],
      ['EVAL calling KEYS *', () => r.eval("return redis.call('KEYS', '*')", 0)],
      ['EVAL calling SELECT', () => r.eval("redis.call('SELECT', 1) return 1", 0)],
      ['PUBLISH to their channel', () => r.publish(theirs('events'), 'hi')],
      ['SUBSCRIBE to their channel', () => this.subscribe('SUBSCRIBE', theirs('events'))],
      ['PSUBSCRIBE to their pattern', () => this.subscribe('PSUBSCRIBE', `${other.database}*`)],
      ['PSUBSCRIBE *', () => this.subscribe('PSUBSCRIBE', '*')],
      ['PUBSUB CHANNELS', () => r.pubsub('CHANNELS')],
      ['CLIENT TRACKING BCAST on their prefix', () => this.trackPrefix(other.database)],
      ['SELECT 1', () => r.select(1)],
      ['COPY our key into db 1', () => r.copy(own('sortme'), own('copied'), 'DB', 1)],
      ['AUTH as their user with our password', () => r.call('AUTH', other.user, this.password)],
      [
        'log in as their user with our password',
        () => this.tryLogin(`redis://${other.user}:${this.password}@${at.host}:${at.port}`),
      ],
      [
        'log in as their user without a password',
        () => this.tryLogin(`redis://${other.user}@${at.host}:${at.port}`),
      ],
    ];
    return worked(attempts);
  }

  async escalate(): Promise<string[]> {
    const r = this.redis;
    const attempts: [string, () => Promise<unknown>][] = [
      ['CONFIG GET *', () => r.config('GET', '*')],
      ['ACL LIST', () => r.call('ACL', 'LIST')],
      ['ACL USERS', () => r.call('ACL', 'USERS')],
      ['ACL GETUSER default', () => r.call('ACL', 'GETUSER', 'default')],
      ['ACL LOG', () => r.call('ACL', 'LOG')],
      ['CLIENT LIST', () => r.call('CLIENT', 'LIST')],
      ['MEMORY STATS', () => r.call('MEMORY', 'STATS')],
      ['SLOWLOG GET', () => r.call('SLOWLOG', 'GET')],
      ['LATENCY LATEST', () => r.call('LATENCY', 'LATEST')],
      ['LASTSAVE', () => r.lastsave()],
      ['ROLE', () => r.role()],
      ['FUNCTION LIST', () => r.call('FUNCTION', 'LIST')],
      ['PUBSUB NUMPAT', () => r.call('PUBSUB', 'NUMPAT')],
      ['EVAL calling CONFIG GET', () => r.eval("return redis.call('CONFIG', 'GET', '*')", 0)],
      ['EVAL calling ACL LIST', () => r.eval("return redis.call('ACL', 'LIST')", 0)],
      ['AUTH petri_admin with our password', () => r.call('AUTH', 'petri_admin', this.password)],
    ];
    if (this.opts.probeDefaultUser) {
      attempts.push(
        ['AUTH default', () => r.call('AUTH', 'default', this.password)],
        ['HELLO 3 AUTH default', () => r.call('HELLO', '3', 'AUTH', 'default', this.password)],
      );
    }
    return [...(await worked(attempts)), ...(await this.dryRuns())];
  }

  /** Commands that would harm a shared server if the fence failed: the server's admin
   * asks whether this login may run them (ACL DRYRUN) instead of running them. */
  private async dryRuns(): Promise<string[]> {
    const own = this.k('str');
    const commands = [
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['SWAPDB', '0', '1'],
      ['MOVE', own, '1'],
      ['CONFIG', 'SET', 'dir', '/tmp'],
      ['CONFIG', 'REWRITE'],
      ['CONFIG', 'RESETSTAT'],
      ['ACL', 'SETUSER', 'evil', 'on', '>x', '~*', '+@all'],
      ['ACL', 'DELUSER', 'petri_admin'],
      ['ACL', 'SAVE'],
      ['ACL', 'LOAD'],
      ['DEBUG', 'SLEEP', '0'],
      ['SHUTDOWN', 'NOSAVE'],
      ['MODULE', 'LOAD', '/tmp/evil.so'],
      ['MONITOR'],
      ['CLIENT', 'KILL', 'USER', 'petri_admin'],
      ['CLIENT', 'PAUSE', '1000'],
      ['CLIENT', 'NO-EVICT', 'on'],
      ['CLIENT', 'UNBLOCK', '1'],
      ['SCRIPT', 'FLUSH'],
      ['SCRIPT', 'KILL'],
      ['SCRIPT', 'DEBUG', 'SYNC'],
      ['FUNCTION', 'LOAD', "#!lua name=evil\nredis.register_function('f', function() return 1 end)"],
      ['FUNCTION', 'FLUSH'],
      ['FUNCTION', 'DELETE', 'evil'],
      ['REPLICAOF', '127.0.0.1', '1'],
      ['FAILOVER'],
      ['SAVE'],
      ['BGSAVE'],
      ['BGREWRITEAOF'],
      ['RESTORE', own, '0', 'payload', 'REPLACE'],
      ['MIGRATE', '127.0.0.1', '1', own, '0', '1000'],
      ['SYNC'],
      ['SLOWLOG', 'RESET'],
      ['LATENCY', 'RESET'],
    ];
    const admin = connectAdmin(this.opts.adminUrl);
    try {
      const allowed: string[] = [];
      for (const [command, ...args] of commands) {
        const reply = await admin.call('ACL', 'DRYRUN', this.user, command ?? '', ...args);
        if (reply === 'OK') allowed.push(`${command} ${args.join(' ')}`.trim());
      }
      return allowed;
    } finally {
      admin.disconnect();
    }
  }

  private async subscribe(command: 'SUBSCRIBE' | 'PSUBSCRIBE', channel: string): Promise<void> {
    const s = await connectApp(this.url);
    try {
      await (command === 'SUBSCRIBE' ? s.subscribe(channel) : s.psubscribe(channel));
    } finally {
      s.disconnect();
    }
  }

  private async trackPrefix(prefix: string): Promise<void> {
    const s = await connectApp(this.url);
    try {
      await s.call('CLIENT', 'TRACKING', 'on', 'BCAST', 'PREFIX', prefix);
    } finally {
      s.disconnect();
    }
  }

  private async tryLogin(url: string): Promise<void> {
    (await connectApp(url)).disconnect();
  }

  async ping(): Promise<void> {
    await this.redis.ping();
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** Runs each attempt; returns the names of those that did not fail. */
async function worked(attempts: [string, () => Promise<unknown>][]): Promise<string[]> {
  const succeeded: string[] = [];
  for (const [name, attempt] of attempts) {
    try {
      await attempt();
      succeeded.push(name);
    } catch {
      // refused: the pass
    }
  }
  return succeeded;
}

async function externalDefaultUserIsOpen(): Promise<boolean> {
  const admin = connectAdmin(EXTERNAL_URL);
  try {
    const info = await admin.call('ACL', 'GETUSER', 'default');
    const flags = Array.isArray(info) ? info[info.indexOf('flags') + 1] : undefined;
    return Array.isArray(flags) && flags.includes('on') && flags.includes('nopass');
  } finally {
    admin.disconnect();
  }
}

/** A temp dir the server's user can pass through (mkdtemp makes it 0700). */
async function serverRoot(): Promise<string> {
  const root = await mkdtemp(path.join(tmpdir(), 'petri-redis-'));
  await chmod(root, 0o711);
  return root;
}

async function startManaged(root: string): Promise<{ server: ManagedRedis; url: string }> {
  const server = new ManagedRedis({
    dir: path.join(root, 'server'),
    user: SERVER_USER,
    port: await freePort(),
  });
  return { server, url: await server.start() };
}

const defaultUserOpen = await externalDefaultUserIsOpen();

providerContract({
  name: 'redis external',
  prefix: runId(),
  setUp: async () => ({ provider: createRedisProvider(EXTERNAL_URL), endpoint: EXTERNAL }),
  client: redisApps({ adminUrl: EXTERNAL_URL, probeDefaultUser: !defaultUserOpen }),
});

let managed: { root: string; server: ManagedRedis; url: string } | undefined;
const managedUrl = () => managed?.url ?? '';
providerContract({
  name: 'redis managed',
  prefix: runId(),
  setUp: async () => {
    const root = await serverRoot();
    managed = { root, ...(await startManaged(root)) };
    const { port } = await managed.server.endpoint();
    assert.notEqual(port, 6379);
    return { provider: createRedisProvider(managed.url), endpoint: { host: '127.0.0.1', port } };
  },
  tearDown: async () => {
    await managed?.server.stop();
    if (managed) await rm(managed.root, { recursive: true, force: true });
  },
  client: {
    connect: (url) => redisApps({ adminUrl: managedUrl(), probeDefaultUser: true }).connect(url),
  },
});

describe('redis provider on the external server', () => {
  const id = runId();
  const provider = createRedisProvider(EXTERNAL_URL);
  const admin = connectAdmin(EXTERNAL_URL);
  const made: string[] = [];
  const resource = (n: string) => {
    made.push(`${id}_${n}`);
    return `${id}_${n}`;
  };
  after(async () => {
    for (const r of made) {
      await provider.deprovision(r);
      await admin.call('ACL', 'DELUSER', `${r}_a`, `${r}_b`);
    }
    await provider.close();
    admin.disconnect();
  });

  test('the default user of this server', (t) => {
    // Not the provider's to change: an external server whose default user needs no password
    // lets any client that reaches it do anything, whatever the add-ons' users may do.
    if (defaultUserOpen)
      t.diagnostic('external redis: the default user needs no password; apps reaching it are admin');
  });

  test('an add-on login can use the ordinary commands on its own keys and channels', async () => {
    const creds = await provider.provision(resource('ordinary'));
    const url = provider.url(creds, EXTERNAL);
    const r = await connectApp(url);
    const k = (name: string) => `${creds.database}${name}`;
    try {
      assert.equal(await r.ping(), 'PONG');
      assert.equal(await r.echo('hi'), 'hi');
      await r.call('HELLO', '2', 'AUTH', creds.user, creds.password, 'SETNAME', 'app');
      assert.equal(await r.call('CLIENT', 'GETNAME'), 'app');
      assert.equal(typeof (await r.call('CLIENT', 'ID')), 'number');
      await r.call('CLIENT', 'INFO');
      await r.set(k('n'), '1');
      await r.watch(k('n'));
      assert.deepEqual(await r.multi().incr(k('n')).expire(k('n'), 100).exec(), [
        [null, 2],
        [null, 1],
      ]);
      assert.ok((await r.ttl(k('n'))) > 0);
      await r.persist(k('n'));
      await r.rename(k('n'), k('m'));
      assert.equal(await r.call('OBJECT', 'ENCODING', k('m')), 'int');
      assert.ok(Number(await r.call('MEMORY', 'USAGE', k('m'))) > 0);
      assert.ok(Buffer.isBuffer(await r.dumpBuffer(k('m'))));
      await r.rpush(k('l'), '3', '1', '2');
      assert.deepEqual(await r.sort(k('l')), ['1', '2', '3']);
      assert.equal(await r.eval("return redis.call('GET', KEYS[1])", 1, k('m')), '2');
      const sha = String(await r.script('LOAD', "return redis.call('LLEN', KEYS[1])"));
      assert.equal(await r.evalsha(sha, 1, k('l')), 3);
      await r.pfadd(k('hll'), 'a', 'b');
      await r.geoadd(k('geo'), 13.4, 52.5, 'berlin');
      await r.setbit(k('bits'), 7, 1);
      assert.deepEqual(await r.blpop(k('l'), 0.1), [k('l'), '3']);
      await r.xadd(k('s'), '*', 'f', 'v');
      await r.xgroup('CREATE', k('s'), 'g', '0');
      assert.equal((await r.xreadgroup('GROUP', 'g', 'c', 'COUNT', 1, 'STREAMS', k('s'), '>'))?.length, 1);
      assert.equal(await r.unlink(k('bits')), 1);
      assert.ok(await r.time());
      assert.ok(Number(await r.command('COUNT')) > 100);
      await pubSubRoundTrip(url, k('events'));
    } finally {
      r.disconnect();
    }
  });

  test('provisioning stops at a user it did not make, and leaves nothing behind', async () => {
    const r = resource('taken');
    await admin.call('ACL', 'SETUSER', `${r}_a`, 'off', '~elsewhere:*');
    await assert.rejects(provider.provision(r), /already exists/);
    const taken = await admin.call('ACL', 'GETUSER', `${r}_a`);
    assert.ok(JSON.stringify(taken).includes('~elsewhere:*'), 'the existing user is untouched');
    assert.equal(await admin.call('ACL', 'GETUSER', `${r}_b`), null);
    assert.deepEqual(await admin.keys(`${r}:*`), []);
  });

  test('shellCommand runs redis-cli with the URL from the environment', async () => {
    const creds = await provider.provision(resource('shell'));
    const argv = provider.shellCommand('REDIS_URL');
    const [file, ...args] = argv;
    const result = await exec(file ?? '', args, {
      env: { ...process.env, REDIS_URL: provider.url(creds, EXTERNAL) },
      input: `PING\nSET ${creds.database}k v\nGET ${creds.database}k\nKEYS *\n`,
      timeoutMs: 10_000,
    });
    assert.match(result.stdout, /PONG/);
    assert.match(result.stdout, /OK\nv\n/);
    assert.match(result.stdout + result.stderr, /NOPERM/, 'KEYS * is refused');
    assert.throws(() => provider.shellCommand('X; rm -rf /'), /must match/);
  });
});

describe('redis provider when the server is not there', () => {
  test('a port where nothing listens fails fast with EngineUnavailableError', async () => {
    const port = await freePort();
    const provider = createRedisProvider(`redis://127.0.0.1:${port}`);
    try {
      const started = Date.now();
      for (const call of [() => provider.ping(), () => provider.provision('ct_nowhere')]) {
        await assert.rejects(call(), (err: unknown) => {
          assert.ok(err instanceof EngineUnavailableError, String(err));
          assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
          assert.match(err.message, /ECONNREFUSED/);
          return true;
        });
      }
      assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
    } finally {
      await provider.close();
    }
  });

  test('a server that accepts but never answers fails within seconds', async () => {
    const silent = net.createServer(() => {});
    const sockets = new Set<net.Socket>();
    silent.on('connection', (s) => sockets.add(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    const provider = createRedisProvider(`redis://127.0.0.1:${port}`);
    try {
      const started = Date.now();
      await assert.rejects(provider.ping(), EngineUnavailableError);
      assert.ok(Date.now() - started < 6000, `took ${Date.now() - started} ms`);
    } finally {
      await provider.close();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

describe('managed redis server', () => {
  const id = runId();
  let root: string;
  let server: ManagedRedis;
  let url: string;
  let provider: ReturnType<typeof createRedisProvider>;
  let endpoint: Endpoint;
  const apps: Redis[] = [];
  const app = async (creds: AddonCredentials) => {
    const r = await connectApp(provider.url(creds, endpoint));
    apps.push(r);
    return r;
  };

  before(async () => {
    root = await serverRoot();
    ({ server, url } = await startManaged(root));
    provider = createRedisProvider(url);
    endpoint = await server.endpoint();
  });
  after(async () => {
    for (const r of apps) r.disconnect();
    try {
      await provider?.close();
      await server?.stop();
      assert.equal(await server?.running(), false);
    } finally {
      if (root) await rm(root, { recursive: true, force: true });
    }
  });

  test('its files are private and nobody connects without a login', async () => {
    const dir = path.join(root, 'server');
    const mode = async (p: string) => ((await stat(p)).mode & 0o777).toString(8);
    assert.equal(await mode(path.join(dir, 'state.json')), '600');
    assert.equal(await mode(path.join(dir, 'redis.conf')), '600');
    assert.equal(await mode(path.join(dir, 'data')), '700');
    assert.equal(
      (await stat(path.join(dir, 'data'))).uid,
      Number((await execOk('id', ['-u', SERVER_USER])).stdout),
    );
    // RESP2: no HELLO on connect, so the connection opens and its first command is refused.
    const anonymous = new Redis({
      port: endpoint.port,
      protocol: 2,
      lazyConnect: true,
      enableReadyCheck: false,
      retryStrategy: () => null,
    });
    anonymous.on('error', () => {});
    try {
      await anonymous.connect();
      await assert.rejects(anonymous.get('x'), /NOAUTH/);
      await assert.rejects(anonymous.call('AUTH', 'default', ''), /WRONGPASS/);
    } finally {
      anonymous.disconnect();
    }
  });

  test('an add-on login cannot shut the server down', async () => {
    const r = await app(await provider.provision(`${id}_shutdown`));
    await assert.rejects(r.call('SHUTDOWN', 'NOSAVE'), /NOPERM/);
    await assert.rejects(r.flushall(), /NOPERM/);
    assert.equal(await server.running(), true);
  });

  test('a provisioning that fails half way leaves nothing behind', async () => {
    // ACL SAVE cannot write the aclfile while the data directory is read-only to the server.
    const data = path.join(root, 'server', 'data');
    const r = `${id}_halfway`;
    await chmod(data, 0o500);
    try {
      await assert.rejects(provider.provision(r), /ACL/);
    } finally {
      await chmod(data, 0o700);
    }
    const admin = connectAdmin(url);
    try {
      assert.equal(await admin.call('ACL', 'GETUSER', `${r}_a`), null);
      assert.deepEqual(await admin.keys(`${r}:*`), []);
    } finally {
      admin.disconnect();
    }
    // ...and the same name provisions afresh once the cause is gone.
    await provider.provision(r);
  });

  test('data and users survive kill -9; another object adopts the running server', async () => {
    const r = `${id}_persist`;
    const creds = await provider.provision(r);
    const later = await provider.createLogin(r, 'b');
    const session = await redisApps({ adminUrl: url, probeDefaultUser: true }).connect(
      provider.url(creds, endpoint),
    );
    await session.writeSample();
    const sample = await session.readSample();
    await session.close();
    // Redis writes the append-only file before it replies; the file is where a restart looks.
    const aofDir = path.join(root, 'server', 'data', 'appendonlydir');
    await until(
      async () => {
        for (const f of await readdir(aofDir)) {
          if ((await readFile(path.join(aofDir, f))).includes(`${r}:ttl`)) return true;
        }
        return false;
      },
      { timeout: 5000, message: 'the sample in the append-only file' },
    );

    const twin = new ManagedRedis({ dir: path.join(root, 'server'), user: SERVER_USER });
    assert.equal(await twin.start(), url);
    const [pid] = await server.pids();
    assert.ok(pid);
    assert.deepEqual(await twin.pids(), [pid]);

    process.kill(pid, 'SIGKILL');
    await until(async () => !(await server.running()), { timeout: 5000, message: 'redis to die' });
    await assert.rejects(provider.ping(), EngineUnavailableError);
    assert.equal(await server.start(), url);
    assert.notEqual((await server.pids())[0], pid);

    const again = await redisApps({ adminUrl: url, probeDefaultUser: true }).connect(
      provider.url(creds, endpoint),
    );
    try {
      assert.deepEqual(await again.readSample(), sample);
    } finally {
      await again.close();
    }
    (await app(later)).disconnect();
  });

  test('a backup loads with redis-cli --pipe', async () => {
    const r = `${id}_pipe`;
    const creds = await provider.provision(r);
    const session = await redisApps({ adminUrl: url, probeDefaultUser: true }).connect(
      provider.url(creds, endpoint),
    );
    await session.writeSample();
    await session.close();
    const admin = connectAdmin(url);
    try {
      const keys = async () => (await admin.keysBuffer(`${r}:*`)).map((k) => k.toString('hex')).sort();
      const before = await keys();
      const file = path.join(root, 'pipe.dump');
      await provider.backup(r, file);
      await provider.deprovision(r);
      assert.deepEqual(await keys(), []);
      const { password } = new URL(url);
      const loaded = await exec(
        '/bin/sh',
        [
          '-c',
          'exec redis-cli -h 127.0.0.1 -p "$1" --user petri_admin --pipe < "$2"',
          'sh',
          String(endpoint.port),
          file,
        ],
        { env: { ...process.env, REDISCLI_AUTH: password }, timeoutMs: 10_000 },
      );
      assert.equal(loaded.code, 0, loaded.stdout + loaded.stderr);
      assert.match(loaded.stdout, /errors: 0, replies: \d+/);
      assert.deepEqual(await keys(), before);
      assert.equal(await admin.get(`${r}:str`), 'héllo wörld ✓');
      assert.ok((await admin.pttl(`${r}:ttl`)) > 0, 'the TTL came back');
    } finally {
      await provider.deprovision(r);
      admin.disconnect();
    }
  });

  test('backup and restore carry many keys and a value larger than a read chunk', async () => {
    const from = `${id}_big_from`;
    const to = `${id}_big_to`;
    await provider.provision(from);
    await provider.provision(to);
    const admin = connectAdmin(url);
    try {
      const big = randomBytes(3 * 1024 * 1024 + 7);
      const pipeline = admin.pipeline();
      for (let i = 0; i < 3000; i++)
        pipeline.hset(`${from}:h${i}`, 'i', String(i), 'pad', 'x'.repeat(i % 97));
      pipeline.set(`${from}:big`, big);
      await pipeline.exec();
      await admin.set(`${to}:stale`, 'removed by restore');
      const file = path.join(root, 'big.dump');
      await provider.backup(from, file);
      await provider.restore(to, file);
      assert.equal((await admin.keys(`${to}:*`)).length, 3001);
      assert.ok((await admin.getBuffer(`${to}:big`))?.equals(big), 'the large value is intact');
      assert.deepEqual(await admin.hgetall(`${to}:h2999`), { i: '2999', pad: 'x'.repeat(2999 % 97) });
      assert.equal(await admin.exists(`${to}:stale`), 0);
      assert.ok((await provider.usage(to)).bytes > big.length);
    } finally {
      await provider.deprovision(from);
      await provider.deprovision(to);
      admin.disconnect();
    }
  });

  test('restore refuses a file that is not a backup, before deleting anything', async () => {
    const r = `${id}_refuse`;
    const creds = await provider.provision(r);
    const session = await redisApps({ adminUrl: url, probeDefaultUser: true }).connect(
      provider.url(creds, endpoint),
    );
    try {
      await session.writeSample();
      const sample = await session.readSample();
      const file = path.join(root, 'forged.dump');
      await provider.backup(r, file);
      // A forged line after a genuine header: the admin connection must not run it.
      await appendFile(file, '*1\r\n$8\r\nFLUSHALL\r\n');
      await assert.rejects(provider.restore(r, file), /not a Petri redis backup/);
      await writeFile(file, 'SET x y\r\n');
      await assert.rejects(provider.restore(r, file), /not a Petri redis backup/);
      assert.deepEqual(await session.readSample(), sample);
    } finally {
      await session.close();
    }
  });
});

async function pubSubRoundTrip(url: string, channel: string): Promise<void> {
  const subscriber = await connectApp(url);
  const publisher = await connectApp(url);
  try {
    const got = new Promise<string>((resolve) =>
      subscriber.on('message', (_c: string, m: string) => resolve(m)),
    );
    await subscriber.subscribe(channel);
    await publisher.publish(channel, 'hello');
    assert.equal(await got, 'hello');
  } finally {
    subscriber.disconnect();
    publisher.disconnect();
  }
}
