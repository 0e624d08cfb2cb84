// What a push deploys: the pre-receive input, Heroku's main/master rule, and the lines
// the hook prints (git shows them as `remote: ...`).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventLines, parseHookInput, planPush } from '../../src/git/push.js';
import { NEUTRAL_ATTRIBUTES, renderHookScript, repoConfig, shellQuote } from '../../src/git/repo.js';
import { DataPaths } from '../../src/lib/paths.js';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const Z = '0'.repeat(40);

test('pre-receive input: one `old new ref` per line; anything else is refused', () => {
  assert.deepEqual(parseHookInput(`${A} ${B} refs/heads/main\n${Z} ${A} refs/tags/v1\n`), [
    { oldId: A, newId: B, ref: 'refs/heads/main' },
    { oldId: Z, newId: A, ref: 'refs/tags/v1' },
  ]);
  assert.deepEqual(parseHookInput(''), []);
  assert.deepEqual(parseHookInput(`${'c'.repeat(64)} ${'d'.repeat(64)} refs/heads/x\n`).length, 1);
  assert.throws(() => parseHookInput(`${A} ${B}\n`), /unexpected pre-receive input/);
  assert.throws(() => parseHookInput(`${A} ${B} refs/heads/main extra\n`), /unexpected/);
  assert.throws(() => parseHookInput(`${A} $(reboot) refs/heads/main\n`), /unexpected/);
});

test('main or master deploys; other branches, tags and deletions are stored, not built', () => {
  const plan = planPush(
    parseHookInput(
      [`${A} ${B} refs/heads/feature`, `${Z} ${A} refs/tags/v1`, `${A} ${B} refs/heads/main`, ''].join('\n'),
    ),
  );
  assert.deepEqual(
    plan.map((a) => [a.kind, a.update.ref]),
    [
      ['skip', 'refs/heads/feature'],
      ['skip', 'refs/tags/v1'],
      ['deploy', 'refs/heads/main'],
    ],
  );
  assert.match(
    (plan[0] as { message: string }).message,
    /^Pushed to branch other than \[main, master\], skipping build/,
  );
  assert.equal(planPush(parseHookInput(`${A} ${B} refs/heads/master`))[0]?.kind, 'deploy');
  const deleted = planPush(parseHookInput(`${A} ${Z} refs/heads/main`));
  assert.equal(deleted[0]?.kind, 'skip');
  assert.match((deleted[0] as { message: string }).message, /main deleted/);
});

test('one deploy per push: main wins over master', () => {
  const plan = planPush(parseHookInput(`${A} ${B} refs/heads/master\n${A} ${B} refs/heads/main\n`));
  assert.deepEqual(
    plan.map((a) => a.kind),
    ['skip', 'deploy'],
  );
  assert.match((plan[0] as { message: string }).message, /master stored but not built: main is built/);
});

test('event lines: sources aligned as petri deploy prints them, failures marked, escapes shown', () => {
  assert.deepEqual(eventLines({ type: 'log', source: 'build', text: '-----> Node.js app detected' }), [
    'build   | -----> Node.js app detected',
  ]);
  assert.deepEqual(eventLines({ type: 'log', source: 'web.1', text: 'x\x1b[2Jy' }), ['web.1   | x\\x1b[2Jy']);
  assert.deepEqual(eventLines({ type: 'end', ok: true, message: 'deployed v2: http://a.petri.localhost' }), [
    'deployed v2: http://a.petri.localhost',
  ]);
  assert.deepEqual(eventLines({ type: 'end', ok: false, message: 'deploy failed: boom\nlast line' }), [
    ' !     deploy failed: boom',
    ' !     last line',
  ]);
});

test('the repository config: hooks from Petri only, force pushes allowed, hostile trees refused', () => {
  const config = new Map(repoConfig(new DataPaths('/data'), { maxPackBytes: 1234 }));
  assert.equal(config.get('core.hooksPath'), '/data/git/hooks');
  assert.equal(config.get('receive.denyNonFastForwards'), 'false');
  assert.equal(config.get('receive.maxInputSize'), '1234');
  assert.equal(config.get('receive.fsckObjects'), 'true');
  assert.equal(config.get('receive.fsck.hasDotgit'), 'error');
  assert.equal(config.get('uploadpack.allowFilter'), 'false');
  assert.match(NEUTRAL_ATTRIBUTES, /^\* -export-subst -export-ignore -filter/);
});

test('the hook script execs Petri own hook with quoted, fixed words', () => {
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(
    renderHookScript({ node: '/usr/bin/node', nodeArgs: [], script: '/opt/petri/dist/git/hook.js' })
      .split('\n')
      .at(-2),
    "exec '/usr/bin/node' '/opt/petri/dist/git/hook.js'",
  );
});
