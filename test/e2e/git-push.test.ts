// `git push` deploys, end to end: `petri git remote` in a real repository, then real git
// pushes over smart HTTP to a real Petri; the build streams back as `remote:` lines, a
// failed deploy rejects the push while the previous release serves, hostile trees are
// refused with the reason.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { helperCommand } from '../../src/cli/git.js';
import { FIXTURES, TestPetri } from './petri.js';

interface Run {
  code: number;
  output: string;
}

describe('git push deploys', () => {
  let petri: TestPetri;
  let repo: string;
  let home: string;

  function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        cwd: repo,
        env: {
          PATH: process.env.PATH,
          HOME: home, // no global git config of the machine running the tests
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_TERMINAL_PROMPT: '0',
          PETRI_URL: petri.apiUrl,
          PETRI_TOKEN: petri.token,
          PETRI_CONFIG_DIR: path.join(petri.dataDir, 'cli'),
          ...env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let output = '';
      child.stdout.on('data', (d) => (output += d));
      child.stderr.on('data', (d) => (output += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code: code ?? 1, output }));
    });
  }

  const git = (...args: string[]) => run('git', args);
  async function commit(message: string, amend = false): Promise<void> {
    assert.equal((await git('add', '-A')).code, 0);
    const args = [
      '-c',
      'user.name=Petri Test',
      '-c',
      'user.email=test@petri.invalid',
      'commit',
      '-q',
      '-m',
      message,
    ];
    const done = await git(...args, ...(amend ? ['--amend'] : []));
    assert.equal(done.code, 0, done.output);
  }
  function setBody(text: string): void {
    const file = path.join(repo, 'server.js');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/hello from zero-dep[^$]*\$/, `${text} $`));
  }

  before(async () => {
    // A small upload cap, so a huge push can be tried quickly.
    petri = await TestPetri.start({ maxUploadBytes: 4 * 1024 * 1024 });
    repo = mkdtempSync(path.join(tmpdir(), 'petri-git-'));
    home = mkdtempSync(path.join(tmpdir(), 'petri-git-home-'));
    cpSync(path.join(FIXTURES, 'zero-dep'), repo, { recursive: true });
    assert.equal((await git('init', '-q', '-b', 'main')).code, 0);
    await commit('first');
    assert.equal((await petri.cli(['apps', 'create', 'pushed'])).code, 0);
  });
  after(async () => {
    await petri?.destroy();
    if (repo) rmSync(repo, { recursive: true, force: true });
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test('petri git remote adds the remote and a credential helper; the token stays out of .git/config', async () => {
    const added = await petri.cli(['git', 'remote', '--app', 'pushed'], repo);
    assert.equal(added.code, 0, added.stderr);
    assert.match(added.stdout, /Git remote petri added: http:\/\/127\.0\.0\.1:\d+\/v1\/apps\/pushed\/git/);
    const config = readFileSync(path.join(repo, '.git/config'), 'utf8');
    assert.ok(!config.includes(petri.token), 'token written to .git/config');
    assert.match(config, /helper = "?!.* git credential/);
    // Again: updates rather than failing or stacking helpers.
    assert.equal((await petri.cli(['git', 'remote', '--app', 'pushed'], repo)).code, 0);
    const helpers = await git('config', '--get-all', `credential.${petri.apiUrl}/v1/apps/pushed/git.helper`);
    assert.deepEqual(helpers.output.replace(/\n$/, '').split('\n'), ['', helperCommand()]);
  });

  test('git push petri main builds, streams remote: lines and serves the app', async () => {
    const push = await git('push', 'petri', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /remote: build +\| -----> Node\.js app detected/);
    assert.match(
      push.output,
      new RegExp(`remote: deployed v1: http://pushed\\.petri\\.localhost:${petri.httpPort}`),
    );
    assert.match(push.output, /\* \[new branch\] +main -> main/);
    assert.equal((await petri.app('pushed')).body, 'hello from zero-dep v1\n');
  });

  test('a push of another branch is kept but not built', async () => {
    await git('checkout', '-q', '-b', 'feature');
    setBody('feature branch');
    await commit('feature');
    const push = await git('push', 'petri', 'feature');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /remote: Pushed to branch other than \[main, master\], skipping build/);
    assert.doesNotMatch(push.output, /deployed v/);
    await git('checkout', '-q', 'main');
    const releases = JSON.parse(
      (await petri.cli(['releases', '--app', 'pushed', '--json'])).stdout,
    ) as unknown[];
    assert.equal(releases.length, 1);
    assert.equal((await petri.app('pushed')).body, 'hello from zero-dep v1\n');
  });

  test('a force push of an amended commit deploys it', async () => {
    setBody('amended');
    await commit('first, amended', true);
    const plain = await git('push', 'petri', 'main');
    assert.notEqual(plain.code, 0, 'a non-fast-forward push needs --force, as everywhere');
    const push = await git('push', '--force', 'petri', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /remote: deployed v2:/);
    assert.match(push.output, /\+ [0-9a-f]+\.\.\.[0-9a-f]+ main -> main \(forced update\)/);
    assert.equal((await petri.app('pushed')).body, 'amended v2\n');
  });

  test('a commit whose app crashes at start is rejected; the previous release serves on', async () => {
    cpSync(path.join(FIXTURES, 'crash-at-start/server.js'), path.join(repo, 'server.js'));
    await commit('crash');
    const push = await git('push', 'petri', 'main');
    assert.notEqual(push.code, 0, push.output);
    assert.match(push.output, /remote: +! +deploy failed: .*web\.1 exited during start \(exit code 3\)/);
    assert.match(push.output, /! \[remote rejected\] main -> main \(pre-receive hook declined\)/);
    assert.equal((await petri.app('pushed')).body, 'amended v2\n');
    // The ref did not move: the remote still has the amended commit.
    const remote = await git('ls-remote', 'petri', 'refs/heads/main');
    const local = await git('rev-parse', 'HEAD~1');
    assert.equal(remote.output.split(/\s/)[0], local.output.trim());
    await git('reset', '-q', '--hard', 'HEAD~1');
  });

  test('a symlink out of the tree is refused with the reason; nothing is deployed', async () => {
    symlinkSync('/etc/passwd', path.join(repo, 'passwd'));
    await commit('symlink');
    const push = await git('push', 'petri', 'main');
    assert.notEqual(push.code, 0, push.output);
    assert.match(push.output, /archive entry 'passwd' is a symbolic link to '\/etc\/passwd'/);
    assert.match(push.output, /! \[remote rejected\] main -> main/);
    assert.equal((await petri.app('pushed')).body, 'amended v2\n');
    await git('reset', '-q', '--hard', 'HEAD~1');
  });

  /** Plumbing, as git add refuses such paths: a commit on HEAD whose tree adds one entry
   * `name` holding a directory with one file; the id of that commit. */
  async function commitWithEntry(name: string, file: string, mode: string, content: string): Promise<string> {
    const out = async (script: string, ...args: string[]) =>
      (await run('sh', ['-c', script, ...args])).output.trim();
    const blob = await out(`printf '%s' "$0" | git hash-object -w --stdin`, content);
    const dir = await out(`printf '${mode} blob %s\\t%s\\n' "$0" "$1" | git mktree`, blob, file);
    const head = (await git('ls-tree', 'HEAD')).output;
    const tree = await out(`printf '%s040000 tree %s\\t%s\\n' "$0" "$1" "$2" | git mktree`, head, dir, name);
    const id = (
      await run('git', [
        '-c',
        'user.name=T',
        '-c',
        'user.email=t@petri.invalid',
        'commit-tree',
        tree,
        '-p',
        'HEAD',
        '-m',
        name,
      ])
    ).output.trim();
    assert.match(id, /^[0-9a-f]{40}$/);
    return id;
  }

  for (const [what, name, file, mode, content, check] of [
    // .git/hooks-like content: a hook that would run on the host if it were ever used.
    ['a .git directory', '.git', 'pre-receive', '100755', '#!/bin/sh\ntouch /tmp/pwned\n', /hasDotgit/],
    ['a .. entry (a path leaving the app)', '..', 'pwned', '100644', 'owned\n', /hasDotdot/],
  ] as const) {
    test(`a tree with ${what} is refused by the object checks`, async () => {
      const push = await git(
        'push',
        'petri',
        `${await commitWithEntry(name, file, mode, content)}:refs/heads/main`,
      );
      assert.notEqual(push.code, 0, push.output);
      assert.match(push.output, check);
      assert.equal((await petri.app('pushed')).body, 'amended v2\n');
    });
  }

  test('a wrong token gets 401 and git reports failed authentication', async () => {
    const push = await run('git', ['push', 'petri', 'main'], { PETRI_TOKEN: 'petri_wrong' });
    assert.notEqual(push.code, 0);
    assert.match(push.output, /Authentication failed/);
    const res = await fetch(`${petri.apiUrl}/v1/apps/pushed/git/info/refs?service=git-receive-pack`);
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Petri"');
    const wrong = await fetch(`${petri.apiUrl}/v1/apps/pushed/git/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Basic ${Buffer.from('x:petri_wrong').toString('base64')}` },
    });
    assert.equal(wrong.status, 401);
    // Basic is for the git routes only.
    const other = await fetch(`${petri.apiUrl}/v1/apps`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${petri.token}`).toString('base64')}` },
    });
    assert.equal(other.status, 401);
    // The hook's endpoint takes no API token and no made-up ticket.
    const hook = await fetch(`${petri.apiUrl}/v1/apps/pushed/git/deploy?sha=${'a'.repeat(40)}`, {
      method: 'POST',
      headers: { authorization: 'Bearer made-up' },
    });
    assert.equal(hook.status, 401);
  });

  test("a viewer of the app's team may fetch but not push (403); nothing is deployed", async () => {
    // A shared team for the app (a personal team is its person's alone), and a CI bot in it
    // that only reads.
    assert.equal((await petri.cli(['teams', 'create', 'pushers'])).code, 0);
    const moved = await petri.cli(['apps', 'transfer', 'pushed', '--team', 'pushers']);
    assert.equal(moved.code, 0, moved.stderr);
    const bot = await petri.cli([
      'users',
      'create-bot',
      'ci-reader',
      '--team',
      'pushers',
      '--role',
      'viewer',
      '--json',
    ]);
    assert.equal(bot.code, 0, bot.stderr);
    const viewer = { PETRI_TOKEN: (JSON.parse(bot.stdout) as { secret: string }).secret };
    const before = (await petri.app('pushed')).body;
    const fetched = await run('git', ['ls-remote', 'petri', 'main'], viewer);
    assert.equal(fetched.code, 0, fetched.output);
    // A change of its own: earlier tests rewrote the body setBody() looks for.
    writeFileSync(path.join(repo, 'viewer.txt'), 'a viewer pushed\n');
    await commit('by a viewer');
    const push = await run('git', ['push', 'petri', 'main'], viewer);
    assert.notEqual(push.code, 0, push.output);
    assert.match(push.output, /403/);
    assert.doesNotMatch(push.output, /Authentication failed/);
    const res = await fetch(`${petri.apiUrl}/v1/apps/pushed/git/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${viewer.PETRI_TOKEN}`).toString('base64')}` },
    });
    assert.equal(res.status, 403);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /you are a viewer/);
    assert.equal((await petri.app('pushed')).body, before);
    await git('reset', '-q', '--hard', 'HEAD~1');
  });

  test('the advertisement has the smart-HTTP shape; the app can be cloned back', async () => {
    const res = await fetch(`${petri.apiUrl}/v1/apps/pushed/git/info/refs?service=git-upload-pack`, {
      headers: { authorization: `Basic ${Buffer.from(`petri:${petri.token}`).toString('base64')}` },
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-git-upload-pack-advertisement');
    assert.ok((await res.text()).startsWith('001e# service=git-upload-pack\n0000'));
    const clone = await git(
      'clone',
      '-q',
      '--config',
      `credential.helper=${helperCommand()}`,
      `${petri.apiUrl}/v1/apps/pushed/git`,
      path.join(home, 'clone'),
    );
    assert.equal(clone.code, 0, clone.output);
    assert.match(readFileSync(path.join(home, 'clone/server.js'), 'utf8'), /amended/);
  });
  test('a push over the upload cap is refused; nothing is deployed', async () => {
    writeFileSync(path.join(repo, 'huge.bin'), randomBytes(6 * 1024 * 1024));
    await commit('huge');
    const push = await git('push', 'petri', 'main');
    assert.notEqual(push.code, 0, push.output);
    assert.match(push.output, /maximum allowed size|too large|exceeds/i);
    assert.equal((await petri.app('pushed')).body, 'amended v2\n');
    await git('reset', '-q', '--hard', 'HEAD~1');
  });

  test('an app with only a Procfile runs its web: line as is (a shell script it ships)', async () => {
    assert.equal((await git('rm', '-rq', '.')).code, 0);
    cpSync(path.join(FIXTURES, 'procfile-shell'), repo, { recursive: true });
    await commit('a Procfile app');
    const push = await git('push', 'petri', 'main');
    assert.equal(push.code, 0, push.output);
    assert.match(push.output, /remote: .*Procfile app detected/);
    const res = await petri.app('pushed', '/hello.txt');
    assert.equal(res.body, 'served by a shell script\n');
  });
});
