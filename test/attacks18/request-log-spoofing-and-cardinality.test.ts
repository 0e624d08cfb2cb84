// Attacks on the metrics collector's request log (issue 18), found by an attacker, now refused. It takes any UDP datagram on its
// loopback port with `petri1 HOST STATUS Ta BYTES` in it:
// 1. A host that names no app still gets its own prom-client series (appRequests by class and
//    the latency histogram) for up to an hour (forgetGoneApps runs hourly). The HOST is the
//    visitor's Host header (router/config.ts: txn.host = req.hdr(host),lower), so any outsider
//    sending requests with Host: <random>.<domain> to the router makes series without bound:
//    /metrics grows by some 20 lines per request, and so does the control plane's memory.
// 2. Nothing says a datagram came from HAProxy: any local process (the port is in the store's
//    metric state and found by scanning loopback UDP) can add 5xx to another app's counts,
//    which feed petri metrics, the 5xx alert (mailed to the owner) and Prometheus.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { until } from '../../src/lib/until.js';
import type { MetricsCollector } from '../../src/metrics/collector.js';
import { openStore, type Store } from '../../src/store/db.js';
import { testCollector } from '../metrics/test-collector.js';

let dir: string;
let db: Store;
let collector: MetricsCollector;
let port: number;
const sender = dgram.createSocket('udp4');

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-metrics-'));
  db = await openStore(path.join(dir, 'petri.db'));
  const ana = await createUser(db, 'ana@example.org', 'admin', { email: 'ana@example.org' });
  await createApp(db, ana, 'victim', { memoryMiB: 64, cpus: 1, pids: 32 });
  collector = testCollector(db);
  port = (await collector.listen()).port;
});
after(async () => {
  sender.close();
  await collector?.stop();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const send = (line: string) =>
  new Promise<void>((resolve, reject) =>
    sender.send(`<134>Dec  2 17:00:00 haproxy[1]: ${line}`, port, '127.0.0.1', (err) =>
      err ? reject(err) : resolve(),
    ),
  );

test('requests for hosts that name no app make no Prometheus series', async () => {
  const hosts = 2000;
  // As the router would send them (with the collector's tag): the Host headers are visitors'.
  const tag = collector.requestLog!.tag;
  for (let i = 0; i < hosts; i++) await send(`petri1 ${tag} nobody${i}.petri.localhost 404 1 10`);
  // The last one arrived: every one before it did too (loopback keeps the order).
  await until(async () => (await collector.text()).includes(`app="nobody${hosts - 1}"`), {
    timeout: 500,
    message: 'the last datagram counted',
  }).catch(() => undefined);
  const text = await collector.text();
  const lines = text.split('\n').filter((l) => /app="nobody\d+"/.test(l));
  const apps = new Set(lines.map((l) => /app="(nobody\d+)"/.exec(l)![1])).size;
  // The flush resolves names and drops made-up ones: they never reach the store either.
  await collector.flush(Number.POSITIVE_INFINITY);
  assert.equal((await db.selectFrom('metric_minutes').select('app_id').execute()).length, 0);
  assert.equal(
    lines.length,
    0,
    `${hosts} requests to made-up hosts made ${lines.length} series lines for ${apps} made-up apps in /metrics (${(text.length / 2 ** 20).toFixed(1)} MiB of text): count only hosts of existing apps`,
  );
});

test("a process that is not the router cannot add 5xx to another app's counts", async () => {
  for (let i = 0; i < 100; i++) await send('petri1 victim.petri.localhost 503 1 0');
  const counted = await until(() => collector.live('victim')[0]?.counters.s5xx, {
    timeout: 1000,
    message: 'the forged 5xx counted',
  }).catch(() => 0);
  assert.equal(
    counted,
    0,
    `a local process's forged log lines gave victim ${counted} 5xx: the request log should come only from HAProxy (a unix datagram socket only the router may write to, or a secret in the log format)`,
  );
});
