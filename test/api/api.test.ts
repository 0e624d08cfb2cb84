// The API's contract without the rest of the platform: tokens, validation messages that
// name the field, error shapes, refused uploads, the OpenAPI document.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { Header, Pack } from 'tar';
import { bootstrapAdmin } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

/** A raw tar entry, for archives no honest packer would make. */
function tarEntry(
  name: string,
  body: string,
  type: 'File' | 'SymbolicLink' = 'File',
  linkpath?: string,
): Buffer {
  const data = Buffer.from(body);
  const header = new Header({
    path: name,
    mode: 0o644,
    size: type === 'File' ? data.length : 0,
    type,
    linkpath,
    mtime: new Date(0),
  });
  header.encode();
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([header.block!, type === 'File' ? Buffer.concat([data, pad]) : Buffer.alloc(0)]);
}

function tarGz(...entries: Buffer[]): Buffer {
  return gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));
}

describe('API', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  let nudges = 0;
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-api-'));
    db = await openStore(new DataPaths(dir).store);
    token = (await bootstrapAdmin(db))!;
    api = await buildTestApi(
      dir,
      db,
      { maxUploadBytes: 64 * 1024, maxUnpackedBytes: 64 * 1024 },
      { nudge: () => nudges++ },
    );
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every /v1 route needs a valid bearer token', async () => {
    const missing = await api.inject({ method: 'GET', url: '/v1/apps' });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json().error.code, 'unauthorized');
    assert.match(missing.json().error.message, /petri login/);
    const wrong = await api.inject({
      method: 'GET',
      url: '/v1/apps',
      headers: { authorization: 'Bearer nope' },
    });
    assert.equal(wrong.statusCode, 401);
    const ok = await api.inject({ method: 'GET', url: '/v1/whoami', headers: auth() });
    assert.deepEqual(ok.json().user, {
      name: 'admin',
      role: 'admin',
      email: null,
      kind: 'person',
      provider: 'local',
      teams: [{ name: 'admin', role: 'admin', personal: true }],
    });
  });

  test('tokens are stored only as hashes', async () => {
    const rows = await db.selectFrom('tokens').select('hash').execute();
    assert.equal(rows.length, 1);
    assert.notEqual(rows[0]!.hash, token);
    assert.match(rows[0]!.hash, /^[0-9a-f]{64}$/);
  });

  test('bad app names get 400 with the rule and the name', async () => {
    const res = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'My App' },
    });
    assert.equal(res.statusCode, 400);
    assert.deepEqual(res.json(), {
      error: { code: 'bad_request', message: "app name must match ^[a-z][a-z0-9-]{1,29}$, got 'My App'" },
    });
  });

  test('a missing field is named in the 400', async () => {
    const res = await api.inject({ method: 'POST', url: '/v1/apps', headers: auth(), payload: {} });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().error.message, /'name'/);
    const limits = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'ok-name' },
    });
    assert.equal(limits.statusCode, 201);
    const bad = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/ok-name',
      headers: auth(),
      payload: { limits: { memoryMiB: 1 } },
    });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().error.message, /limits\.memoryMiB/);
  });

  test('creating an existing app is a conflict; an unknown app is 404 with a hint', async () => {
    const again = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'ok-name' },
    });
    assert.equal(again.statusCode, 409);
    const missing = await api.inject({ method: 'GET', url: '/v1/apps/ghost', headers: auth() });
    assert.equal(missing.statusCode, 404);
    assert.match(missing.json().error.message, /app 'ghost' not found; list your apps with 'petri apps'/);
  });

  test('limits are set per app', async () => {
    const res = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/ok-name',
      headers: auth(),
      payload: { limits: { memoryMiB: 256, cpus: 0.5 } },
    });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.json().limits, { memoryMiB: 256, cpus: 0.5, pids: 256, diskMiB: 1024 });
  });

  test('a new idle period nudges the loops (the idle loop, backed off at rest, applies it at once)', async () => {
    const before = nudges;
    const res = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/ok-name',
      headers: auth(),
      payload: { settings: { idleTimeoutSeconds: 300 } },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(nudges, before + 1);
  });

  const upload = (payload: Buffer) =>
    api.inject({
      method: 'POST',
      url: '/v1/apps/ok-name/deploys',
      headers: { ...auth(), 'content-type': 'application/gzip' },
      payload,
    });

  for (const [what, archive, entry] of [
    ['a path with ..', tarGz(tarEntry('../../escape.txt', 'x')), '../../escape.txt'],
    ['an absolute path', tarGz(tarEntry('/etc/cron.d/evil', 'x')), '/etc/cron.d/evil'],
    ['a symlink out of the tree', tarGz(tarEntry('link', '', 'SymbolicLink', '/etc')), 'link'],
  ] as const) {
    test(`an upload with ${what} is refused with 400 naming the entry, and nothing is queued`, async () => {
      const res = await upload(archive);
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error.code, 'invalid_archive');
      assert.ok(res.json().error.message.includes(`'${entry}'`), res.json().error.message);
      const deploys = await db.selectFrom('deploys').selectAll().execute();
      assert.equal(deploys.length, 0);
      assert.deepEqual(
        readdirSync(path.join(dir, 'apps')).flatMap((a) => readdirSync(path.join(dir, 'apps', a, 'deploys'))),
        [],
      );
    });
  }

  test('an upload over the size cap gets 413', async () => {
    const big = tarGz(tarEntry('big.bin', 'x'.repeat(100 * 1024)));
    const res = await upload(big);
    assert.equal(res.statusCode, 413);
    assert.equal(res.json().error.code, 'payload_too_large');
  });

  test('a good upload is queued as a deploy', async () => {
    const pack = new Pack({ cwd: path.join(import.meta.dirname, '../fixtures/apps/zero-dep'), gzip: true });
    pack.add('package.json');
    pack.add('server.js');
    pack.end();
    const chunks: Buffer[] = [];
    for await (const c of pack) chunks.push(c as Buffer);
    const res = await upload(Buffer.concat(chunks));
    assert.equal(res.statusCode, 202, res.body);
    assert.equal(res.json().deploy.status, 'queued');
    assert.ok(nudges > 0);
  });

  test('the OpenAPI document lists every route', async () => {
    const res = await api.inject({ method: 'GET', url: '/v1/openapi.json' });
    assert.equal(res.statusCode, 200);
    const paths = Object.keys(res.json().paths);
    for (const p of [
      '/v1/apps',
      '/v1/apps/{name}',
      '/v1/apps/{name}/deploys',
      '/v1/apps/{name}/logs',
      '/v1/whoami',
    ]) {
      assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
    }
  });
});
