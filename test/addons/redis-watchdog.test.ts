// One app's endless Redis script once blocked every app's Redis for as long as it ran (apps
// may not SCRIPT KILL). Through the add-on engines as the control plane runs them: a managed
// Redis and its watchdog. A read-only loop is killed within seconds; a loop that wrote (which
// SCRIPT KILL refuses) ends with a restart of the server, without the script's writes.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Redis } from 'ioredis';
import { AddonEngines } from '../../src/addons/engines.js';
import type { AddonCredentials, AddonProvider, Endpoint } from '../../src/addons/provider.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { freePort } from '../../src/lib/ports.js';
import { until } from '../../src/lib/until.js';

/** An app's connection, as in redis.test.ts: no ready check, no retries. */
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
  redis.on('error', () => {});
  await redis.connect();
  return redis;
}

describe('redis script watchdog', () => {
  let root: string;
  let engines: AddonEngines;
  let provider: AddonProvider;
  let endpoint: Endpoint;
  let hog: AddonCredentials;
  let neighbour: AddonCredentials;
  const clients: Redis[] = [];
  const app = async (creds: AddonCredentials) => {
    const r = await connectApp(provider.url(creds, endpoint));
    clients.push(r);
    return r;
  };

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'petri-redis-watchdog-'));
    await chmod(root, 0o711);
    const { addons } = loadConfig({
      dataDir: root,
      addons: {
        postgres: { mode: 'off' },
        mysql: { mode: 'off' },
        redis: { mode: 'managed', port: await freePort() },
      },
    });
    engines = await AddonEngines.prepare(addons, root, createLogger('silent'));
    engines.start();
    provider = await engines.provider('redis');
    endpoint = engines.appEndpoint('redis');
    hog = await provider.provision('wd_hog');
    neighbour = await provider.provision('wd_neighbour');
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await engines?.stopServers();
    if (root) await rm(root, { recursive: true, force: true });
  });

  test("an app's endless read-only script is killed within seconds; its neighbour's Redis answers", async () => {
    const other = await app(neighbour);
    await other.set('wd_neighbour:k', 'v');
    const looping = (await app(hog)).eval('while true do end', 0).then(
      () => 'ended',
      (err: Error) => err.message,
    );
    // Behind the script the neighbour gets BUSY (or waits), until the watchdog kills it.
    const started = Date.now();
    const value = await until(() => other.get('wd_neighbour:k').catch(() => false), {
      timeout: 20_000,
      interval: 100,
      message: "the neighbour's Redis to answer again",
    });
    assert.equal(value, 'v');
    const blockedMs = Date.now() - started;
    assert.match(await looping, /Script killed/);
    assert.ok(blockedMs < 5000, `the neighbour waited ${blockedMs} ms`);
    console.log(`neighbour blocked ${blockedMs} ms by a read-only loop`);
  });

  test('a script that wrote and loops ends with a restart; its writes are gone, earlier data kept', async () => {
    const other = await app(neighbour);
    await other.set('wd_neighbour:kept', 'yes');
    const hogClient = await app(hog);
    const started = Date.now();
    void hogClient
      .eval("redis.call('set', KEYS[1], 'half'); while true do end", 1, 'wd_hog:written')
      .catch(() => {});
    // Fresh connections, as an app's pool makes them after the server went away.
    const value = await until(
      async () => {
        const c = await connectApp(provider.url(neighbour, endpoint)).catch(() => undefined);
        if (!c) return false;
        try {
          return (await c.get('wd_neighbour:kept')) ?? 'missing';
        } catch {
          return false;
        } finally {
          c.disconnect();
        }
      },
      { timeout: 40_000, interval: 200, message: 'the neighbour to get its data again' },
    );
    assert.equal(value, 'yes');
    const blockedMs = Date.now() - started;
    console.log(`neighbour without Redis for ${blockedMs} ms by a loop that wrote`);
    const admin = await connectApp(provider.url(hog, endpoint));
    clients.push(admin);
    assert.equal(await admin.get('wd_hog:written'), null, "the script's write was never logged");
  });
});
