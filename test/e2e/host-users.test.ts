// Other users of the host read nothing of Petri's data dir: not the apps' logs (apps print
// secrets), sources, slugs or build cache, not a running instance's /app, the store, the
// sealing key, the admin token or add-on backups; neither may another app's uid. Apps still
// build and run, and their add-ons work. A data dir left open by an earlier Petri is closed
// at the next start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { until } from '../../src/lib/until.js';
import { FIXTURES, TestPetri } from './petri.js';

const PROBE = path.join(FIXTURES, 'addon-probe');
const NOBODY = 65534;

describe('host users and the data dir', () => {
  let petri: TestPetri;

  const ok = async (argv: string[]) => {
    const r = await petri.cli(argv);
    assert.equal(r.code, 0, `petri ${argv.join(' ')}: ${r.stderr}`);
    return r;
  };
  /** A JSON answer of the probe app through the router. */
  const get = async (urlPath: string): Promise<unknown> => {
    const r = await petri.app('probe', urlPath);
    assert.equal(r.status, 200, `${urlPath}: ${r.body}`);
    return JSON.parse(r.body);
  };

  before(async () => {
    petri = await TestPetri.start({
      bootTimeoutMs: 30_000,
      addons: { postgres: { mode: 'off' }, mysql: { mode: 'off' }, redis: { mode: 'managed' } },
    });
    await ok(['apps', 'create', 'probe']);
    await ok(['deploy', PROBE, '--app', 'probe']);
    await ok(['addons', 'create', 'redis', '--app', 'probe']);
    await get('/redis/put?k=kept&v=yes');
    await ok(['addons', 'backup', 'redis', '--app', 'probe']);
  });
  after(async () => {
    await petri?.destroy();
  });

  /** Every path under the data dir that `uid` can read (files) or list (directories). */
  function readableBy(uid: number): string[] {
    const paths = walk(petri.dataDir);
    // test -r is the kernel's own answer (access(2) with the real uid), one shell for all.
    const result = spawnSync(
      'setpriv',
      [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        '--clear-groups',
        '--',
        'sh',
        '-c',
        'while IFS= read -r f; do [ -r "$f" ] && printf "%s\\n" "$f"; done; exit 0',
      ],
      { input: `${paths.join('\n')}\n`, encoding: 'utf8' },
    );
    assert.equal(result.status, 0, result.stderr);
    return result.stdout.split('\n').filter(Boolean);
  }

  /** What a user would go for, present (so "unreadable" is not "absent"). */
  async function assertTargetsExist(): Promise<void> {
    const d = petri.dataDir;
    const app = path.join(d, 'apps', '1');
    // Adding the add-on restarted the app with its URL: the instance it replaced may still be
    // going away (its directory half removed), so wait for the one instance that remains.
    await until(() => readdirSync(path.join(app, 'instances')).length === 1, {
      timeout: 30_000,
      message: 'one instance of probe',
    });
    const instance = readdirSync(path.join(app, 'instances'))[0] ?? '';
    const slug = readdirSync(path.join(app, 'slugs'))[0] ?? '';
    for (const p of [
      path.join(d, 'logs', 'probe.log'),
      path.join(d, 'petri.db'),
      path.join(d, 'secret.key'),
      path.join(d, 'admin.token'),
      path.join(app, 'slugs', slug, 'wsgi.py'),
      path.join(app, 'instances', instance, 'app', 'wsgi.py'),
      path.join(app, 'instances', instance, 'output.log'),
    ]) {
      assert.ok(existsSync(p), `${p} exists`);
    }
    assert.ok(
      walk(path.join(d, 'backups')).some((p) => p.endsWith('.dump')),
      'a backup exists',
    );
  }

  test('an unprivileged user and another app read nothing, while the app runs with its add-on', async () => {
    await assertTargetsExist();
    assert.deepEqual(readableBy(NOBODY), [], 'readable by nobody');
    // The uid a second app would run as: a tenant who got a shell on the host through it.
    assert.deepEqual(readableBy(petri.config.uidBase + 2), [], "readable by another app's uid");
    assert.deepEqual(await get('/redis/all'), { kept: 'yes' });
  });

  test('a data dir left open is closed at the next start, and the app keeps working', async () => {
    // As an older Petri left it: everything readable by all (the servers' own data aside).
    const open = spawnSync('sh', [
      '-c',
      `find "$1" -path "$1/addons/*" -prune -o -exec chmod go+rX {} +`,
      'sh',
      petri.dataDir,
    ]);
    // A file the running Petri replaces meanwhile (a network record) may vanish between find
    // and chmod: that is no failure; what counts is that the data dir was opened, below.
    assert.ok(
      open.status === 0 || /No such file or directory/.test(String(open.stderr)),
      String(open.stderr),
    );
    assert.ok(
      readableBy(NOBODY).includes(path.join(petri.dataDir, 'logs', 'probe.log')),
      'the data dir was opened',
    );
    await petri.kill9();
    await petri.startServer();
    assert.deepEqual(readableBy(NOBODY), [], 'readable by nobody after the start');
    assert.deepEqual(await get('/redis/all'), { kept: 'yes' });
    await ok(['deploy', PROBE, '--app', 'probe']);
    assert.deepEqual(await get('/redis/all'), { kept: 'yes' });
  });
});

/** Every path under `dir`, depth first, not following links. */
function walk(dir: string): string[] {
  const out: string[] = [dir];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = path.join(dir, name);
    if (lstatSync(p, { throwIfNoEntry: false })?.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}
