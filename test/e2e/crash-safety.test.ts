// kill -9 of the control plane at awkward moments: apps keep serving through it and are
// adopted (not restarted) by the next start; a build cut off is failed with the reason.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri, writeApp } from './petri.js';

describe('crash safety of the control plane', () => {
  let petri: TestPetri;
  before(async () => {
    petri = await TestPetri.start();
  });
  after(async () => {
    await petri?.destroy();
  });

  test('apps keep serving while petri server is dead, and are re-adopted on restart', async () => {
    await petri.cli(['apps', 'create', 'steady']);
    assert.equal((await petri.cli(['deploy', path.join(FIXTURES, 'zero-dep'), '--app', 'steady'])).code, 0);
    const { boot } = JSON.parse((await petri.app('steady', '/whoami')).body) as { boot: string };

    await petri.kill9();
    const whileDown = await petri.app('steady');
    assert.equal(whileDown.status, 200, 'serves while the control plane is down');

    await petri.startServer();
    const info = JSON.parse((await petri.cli(['apps', 'info', 'steady', '--json'])).stdout) as {
      status: string;
    };
    assert.equal(info.status, 'running');
    for (let i = 0; i < 5; i++) {
      const now = JSON.parse((await petri.app('steady', '/whoami')).body) as { boot: string };
      assert.equal(now.boot, boot, 'the same process serves: adopted, not restarted');
    }
  });

  test('a deploy cut off by kill -9 during its build is marked failed with the reason', async () => {
    const slow = writeApp({
      'package.json': JSON.stringify({
        name: 'slow',
        scripts: {
          build: 'node -e "console.log(\'building slowly\'); setTimeout(() => {}, 60000)"',
          start: 'node server.js',
        },
      }),
      'server.js': "require('http').createServer((q, s) => s.end('slow')).listen(process.env.PORT)",
    });
    await petri.cli(['apps', 'create', 'slow']);
    const deploying = petri.cli(['deploy', slow, '--app', 'slow', '--json']);
    await until(
      async () => (await petri.cli(['logs', '--app', 'slow', '-n', '50'])).stdout.includes('building slowly'),
      { timeout: 20_000, message: 'the build to run' },
    );
    await petri.kill9();
    const cut = await deploying;
    assert.notEqual(cut.code, 0);

    await petri.startServer();
    const res = await fetch(`${petri.apiUrl}/v1/apps/slow`, {
      headers: { authorization: `Bearer ${petri.token}` },
    });
    const app = (await res.json()) as { status: string; release: string | null };
    assert.equal(app.release, null);
    const logs = await petri.cli(['logs', '--app', 'slow', '-n', '20']);
    assert.match(logs.stdout, /building slowly/);
    const deploys = await fetch(`${petri.apiUrl}/v1/apps/slow/deploys`, {
      headers: { authorization: `Bearer ${petri.token}` },
    });
    const list = (await deploys.json()) as { deploys: { status: string; error: string }[] };
    assert.equal(list.deploys[0]?.status, 'failed');
    assert.match(list.deploys[0]?.error ?? '', /interrupted because petri server stopped; deploy again/);
    // The steady app from the first test still serves after a second crash and restart.
    assert.equal((await petri.app('steady')).status, 200);
  });
});
