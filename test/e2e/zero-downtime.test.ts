// Issue 3's bar: nothing the platform does drops a request. A steady stream of requests
// runs through deploys, config changes, rollbacks, scaling, restarts, and a kill -9 of the
// control plane; every one must be answered by the app.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { SteadyLoad } from './load.js';
import { FIXTURES, TestPetri } from './petri.js';

const STEADY = path.join(FIXTURES, 'steady');

describe('releases that never drop a request', () => {
  let petri: TestPetri;
  const ps = async () =>
    JSON.parse((await petri.cli(['ps', '--app', 'steady', '--json'])).stdout) as {
      formation: Record<string, number>;
      processes: { name: string; state: string; release: string }[];
    };
  const expectOk = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r;
  };

  before(async () => {
    petri = await TestPetri.start();
    await expectOk(['apps', 'create', 'steady']);
    await expectOk(['deploy', STEADY, '--app', 'steady']);
  });
  after(async () => {
    await petri?.destroy();
  });

  test('10 deploys, 3 config changes, 2 rollbacks, scale 1→3→1 and a restart: zero failed requests', async () => {
    const load = new SteadyLoad(petri.httpPort, 'steady.petri.localhost');
    try {
      for (let i = 0; i < 10; i++) await expectOk(['deploy', STEADY, '--app', 'steady']);
      for (const greeting of ['hi', 'hey', 'hallo'])
        await expectOk(['config', 'set', `GREETING=${greeting}`, '--app', 'steady']);
      const rolled = await expectOk(['rollback', '--app', 'steady']);
      assert.match(rolled.stdout, /Rolled back to v\d+ as v\d+/);
      await expectOk(['rollback', 'v5', '--app', 'steady']);
      await expectOk(['ps', 'scale', 'web=3', '--app', 'steady']);
      await until(async () => (await ps()).processes.filter((p) => p.state === 'up').length === 3, {
        timeout: 15_000,
        message: 'three web processes up',
      });
      await expectOk(['ps', 'scale', 'web=1', '--app', 'steady']);
      await until(async () => (await ps()).processes.length === 1, {
        timeout: 15_000,
        message: 'back to one web process',
      });
      await expectOk(['restart', '--app', 'steady']);
      await until(async () => (await ps()).processes.every((p) => p.state === 'up'), { timeout: 15_000 });
    } finally {
      const result = await load.stop();
      assert.ok(result.requests > 100, `only ${result.requests} requests`);
      assert.deepEqual(
        result.failures,
        [],
        `${result.failures.length} of ${result.requests} requests failed`,
      );
    }
    // v5 is the zero-dependency deploy of v5's config: the default greeting.
    const res = await petri.app('steady');
    assert.match(res.body, /^v1\d+ hello web\.1\n$/);
    const releases = JSON.parse((await petri.cli(['releases', '--app', 'steady', '--json'])).stdout) as {
      version: string;
      description: string;
    }[];
    assert.match(releases[0]?.description ?? '', /^Rollback to v5$/);
    assert.match(releases[2]?.description ?? '', /^Set GREETING$/);
  });

  test('the app keeps serving while petri server is killed with SIGKILL and restarted', async () => {
    const load = new SteadyLoad(petri.httpPort, 'steady.petri.localhost');
    try {
      await until(() => load.result.requests > 20, { timeout: 5000 });
      await petri.kill9();
      const during = load.result.requests;
      await until(() => load.result.requests > during + 20, {
        timeout: 5000,
        message: 'requests while it is down',
      });
      await petri.startServer();
      await expectOk(['deploy', STEADY, '--app', 'steady']);
    } finally {
      const result = await load.stop();
      assert.deepEqual(
        result.failures,
        [],
        `${result.failures.length} of ${result.requests} requests failed`,
      );
    }
  });

  test('a long response on the old release finishes during a deploy', async () => {
    const body = new Promise<string>((resolve, reject) => {
      http
        .get(
          {
            host: '127.0.0.1',
            port: petri.httpPort,
            path: '/stream',
            headers: { host: 'steady.petri.localhost' },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve(text));
            res.on('error', reject);
          },
        )
        .on('error', reject);
    });
    await expectOk(['deploy', STEADY, '--app', 'steady']);
    const text = await body;
    assert.equal(text.split('\n').filter((l) => l.startsWith('chunk')).length, 20);
    assert.match(text, /done\n$/);
  });

  test('an upgraded connection (a WebSocket) on the old release keeps working, then is closed cleanly after the drain', async () => {
    const socket = net.connect(petri.httpPort, '127.0.0.1');
    socket.setEncoding('utf8');
    let received = '';
    socket.on('data', (d) => (received += d));
    const ended = new Promise<string>((resolve) => {
      socket.once('end', () => resolve('end'));
      socket.once('error', (err) => resolve(`error: ${err.message}`));
    });
    socket.write(
      'GET /ws HTTP/1.1\r\nHost: steady.petri.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    await until(() => received.includes('101 Switching Protocols'), {
      timeout: 5000,
      message: 'the upgrade',
    });
    const before = JSON.parse((await expectOk(['apps', 'info', 'steady', '--json'])).stdout) as {
      release: string;
    };
    socket.write('ping1');
    await until(() => received.includes(`${before.release}:ping1`), { timeout: 5000, message: 'an echo' });
    await expectOk(['deploy', STEADY, '--app', 'steady']);
    // The new release serves new requests; the old one still holds this connection.
    socket.write('ping2');
    await until(() => received.includes(`${before.release}:ping2`), {
      timeout: 5000,
      message: 'an echo after the switch',
    });
    // At the end of the drain (10 s in these tests) the old instance is stopped: a clean close.
    assert.equal(await ended, 'end');
  });

  test('two deploys at once are queued, never interleaved', async () => {
    const [a, b] = await Promise.all([
      petri.cli(['deploy', STEADY, '--app', 'steady', '--json']),
      petri.cli(['deploy', STEADY, '--app', 'steady', '--json']),
    ]);
    const versions = [a, b].map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return Number((JSON.parse(r.stdout) as { release: string }).release.slice(1));
    });
    assert.equal(Math.abs(versions[0]! - versions[1]!), 1);
    const info = JSON.parse((await petri.cli(['apps', 'info', 'steady', '--json'])).stdout) as {
      release: string;
    };
    assert.equal(info.release, `v${Math.max(...versions)}`);
  });

  test('a config change during a release in progress is refused with the reason', async () => {
    const deploying = petri.cli(['deploy', STEADY, '--app', 'steady']);
    await until(
      async () => {
        const rs = JSON.parse((await petri.cli(['releases', '--app', 'steady', '--json'])).stdout) as {
          status: string;
        }[];
        return rs[0]?.status === 'pending';
      },
      { timeout: 10_000, interval: 5, message: 'a pending release' },
    );
    const refused = await petri.cli(['config', 'set', 'X=1', '--app', 'steady']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /still in progress; try again when it serves or fails/);
    assert.equal((await deploying).code, 0);
  });
});
