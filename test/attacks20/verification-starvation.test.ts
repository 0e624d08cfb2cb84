// Attack (issue 20, custom domains): one tenant's claims hold every other team's verification
// back. The verifier (controllers/domains.ts) checks due claims in batches of 8, each batch
// waiting for its slowest check, and the next pass starts only after the last batch. A claim
// whose DNS never answers (the tenant's own nameserver drops Petri's queries) costs about 8 s
// of lookups (CNAME, then A and AAAA, 2 s x 2 tries each); 40 such claims (two apps' worth)
// hold a pass for ~40 s, 400 (a team's 20 apps) for over 6 minutes, and being retried 15 s,
// 30 s ... 10 min after each failure they are due again by the time the pass ends. Another
// team's claim, made meanwhile, waits behind them all.
// Here: the real verifier and store, a stand-in router serving the tokens it is given, and a
// DNS in front of pebble-challtestsrv that drops every query for the tarpit's names.
// Fix: bound the time a pass gives each team's (or each slow) claim, e.g. a short overall
// deadline per check and new claims checked ahead of ones that keep failing, or per-team
// queues checked fairly, so a new claim of another team is checked within seconds.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DomainVerifier } from '../../src/controllers/domains.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { addDomain } from '../../src/domain/domains.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';
import { TestDns } from '../domains/dns.js';

/** The query's name, read from a DNS message (labels from offset 12). */
function qname(msg: Buffer): string {
  const labels: string[] = [];
  let at = 12;
  while (at < msg.length && msg[at] !== 0) {
    const len = msg[at] as number;
    labels.push(msg.subarray(at + 1, at + 1 + len).toString('latin1'));
    at += 1 + len;
  }
  return labels.join('.').toLowerCase();
}

let dir: string;
let db: Store;
let dns: TestDns;
let proxy: dgram.Socket;
let router: http.Server;
const tokens = new Map<string, string>();
/** The tarpit's queries the proxy has dropped: mallory's checks under way. */
let tarpitQueries = 0;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'attack20-verify-'));
  db = await openStore(path.join(dir, 'petri.db'));
  dns = await TestDns.start();
  // Drops the tarpit's queries, forwards the rest to pebble-challtestsrv (127.0.0.1 for all).
  proxy = dgram.createSocket('udp4');
  proxy.on('message', (msg, from) => {
    if (qname(msg).endsWith('tarpit.test')) {
      tarpitQueries += 1;
      return;
    }
    const up = dgram.createSocket('udp4');
    up.on('message', (answer) => {
      proxy.send(answer, from.port, from.address);
      up.close();
    });
    up.send(msg, dns.port, '127.0.0.1');
  });
  await new Promise<void>((resolve) => proxy.bind(0, '127.0.0.1', resolve));
  router = http.createServer((req, res) => {
    const token = tokens.get(req.url ?? '');
    res.statusCode = token ? 200 : 404;
    res.end(token ?? 'not found');
  });
  await new Promise<void>((resolve) => router.listen(0, '127.0.0.1', resolve));
});
after(async () => {
  proxy?.close();
  router?.closeAllConnections();
  await new Promise((resolve) => router?.close(resolve));
  await dns?.stop();
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test("a tenant's unanswerable claims do not hold another team's claim back", async () => {
  const config = loadConfig({
    dataDir: dir,
    domains: {
      verifyPort: (router.address() as AddressInfo).port,
      resolver: [`127.0.0.1:${(proxy.address() as AddressInfo).port}`],
      addresses: ['127.0.0.1'],
      // The 40 claims stand for ones a team accumulates over hours (20 new ones an hour).
      claimsPerTeamPerHour: 100,
    },
  });
  const mallory = await createUser(db, 'mallory', 'member', { email: 'm@example.org' });
  const ana = await createUser(db, 'ana', 'member', { email: 'a@example.org' });
  const limits = { memoryMiB: 64, cpus: 1, pids: 32 };
  // Two of mallory's apps, 20 claims each, all unanswerable.
  for (const name of ['tar1', 'tar2']) {
    const app = await createApp(db, mallory, name, limits);
    for (let i = 0; i < 20; i++) await addDomain(db, mallory, app, `n${i}.${name}.tarpit.test`, config);
  }
  const verifier = new DomainVerifier({
    db,
    config,
    router: {
      setWellKnown: async (p, token) => void tokens.set(p, token),
      deleteWellKnown: async (p) => void tokens.delete(p),
    },
    logger: createLogger('silent'),
    nudge: () => {},
  });
  verifier.start();
  try {
    // Once mallory's checks are under way (their DNS queries dropped), ana claims her name.
    await until(() => tarpitQueries >= 4, { timeout: 10_000, message: "mallory's checks under way" });
    const shop = await createApp(db, ana, 'shop', limits);
    const claim = await addDomain(db, ana, shop, 'www.shop.example', config);
    // Ana proves the name is hers, as `petri domains add` tells her to.
    await dns.setTxt('_petri-challenge.www.shop.example', claim.token);
    const started = Date.now();
    const state = async () =>
      (
        await db
          .selectFrom('domains')
          .select('state')
          .where('host', '=', 'www.shop.example')
          .executeTakeFirst()
      )?.state;
    await until(async () => (await state()) === 'verified', { timeout: 15_000, message: 'x' }).catch(
      () => {},
    );
    assert.equal(
      await state(),
      'verified',
      `www.shop.example, pointing at the platform, is not verified ${Math.round((Date.now() - started) / 1000)} s after its claim`,
    );
  } finally {
    await verifier.stop();
  }
});
