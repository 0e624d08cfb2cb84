// The Node.js runtime cache against the real npm registry, sparingly: one version (the newest
// 22.x) is downloaded once per machine into the runtime cache the tests share and keep
// between runs (test-runtimes.ts; the e2e servers use it too), and checked as installed on
// every run. A local fake registry serves only the broken download, to two builds at once.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  type Stats,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { create as createTar } from 'tar';
import { NodeRuntimes, nodePackageName } from '../../src/build/node-runtimes.js';
import { chooseNodeVersion } from '../../src/build/node-versions.js';
import { isUserError } from '../../src/lib/errors.js';
import { execOk } from '../../src/lib/exec.js';
import { freePort } from '../../src/lib/ports.js';
import { installedNodeVersions, nodeRuntimesDir } from '../../src/lib/runtime-cache.js';
import { until } from '../../src/lib/until.js';
import { TEST_RUNTIMES } from './test-runtimes.js';

const dirs: string[] = [];
function freshDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** What the cache's node/ holds besides installed versions and the list's cache. */
function leftovers(root: string): string[] {
  let names: string[] = [];
  try {
    names = readdirSync(nodeRuntimesDir(root));
  } catch {}
  return names.filter((n) => n.startsWith('.') && n !== '.versions.json');
}

async function buildError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(isUserError(err), `a user error, got ${String(err)}`);
    assert.equal(err.code, 'build_failed');
    return err.message;
  }
  assert.fail('expected a build error');
}

const escaped = (v: string) => v.replaceAll('.', '\\.');

describe('Node.js runtimes from the npm registry', () => {
  let runtimes: NodeRuntimes;
  let version: string;

  before(() => {
    runtimes = new NodeRuntimes({ dir: TEST_RUNTIMES });
  });

  test('22.x is installed (once per machine), runs, and is read-only for everyone but root', async () => {
    const said: string[] = [];
    const started = Date.now();
    const node = await runtimes.provide('22.x', (text) => said.push(text));
    assert.ok(node);
    assert.match(node.version, /^22\.\d+\.\d+$/);
    assert.equal(node.reason, 'engines.node "22.x"');
    version = node.version;
    const output = said.join('');
    if (output) {
      assert.match(output, new RegExp(`Node\\.js ${escaped(version)} installed in [0-9.]+ s`));
      console.log(`# installed Node.js ${version} in ${Date.now() - started} ms`);
    }
    const out = await execOk(path.join(node.dir, 'bin', 'node'), ['-p', 'process.version']);
    assert.equal(out.stdout.trim(), `v${version}`);
    for (const rel of ['', 'bin', 'bin/node', 'include/node/node.h']) {
      const st: Stats = statSync(path.join(node.dir, rel));
      assert.equal(st.uid, process.getuid?.());
      assert.equal(st.mode & 0o022, 0, `${rel} is writable by group or others`);
      assert.equal(st.mode & 0o004, 0o004, `${rel} is readable by everyone (every app's user)`);
    }
    assert.ok((await installedNodeVersions(TEST_RUNTIMES)).includes(version));

    // Asked again: at once, with nothing said about installing.
    const again: string[] = [];
    const t0 = Date.now();
    assert.equal((await runtimes.provide('22.x', (t) => again.push(t)))?.dir, node.dir);
    assert.deepEqual(again, []);
    console.log(`# an installed version: provided in ${Date.now() - t0} ms`);
  });

  test("the offer is the registry's list; without engines.node the newest LTS, an even major", async () => {
    const offer = await runtimes.offer();
    assert.equal(offer.source, 'registry');
    assert.ok(offer.versions.includes(version));
    assert.ok(offer.versions.length > 50, `${offer.versions.length} versions`);
    const lts = chooseNodeVersion(undefined, offer);
    assert.ok(lts && Number(lts.version.split('.')[0]) % 2 === 0, lts?.version);
    assert.ok(Number(lts.version.split('.')[0]) >= 22);
  });

  test('">=99" and a version the registry does not have: build errors, nothing installed or left behind', async () => {
    const root = freshDir('petri-runtimes-');
    const fresh = new NodeRuntimes({ dir: root });
    const message = await buildError(fresh.provide('>=99', () => {}));
    assert.match(
      message,
      /^no Node\.js on offer satisfies engines\.node ">=99" in package\.json; on offer: /,
    );
    assert.match(message, new RegExp(`on offer: .*${escaped(version)}`));
    assert.match(await buildError(fresh.provide('22.99.99', () => {})), /engines\.node "22\.99\.99"/);
    // Past the offer (a list older than the registry's): the registry itself says no.
    assert.equal(
      await buildError(fresh.ensure('22.99.99')),
      `the npm registry has no ${nodePackageName()}@22.99.99; ask for a version it has (petri stacks lists the installed ones)`,
    );
    assert.deepEqual(await installedNodeVersions(root), []);
    assert.deepEqual(leftovers(root), []);
  });

  test('a list past its time serves at once while a new one is fetched: no build waits twice', async () => {
    const root = freshDir('petri-runtimes-');
    const listFile = path.join(nodeRuntimesDir(root), '.versions.json');
    const fetchedAt = () => (JSON.parse(readFileSync(listFile, 'utf8')) as { fetchedAt: number }).fetchedAt;
    const expiring = new NodeRuntimes({ dir: root, listTtlMs: 1 });
    const first = await expiring.offer();
    const firstAt = fetchedAt();
    await new Promise((resolve) => setTimeout(resolve, 5)); // past its 1 ms
    const t0 = Date.now();
    assert.equal(await expiring.offer(), first, 'the expired list');
    assert.ok(Date.now() - t0 < 200, `${Date.now() - t0} ms`);
    await until(() => fetchedAt() > firstAt, { timeout: 30_000, message: 'the new list, fetched meanwhile' });
  });

  test('the registry away: the installed versions are on offer; with none, an app asking for none builds on the host', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/`;
    const away = new NodeRuntimes({
      dir: TEST_RUNTIMES,
      listTtlMs: 0,
      npmEnv: { npm_config_registry: closed },
    });
    const offer = await away.offer();
    assert.equal(offer.source, 'installed');
    assert.ok(offer.versions.includes(version));
    assert.equal((await away.provide(version, () => {}))?.version, version);
    assert.match(
      await buildError(away.provide('>=99', () => {})),
      /no installed Node\.js satisfies engines\.node ">=99" in package\.json \(installed: .*\), and the npm registry could not be asked/,
    );

    const empty = new NodeRuntimes({
      dir: freshDir('petri-runtimes-'),
      npmEnv: { npm_config_registry: closed },
    });
    assert.equal(await empty.provide(undefined, () => {}), undefined);
  });
});

describe('a broken download (a local fake registry)', () => {
  let server: http.Server;
  let registry: string;
  let tarballRequests = 0;
  const name = nodePackageName();

  before(async () => {
    const work = freshDir('petri-fake-node-');
    mkdirSync(path.join(work, 'package', 'bin'), { recursive: true });
    writeFileSync(path.join(work, 'package', 'package.json'), JSON.stringify({ name, version: '22.0.0' }));
    writeFileSync(path.join(work, 'package', 'bin', 'node'), '#!/bin/sh\necho v22.0.0\n', { mode: 0o755 });
    const file = path.join(work, 'node.tgz');
    await createTar({ gzip: true, cwd: work, file, portable: true }, ['package']);
    const good = readFileSync(file);
    const integrity = `sha512-${createHash('sha512').update(good).digest('base64')}`;
    // What arrives is damaged on the way: one byte differs from what the registry hashed.
    const damaged = Buffer.from(good);
    damaged[damaged.length - 20] = (damaged[damaged.length - 20] ?? 0) ^ 0xff;
    server = http.createServer((req, res) => {
      if (req.url === `/${name}`) {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            name,
            'dist-tags': { latest: '22.0.0' },
            versions: {
              '22.0.0': {
                name,
                version: '22.0.0',
                dist: { tarball: `${base}/${name}/-/${name}-22.0.0.tgz`, integrity },
              },
            },
            time: { '22.0.0': '2024-04-24T00:00:00.000Z' },
          }),
        );
        return;
      }
      if (req.url === `/${name}/-/${name}-22.0.0.tgz`) {
        tarballRequests++;
        res.setHeader('content-type', 'application/octet-stream');
        res.end(damaged);
        return;
      }
      res.statusCode = 404;
      res.end('{}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  test('an integrity mismatch is a build error that says so, downloaded once for two builds; nothing installed or left behind', async () => {
    const root = freshDir('petri-runtimes-');
    const runtimes = new NodeRuntimes({
      dir: root,
      npmEnv: { npm_config_registry: registry },
      // No npm at a known place: every release of the fake registry is on offer.
      npmPaths: [],
    });
    // Two builds at once: one download (the other waits for it), and both are told.
    const said: string[] = [];
    const messages = await Promise.all(
      [0, 1].map(() => buildError(runtimes.provide('22.x', (t) => said.push(t)))),
    );
    for (const message of messages) {
      assert.match(
        message,
        /^the download of Node\.js 22\.0\.0 is broken: its sha512 does not match the npm registry's integrity hash, so it was not installed; deploy again/,
      );
    }
    assert.equal(said.filter((t) => t.includes('Installing Node.js 22.0.0')).length, 1, said.join(''));
    assert.equal(said.filter((t) => t.includes('Waiting for Node.js 22.0.0')).length, 1, said.join(''));
    assert.ok(tarballRequests >= 1, 'the tarball was fetched');
    assert.deepEqual(await installedNodeVersions(root), []);
    assert.deepEqual(leftovers(root), []);
  });
});

describe('a full runtime cache (maxNodeVersions)', () => {
  const DAY = 24 * 3_600_000;
  function cacheWith(versions: Record<string, number>): string {
    const root = freshDir('petri-runtimes-');
    for (const [v, ago] of Object.entries(versions)) {
      const dir = path.join(nodeRuntimesDir(root), v);
      mkdirSync(path.join(dir, 'bin'), { recursive: true });
      const at = new Date(Date.now() - ago);
      utimesSync(dir, at, at);
    }
    return root;
  }

  test('makes room by removing the version used longest ago that no release runs on', async () => {
    const root = cacheWith({ '20.1.0': 3 * DAY, '20.2.0': 9 * DAY, '20.3.0': 2 * DAY, '20.4.0': 5 * DAY });
    const runtimes = new NodeRuntimes({ dir: root, maxVersions: 3, inUse: async () => new Set(['20.2.0']) });
    await runtimes.makeRoom();
    // Two had to go for one more to fit: not 20.2.0 (a release runs on it), the two used longest ago.
    assert.deepEqual(await installedNodeVersions(root), ['20.2.0', '20.3.0']);
    assert.deepEqual(leftovers(root), []);
  });

  test('never removes what a release runs on or a build used today: the build is told', async () => {
    const root = cacheWith({ '20.1.0': 3 * DAY, '20.2.0': 3600_000 });
    const runtimes = new NodeRuntimes({
      dir: root,
      maxVersions: 2,
      inUse: async () => new Set(['20.1.0']),
      // No registry is asked: the refusal comes first.
      npmEnv: { npm_config_registry: 'http://127.0.0.1:9/' },
    });
    assert.equal(
      await buildError(runtimes.ensure('20.9.0')),
      "Petri's runtime cache is full: it holds 2 Node.js versions (maxNodeVersions 2), each run by a release or used by a build today; ask for one of them in engines.node (20.1.0, 20.2.0), or ask the operator to raise maxNodeVersions",
    );
    assert.deepEqual(await installedNodeVersions(root), ['20.1.0', '20.2.0']);
    // A build that uses an installed version marks it used now.
    const dir = await runtimes.ensure('20.1.0');
    assert.ok(Date.now() - statSync(dir).mtimeMs < 60_000);
  });
});
