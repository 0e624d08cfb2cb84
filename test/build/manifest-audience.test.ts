// petri.toml's audience reaches the build plan as given (the control plane applies it at
// deploy by the rules of 'petri audience set': domain/audiences.ts), and a value of the
// wrong type fails the build naming the key.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { planBuild } from '../../src/build/detect.js';
import { isUserError } from '../../src/lib/errors.js';

describe('petri.toml: the audience', () => {
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

  test('audience = "invite" is carried to the plan; without it there is none', async () => {
    assert.equal((await planBuild(source('audience = "invite"\n'))).audience, 'invite');
    assert.equal((await planBuild(source('name = "x"\n'))).audience, undefined);
  });

  test('an audience that is not a string fails the build, naming it', async () => {
    await assert.rejects(planBuild(source('audience = ["staff"]\n')), (err) => {
      assert.ok(isUserError(err));
      assert.equal(err.code, 'build_failed');
      assert.equal(err.message, 'petri.toml: audience must be a string');
      return true;
    });
  });
});
