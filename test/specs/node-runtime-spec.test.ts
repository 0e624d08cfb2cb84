// A release runs on the Node.js it was built on: every sandbox of it (instances, the release
// command, one-offs) mounts that version from the runtime cache, read-only at /opt/node; a
// release from before runtimes (or built while the registry was away) mounts none and runs
// on the host's. Pure: the specs as data.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { loadConfig } from '../../src/lib/config.js';
import { DataPaths } from '../../src/lib/paths.js';
import { runtimesDir } from '../../src/lib/runtime-cache.js';
import { SecretBox } from '../../src/lib/secrets.js';
import {
  instanceSpec,
  oneOffSpec,
  releasePhaseSpec,
  type SpecContext,
} from '../../src/specs/sandbox-specs.js';
import type { App, Release } from '../../src/store/schema.js';

const app = { id: 7, name: 'shop', memory_mib: 256, cpus: 1, pids: 64, disk_mib: 256 } as App;
const release = (node_version: string | null) =>
  ({
    id: 3,
    version: 3,
    slug_dir: '/data/apps/7/slugs/d1',
    process_types: '{"web":"node server.js"}',
    runtime_env: JSON.stringify({ PATH: '/opt/node/bin:/usr/bin:/bin' }),
    config_sealed: '',
    release_command: 'node migrate.js',
    node_version,
  }) as Release;

function ctx(runtimesDir?: string): SpecContext {
  return {
    config: {
      uidBase: 100_000,
      buildTimeoutMs: 60_000,
      buildCacheMiB: 64,
      ...(runtimesDir && { runtimesDir }),
    },
    paths: new DataPaths('/data'),
    secrets: SecretBox.withKey(randomBytes(32)),
  };
}

function specs(c: SpecContext, r: Release) {
  return [
    instanceSpec(c, { app, release: r, id: 'shop-web-1', type: 'web', index: 1, command: 'node server.js' }),
    releasePhaseSpec(c, { app, release: r, id: 'release-shop-v3' }),
    oneOffSpec(c, { app, release: r, id: 'run-shop-1', port: 5000, command: ['node'], tty: false }),
  ];
}

test("every sandbox of a release mounts the release's Node.js read-only at /opt/node", () => {
  for (const spec of specs(ctx(), release('22.23.5'))) {
    assert.deepEqual(spec.readOnlyMounts, { '/data/runtimes/node/22.23.5': '/opt/node' }, spec.id);
    assert.match(spec.env.PATH ?? '', /^\/opt\/node\/bin:/, spec.id);
  }
  for (const spec of specs(ctx('/var/cache/petri-runtimes'), release('24.0.1'))) {
    assert.deepEqual(spec.readOnlyMounts, { '/var/cache/petri-runtimes/node/24.0.1': '/opt/node' }, spec.id);
  }
});

test("a release without a Node.js version mounts none: it runs on the host's", () => {
  for (const spec of specs(ctx(), release(null))) assert.equal(spec.readOnlyMounts, undefined, spec.id);
});

test('a version that is not one is never turned into a path', () => {
  assert.throws(() => specs(ctx(), release('../../etc')), /not a Node\.js version/);
});

test('runtimesDir: DATA_DIR/runtimes by default, else an absolute path', () => {
  assert.equal(runtimesDir(loadConfig({ dataDir: '/data' }, {}), '/data'), '/data/runtimes');
  assert.equal(
    runtimesDir(loadConfig({ dataDir: '/data', runtimesDir: '/var/cache/petri/' }, {}), '/data'),
    '/var/cache/petri',
  );
  for (const bad of ['runtimes', '', 42]) {
    assert.throws(
      () => loadConfig({ dataDir: '/data', runtimesDir: bad }, {}),
      /configuration 'runtimesDir' must be an absolute path like \/var\/lib\/petri\/runtimes/,
    );
  }
});
