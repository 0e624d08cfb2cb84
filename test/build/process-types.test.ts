// Process type names and counts are checked at build time, whichever file declares them:
// a name becomes part of instance ids, cgroup names and log sources, so a hostile one
// (120 characters, odd characters) must fail the build with the rule, not the control plane
// later (issue 11, High 4).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { planBuild } from '../../src/build/detect.js';
import { MAX_PROCESS_TYPES, parseProcfile } from '../../src/build/procfile.js';
import { isUserError } from '../../src/lib/errors.js';

describe('process types', () => {
  const dirs: string[] = [];
  after(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });
  const source = (files: Record<string, string>) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-ptypes-'));
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
    return dir;
  };
  const refused = async (files: Record<string, string>, message: RegExp) => {
    await assert.rejects(planBuild(source(files)), (err: unknown) => {
      assert.ok(isUserError(err), String(err));
      assert.equal(err.code, 'build_failed');
      assert.match(err.message, message);
      return true;
    });
  };

  test('a 120-character process type fails the build, naming the rule and the line', async () => {
    const long = 'w'.repeat(120);
    await refused(
      { Procfile: `web: node server.js\n${long}: sleep 1000\n` },
      /Procfile line 2: process type 'w{40}\.\.\.' \(120 characters\) must match \^\[a-z\]\[a-z0-9_-\]\{0,29\}\$/,
    );
  });

  test('names with characters an instance id cannot hold fail the build', async () => {
    for (const name of ['we.b', '9lives', '-x', 'wörker', 'a b']) {
      await refused({ Procfile: `web: node server.js\n${name}: sleep 1\n` }, /process type|type: command/);
    }
  });

  test('more process types than the maximum fail the build with the count', async () => {
    const lines = ['web: node server.js'];
    for (let i = 0; i < MAX_PROCESS_TYPES; i++) lines.push(`worker${i}: sleep 1`);
    await refused(
      { Procfile: `${lines.join('\n')}\n` },
      new RegExp(`${MAX_PROCESS_TYPES + 1} process types; at most ${MAX_PROCESS_TYPES}`),
    );
  });

  test('ordinary names still pass: web, worker, clock_2, release-ish names, upper case folded', async () => {
    const types = parseProcfile('Web: node a.js\nworker: node w.js\nclock_2: node c.js\nq-1: x\n');
    assert.deepEqual(Object.keys(types), ['web', 'worker', 'clock_2', 'q-1']);
    const plan = await planBuild(source({ Procfile: 'web: node a.js\nrelease: node m.js\nworker: x\n' }));
    assert.deepEqual(Object.keys(plan.processTypes).sort(), ['web', 'worker']);
    assert.equal(plan.releaseCommand, 'node m.js');
  });
});
