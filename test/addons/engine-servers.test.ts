// What GET /v1/addon-servers says of each engine's server (AddonEngines.servers()): an
// external server that answers is up, one that does not is down with where it was asked,
// and a managed server no add-on has needed since start is idle, not down.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { AddonEngines } from '../../src/addons/engines.js';
import { createLogger } from '../../src/lib/log.js';
import { freePort } from '../../src/lib/ports.js';

let dir: string;
let listener: net.Server;
let engines: AddonEngines;
let closedPort: number;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'petri-engine-servers-'));
  listener = net.createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const open = (listener.address() as net.AddressInfo).port;
  closedPort = await freePort();
  engines = await AddonEngines.prepare(
    {
      postgres: { mode: 'external', adminUrl: `postgres://admin:pw@127.0.0.1:${open}/postgres` },
      mysql: { mode: 'external', adminUrl: `mysql://root:pw@127.0.0.1:${closedPort}/` },
      redis: { mode: 'managed', port: await freePort() },
      serverUser: 'nobody',
      backupIntervalHours: 24,
      backupRetentionDays: 7,
      finalBackupRetentionDays: 30,
    },
    dir,
    createLogger('silent'),
  );
});

after(async () => {
  await engines?.close();
  listener?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('each server with its mode, address and whether it answers', async () => {
  const servers = await engines.servers();
  const byType = Object.fromEntries(servers.map((s) => [s.type, s]));
  assert.equal(byType.postgres?.mode, 'external');
  assert.equal(byType.postgres?.state, 'up');
  assert.equal(byType.postgres?.error, null);
  assert.equal(byType.mysql?.state, 'down');
  assert.equal(byType.mysql?.error, `it does not answer on 127.0.0.1:${closedPort}`);
  assert.equal(byType.redis?.mode, 'managed');
  assert.equal(byType.redis?.state, 'idle');
});
