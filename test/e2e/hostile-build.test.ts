// The hostile-build suite: a build script that turns what root does with its files (the
// dependency cache, the build's /app, the slug) against the host and its neighbours, a
// build that fills its disks, and what a build cut off by kill -9 of the control plane
// leaves behind. Every attack must fail and leave the host and the other apps as they were.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from './petri.js';

/** Small enough that filling it takes a moment, big enough for the fixture's npm cache. */
const CACHE_MIB = 24;

describe('a hostile build cannot make root follow its paths, nor fill the host', () => {
  let petri: TestPetri;
  const cleanup: string[] = [];

  /** A host directory with one precious file, the target of the link attacks. */
  const hostDir = () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-precious-'));
    writeFileSync(path.join(dir, 'keep.txt'), 'precious\n');
    cleanup.push(dir);
    return dir;
  };
  const assertIntact = (dir: string) => {
    assert.deepEqual(readdirSync(dir), ['keep.txt'], `${dir} holds only what it held`);
    assert.equal(readFileSync(path.join(dir, 'keep.txt'), 'utf8'), 'precious\n');
  };
  /** The hostile-build fixture with its attack, deployed to `app`; stdout and stderr together. */
  const deploy = async (
    app: string,
    attack: Record<string, unknown>,
    opts: { newLockfile?: boolean } = {},
  ) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'petri-hostile-build-'));
    cleanup.push(dir);
    cpSync(path.join(FIXTURES, 'hostile-build'), dir, { recursive: true });
    writeFileSync(path.join(dir, 'attack.json'), JSON.stringify(attack));
    // Other bytes, same dependencies: a new cache key, so the build installs and saves again.
    if (opts.newLockfile)
      writeFileSync(
        path.join(dir, 'package-lock.json'),
        `${readFileSync(path.join(dir, 'package-lock.json'), 'utf8')}\n`,
      );
    const r = await petri.cli(['deploy', dir, '--app', app]);
    return { code: r.code, output: r.stdout + r.stderr };
  };
  const create = async (app: string) => {
    const r = await petri.cli(['apps', 'create', app]);
    assert.equal(r.code, 0, r.stderr);
  };
  const appId = (name: string): number => {
    const db = new Database(path.join(petri.dataDir, 'petri.db'), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare('select id from apps where name = ?').get(name) as { id: number }).id;
    } finally {
      db.close();
    }
  };
  const mountsUnder = (dir: string) =>
    readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(`${dir}/`));

  before(async () => {
    petri = await TestPetri.start({ buildCacheMiB: CACHE_MIB });
  });
  after(async () => {
    await petri?.destroy();
    for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
  });

  test('a build that links /cache/deps to a host directory leaves that directory as it was', async () => {
    const target = hostDir();
    await create('linker');
    const r = await deploy('linker', { symlink: target, name: 'linker' });
    assert.match(r.output, /link \/cache\/deps to .*: done/);
    assertIntact(target);
  });

  test("a build that plants its code in another app's cache cannot run it there", async () => {
    await create('victim');
    const first = await deploy('victim', { name: 'victim v1' });
    assert.equal(first.code, 0, first.output);
    const victim = appId('victim');
    // Where the victim's cache lived before builds had their own disks, and where it lives now.
    const victimCache = path.join(petri.dataDir, 'apps', String(victim));
    const targets = [
      path.join(victimCache, 'cache', 'deps'),
      path.join(victimCache, 'build-cache', 'cache', 'deps'),
    ];
    for (const [i, deps] of targets.entries()) {
      await create(`planter-${i}`);
      const r = await deploy(`planter-${i}`, { symlink: deps, plant: true, name: 'planter' });
      assert.match(r.output, /planted node_modules\/\.bin\/node/);
    }

    const again = await deploy('victim', { name: 'victim v2' });
    assert.doesNotMatch(again.output, /PWNED/, "the attacker's code did not run in the victim's build");
    assert.equal(again.code, 0, again.output);
    assert.match(again.output, /Dependencies unchanged: restored from the build cache/);
    assert.equal((await petri.app('victim')).body, 'built by victim v2\n');
  });

  test('hard links to files that are not the build’s own are refused, and root changes none', async () => {
    const files = ['/usr/bin/env', '/etc/hosts', path.join(petri.dataDir, 'petri.db')];
    const before = files.map((f) => statSync(f));
    await create('linkhard');
    const r = await deploy('linkhard', { hardlink: files, name: 'linkhard' });
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /hard link .* into \/(cache|app): done/, 'no hard link was made');
    files.forEach((f, i) => {
      const now = statSync(f);
      const was = before[i]!;
      assert.deepEqual([now.uid, now.gid, now.mode, now.nlink], [was.uid, was.gid, was.mode, was.nlink], f);
    });
  });

  test('a build that swaps its cache directory for a link during the build leaves the target as it was', async () => {
    const target = hostDir();
    await create('swapper');
    const plain = await deploy('swapper', { name: 'swapper v1' });
    assert.equal(plain.code, 0, plain.output);
    const r = await deploy('swapper', { swap: target, name: 'swapper v2' }, { newLockfile: true });
    assert.match(r.output, /swap \/cache\/deps for a link .*: done/);
    assertIntact(target);
  });

  test("a build that writes past the app's disk limit fails with that reason; the host's disk is not filled", async () => {
    await create('filler');
    assert.equal((await petri.cli(['apps', 'limits', 'filler', '--disk', '32'])).code, 0);
    const r = await deploy('filler', { fillApp: 64, name: 'filler' });
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /the build ran out of disk: \/app is limited to 32 MiB \(limits\.diskMiB\)/);
    const wrote = Number(/wrote (\d+) MiB to \/app\/filler, then ENOSPC/.exec(r.output)?.[1]);
    assert.ok(wrote < 32, `the build wrote ${wrote} MiB, within its 32 MiB`);
  });

  test('a build that fills its cache past buildCacheMiB fails with that reason', async () => {
    await create('hoarder');
    const r = await deploy('hoarder', { fillCache: 2 * CACHE_MIB, name: 'hoarder' });
    assert.notEqual(r.code, 0, r.output);
    assert.match(
      r.output,
      new RegExp(`the build cache is full: /cache is limited to ${CACHE_MIB} MiB \\(buildCacheMiB\\)`),
    );
    const wrote = Number(/wrote (\d+) MiB to \/cache\/filler, then ENOSPC/.exec(r.output)?.[1]);
    assert.ok(wrote < CACHE_MIB, `the build wrote ${wrote} MiB to its cache, within ${CACHE_MIB} MiB`);
  });

  test('a refused upload leaves no source directory behind', async () => {
    await create('refused');
    await deploy('refused', { name: 'refused v1' });
    const deploys = path.join(petri.dataDir, 'apps', String(appId('refused')), 'deploys');
    const known = readdirSync(deploys).sort();
    // A tar whose second entry climbs out of the target: refused after the first is written.
    const tar = execFileSync('sh', [
      '-c',
      'd=$(mktemp -d) && cd "$d" && echo ok > a.txt && echo no > b.txt && tar cf - a.txt b.txt --transform "s,^b.txt,../escape.txt," 2>/dev/null; rm -rf "$d"',
    ]);
    const res = await fetch(`${petri.apiUrl}/v1/apps/refused/deploys`, {
      method: 'POST',
      headers: { authorization: `Bearer ${petri.token}`, 'content-type': 'application/gzip' },
      body: gzipSync(tar),
    });
    assert.ok(res.status >= 400 && res.status < 500, `refused with a 4xx, got ${res.status}`);
    assert.deepEqual(readdirSync(deploys).sort(), known);
  });

  test('a build cut off by kill -9 leaves no cgroup, namespace, address, mount or source after the restart', async () => {
    await create('cutoff');
    const id = appId('cutoff');
    const deploying = deploy('cutoff', { sleep: true });
    await until(
      async () =>
        (await petri.cli(['logs', '--app', 'cutoff', '-n', '50'])).stdout.includes('a long build started'),
      { timeout: 30_000, message: 'the long build to run' },
    );
    await petri.kill9();
    assert.notEqual((await deploying).code, 0);
    // A source left by an upload cut off by a crash before it was queued.
    const orphan = path.join(petri.dataDir, 'apps', String(id), 'deploys', 'd-orphan', 'src');
    mkdirSync(orphan, { recursive: true });
    writeFileSync(path.join(orphan, 'index.js'), '// half an upload\n');

    // Every hierarchy the driver uses (cgroup v1 here: memory, cpu, pids ...; v2: one).
    const cgroupDirs = readdirSync('/sys/fs/cgroup')
      .map((h) => path.join('/sys/fs/cgroup', h, petri.config.cgroupParent))
      .concat(path.join('/sys/fs/cgroup', petri.config.cgroupParent))
      .filter((d) => existsSync(d));
    const tasks = () =>
      cgroupDirs.flatMap((d) => (existsSync(d) ? readdirSync(d) : [])).filter((n) => n.startsWith('task_'));
    const networkDir = path.join(petri.dataDir, 'runtime', 'network');
    const attachments = () => readdirSync(networkDir).filter((n) => n.startsWith('task_'));
    const netns = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    const appDir = path.join(petri.dataDir, 'apps', String(id));
    assert.ok(tasks().length > 0, 'the cut-off build left its cgroup (the premise)');
    const leftNamespaces = attachments().map(
      (f) => (JSON.parse(readFileSync(path.join(networkDir, f), 'utf8')) as { netns: string }).netns,
    );
    assert.ok(leftNamespaces.length > 0, 'the cut-off build left its namespace (the premise)');

    await petri.startServer();
    await until(async () => tasks().length === 0 && attachments().length === 0, {
      timeout: 15_000,
      message: "the cut-off build's cgroups and address to be reclaimed",
    });
    for (const ns of leftNamespaces) assert.doesNotMatch(netns(), new RegExp(`^${ns}\\b`, 'm'));
    assert.deepEqual(mountsUnder(appDir), [], 'no disk of the build stays mounted');
    const left = readdirSync(path.join(appDir, 'deploys'));
    assert.ok(!left.includes('d-orphan'), 'the orphaned upload is removed');
    for (const d of left) {
      assert.ok(!existsSync(path.join(appDir, 'deploys', d, 'src')), `deploy ${d} keeps no source`);
    }
  });
});
