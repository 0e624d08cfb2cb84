// Releases end to end: config vars reach the app and `petri run`, the release phase runs
// before traffic and stops a release that fails it, health checks gate traffic.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, TestPetri } from './petri.js';

describe('config, release phase, health checks and one-offs', () => {
  let petri: TestPetri;
  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  before(async () => {
    petri = await TestPetri.start();
    await ok(['apps', 'create', 'migrating']);
  });
  after(async () => {
    await petri?.destroy();
  });

  test('the release command runs before traffic, with its output in the deploy', async () => {
    const deploy = await ok(['deploy', path.join(FIXTURES, 'with-release-phase'), '--app', 'migrating']);
    assert.match(deploy.stdout, /running the release command: node migrate\.js/);
    assert.match(deploy.stdout, /migrated for v1/);
    assert.equal((await petri.app('migrating')).body, 'serving v1 \n');
  });

  test('config vars reach the app as a new release, and are never logged', async () => {
    const set = await ok(['config', 'set', 'GREETING=s3cr3t-value', '--app', 'migrating']);
    assert.match(set.stdout, /done, v2/);
    assert.equal((await petri.app('migrating')).body, 'serving v2 s3cr3t-value\n');
    const config = JSON.parse((await ok(['config', '--app', 'migrating', '--json'])).stdout) as Record<
      string,
      string
    >;
    assert.equal(config.GREETING, 's3cr3t-value');
    const logs = await ok(['logs', '--app', 'migrating', '-n', '1000']);
    assert.doesNotMatch(logs.stdout, /s3cr3t-value/);
    assert.doesNotMatch(petri.output, /s3cr3t-value/);
  });

  test('reserved and invalid config keys are refused with the reason', async () => {
    const reserved = await petri.cli(['config', 'set', 'PETRI_X=1', '--app', 'migrating']);
    assert.equal(reserved.code, 1);
    assert.match(reserved.stderr, /reserved: keys starting with PETRI_ are set by Petri/);
    const invalid = await petri.cli(['config', 'set', '1BAD=1', '--app', 'migrating']);
    assert.notEqual(invalid.code, 0);
  });

  test('a failing release command stops the release; the previous one serves on', async () => {
    const failed = await petri.cli(['config', 'set', 'MIGRATE_FAIL=no-database', '--app', 'migrating']);
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /release command failed \(exit code 2\)/);
    assert.match(failed.stderr, /migration failed: no-database/);
    assert.equal((await petri.app('migrating')).body, 'serving v2 s3cr3t-value\n');
    const releases = JSON.parse((await ok(['releases', '--app', 'migrating', '--json'])).stdout) as {
      version: string;
      status: string;
      current: boolean;
    }[];
    assert.deepEqual(
      releases.map((r) => [r.version, r.status, r.current]),
      [
        ['v3', 'failed', false],
        ['v2', 'succeeded', true],
        ['v1', 'succeeded', false],
      ],
    );
  });

  test('petri run runs a command with the current release and config', async () => {
    await ok(['config', 'unset', 'MIGRATE_FAIL', '--app', 'migrating']);
    const run = await petri.cli([
      'run',
      '--app',
      'migrating',
      '--no-tty',
      '--',
      'sh',
      '-c',
      'echo "$GREETING $PETRI_RELEASE"; exit 3',
    ]);
    assert.equal(run.code, 3);
    assert.equal(run.stdout, 's3cr3t-value v4\n');
  });

  test('a health check path gates traffic: an unhealthy release is never switched to', async () => {
    await ok(['apps', 'create', 'health-checked']);
    await ok(['apps', 'set', 'health-checked', 'boot_timeout=3s']);
    const dir = path.join(FIXTURES, 'health-checked');
    const unhealthy = await petri.cli(['deploy', dir, '--app', 'health-checked']);
    assert.equal(unhealthy.code, 1);
    assert.match(unhealthy.stderr, /web\.1 did not answer \/health with 2xx\/3xx within 3 s/);
    assert.equal((await petri.app('health-checked')).status, 503);
    await ok(['config', 'set', 'HEALTHY=1', '--app', 'health-checked']);
    // Now healthy at once; a busy machine may need more than 3 s to start it.
    await ok(['apps', 'set', 'health-checked', 'boot_timeout=30s']);
    await ok(['deploy', dir, '--app', 'health-checked']);
    assert.equal((await petri.app('health-checked')).body, 'healthy app\n');
  });
});
