// petri.toml's description, data, privacy and retention reach the build plan as given
// (the control plane checks them against the app at deploy: domain/experiments.ts), and
// values of the wrong type fail the build naming the key.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { planBuild } from '../../src/build/detect.js';
import { isUserError } from '../../src/lib/errors.js';

describe('petri.toml: the experiment', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const source = (toml: string) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-toml-'));
    dirs.push(dir);
    writeFileSync(path.join(dir, 'Procfile'), 'web: node server.js\n');
    writeFileSync(path.join(dir, 'petri.toml'), toml);
    return dir;
  };

  test('description, data, privacy and retention are carried to the plan', async () => {
    const plan = await planBuild(
      source('description = "A survey"\ndata = "personal"\nprivacy = "e-mails"\nretention = "30d"\n'),
    );
    assert.deepEqual(plan.describe, {
      description: 'A survey',
      data: 'personal',
      privacy: 'e-mails',
      retention: '30d',
    });
    const days = await planBuild(source('retention = 45\n'));
    assert.deepEqual(days.describe, {
      description: undefined,
      data: undefined,
      privacy: undefined,
      retention: 45,
    });
    assert.equal((await planBuild(source('health_check = "/health"\n'))).describe, undefined);
  });

  test('a value of the wrong type fails the build, naming the key', async () => {
    for (const [toml, message] of [
      ['data = 3\n', /^petri.toml: data must be a string$/],
      ['privacy = ["a"]\n', /^petri.toml: privacy must be a string$/],
      [
        'retention = 1.5\n',
        /^petri.toml: retention must be a duration like "30d" or a number of days, got 1.5$/,
      ],
      ['retention = true\n', /^petri.toml: retention must be a duration/],
    ] as const) {
      await assert.rejects(planBuild(source(toml)), (err: unknown) => {
        assert.ok(isUserError(err), String(err));
        assert.equal(err.code, 'build_failed');
        assert.match(err.message, message);
        return true;
      });
    }
  });
});
