// An app picks its Node.js with engines.node: built and served on a version other than the
// host's, from the runtime cache (shared by the test servers, so downloaded once per
// machine); `petri stacks` names it with the app; a version on offer nowhere fails the build
// with what is on offer, and the release that serves keeps serving.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, TestPetri, writeApp } from './petri.js';

const HOST_MAJOR = process.versions.node.split('.')[0];
/** A current LTS major other than the host's (Petri itself runs on 22 or newer). */
const WANT = HOST_MAJOR === '24' ? '22' : '24';

describe('Node.js versions for apps', () => {
  let petri: TestPetri;
  let version = '';
  before(async () => {
    petri = await TestPetri.start();
  });
  after(async () => {
    await petri?.destroy();
  });

  test("engines.node asks for another LTS: the build and the app run on its newest release, not the host's Node.js", async () => {
    assert.notEqual(HOST_MAJOR, WANT, "the fixture must ask for a Node.js other than the host's");
    assert.equal((await petri.cli(['apps', 'create', 'n22'])).code, 0);
    // The node-22 fixture, asking for WANT.x.
    const fixture = path.join(FIXTURES, 'node-22');
    const manifest = JSON.parse(readFileSync(path.join(fixture, 'package.json'), 'utf8'));
    const dir = writeApp({
      'package.json': JSON.stringify({ ...manifest, engines: { node: `${WANT}.x` } }),
      'server.js': readFileSync(path.join(fixture, 'server.js'), 'utf8'),
    });
    const started = Date.now();
    const deploy = await petri.cli(['deploy', dir, '--app', 'n22']);
    assert.equal(deploy.code, 0, deploy.stderr + deploy.stdout);
    const chosen = new RegExp(
      `-----> Node\\.js (${WANT}\\.\\d+\\.\\d+) \\(engines\\.node "${WANT}\\.x"\\)`,
    ).exec(deploy.stdout);
    assert.ok(chosen, deploy.stdout);
    version = chosen[1]!;
    console.log(`# deployed on Node.js ${version} in ${Date.now() - started} ms`);
    const res = await petri.app('n22');
    assert.equal(res.status, 200);
    assert.equal(res.body, `v${version} built with v${version}\n`);
  });

  test("a one-off runs on the release's Node.js too, and cannot change it", async () => {
    const run = await petri.cli([
      'run',
      '--app',
      'n22',
      '--no-tty',
      '--',
      'sh',
      '-c',
      'node -p process.version; touch /opt/node/bin/node 2>/dev/null && echo changed || echo read-only',
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, `v${version}\nread-only\n`);
  });

  test('without engines.node: the newest LTS on offer', async () => {
    assert.equal((await petri.cli(['apps', 'create', 'lts'])).code, 0);
    const dir = writeApp({
      'package.json': JSON.stringify({ name: 'lts', scripts: { start: 'node server.js' } }),
      'server.js':
        "require('node:http').createServer((_q, r) => r.end(process.version)).listen(Number(process.env.PORT));",
    });
    const deploy = await petri.cli(['deploy', dir, '--app', 'lts']);
    assert.equal(deploy.code, 0, deploy.stderr + deploy.stdout);
    const chosen = /-----> Node\.js ((\d+)\.\d+\.\d+) \(the newest LTS\)/.exec(deploy.stdout);
    assert.ok(chosen, deploy.stdout);
    assert.equal(Number(chosen[2]) % 2, 0, 'an even major');
    assert.equal((await petri.app('lts')).body, `v${chosen[1]}`);
  });

  test('petri stacks lists the installed version with the app on it', async () => {
    const json = await petri.cli(['stacks', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const runtimes = JSON.parse(json.stdout) as {
      stack: string;
      version: string;
      apps: string[];
      installed: boolean;
    }[];
    assert.deepEqual(
      runtimes.find((r) => r.version === version),
      { stack: 'node', version, apps: ['n22'], installed: true },
    );
    const table = await petri.cli(['stacks']);
    assert.match(table.stdout, /^STACK +VERSION +APPS$/m);
    assert.match(table.stdout, new RegExp(`^node +${version.replaceAll('.', '\\.')} +n22$`, 'm'));
  });

  test('engines.node ">=99" fails the build naming the versions on offer; v1 keeps serving', async () => {
    const pkg = JSON.parse(readFileSync(path.join(FIXTURES, 'node-22', 'package.json'), 'utf8'));
    const dir = writeApp({
      'package.json': JSON.stringify({ ...pkg, engines: { node: '>=99' } }),
      'server.js': readFileSync(path.join(FIXTURES, 'node-22', 'server.js'), 'utf8'),
    });
    const deploy = await petri.cli(['deploy', dir, '--app', 'n22']);
    assert.notEqual(deploy.code, 0);
    const said = deploy.stdout + deploy.stderr;
    assert.match(said, /no Node\.js on offer satisfies engines\.node ">=99" in package\.json; on offer: /);
    assert.match(said, /on offer: .*22\.\d+\.\d+.*Set engines\.node to one of them/);
    assert.equal((await petri.app('n22')).body, `v${version} built with v${version}\n`);
  });
});
