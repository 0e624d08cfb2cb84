// The CLI loads only the topic a command belongs to (src/cli/main.ts TOPICS): each topic
// must list exactly the commands it registers, or a command would load the wrong module.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Command } from 'commander';
import type { Context } from '../../src/cli/context.js';
import { TOPICS } from '../../src/cli/main.js';
import type { Terminal } from '../../src/cli/run.js';
import { run } from './harness.js';

describe('CLI topics', () => {
  test('each topic lists the commands it registers, and no command is in two topics', async () => {
    const seen = new Set<string>();
    for (const topic of TOPICS) {
      const program = new Command('petri');
      (await topic.load())(program, {} as Context, {} as Terminal);
      const registered = program.commands.flatMap((command) => [command.name(), ...command.aliases()]);
      assert.deepEqual(registered, topic.commands);
      for (const name of registered) {
        assert.ok(!seen.has(name), `${name} is in two topics`);
        seen.add(name);
      }
    }
  });

  test('help lists every topic, in order', async () => {
    const help = await run(['--help']);
    assert.equal(help.code, 0);
    const listed = [...help.stdout.matchAll(/^ {2}([a-z]+)\b/gm)].map((m) => m[1]);
    assert.deepEqual(
      listed.filter((name) => name !== 'help'),
      TOPICS.flatMap((topic) => topic.commands),
    );
  });

  test('a command of one topic; a mistyped one, with suggestions from every topic', async () => {
    const status = await run(['status', '--help']);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /^Usage: petri status/);
    const typo = await run(['aps']);
    assert.equal(typo.code, 2);
    assert.equal(typo.stderr, "error: unknown command 'aps'\n(Did you mean one of apps, ps?)\n");
  });
});
