// Bad input gets Petri's answer (issue 11, "Config and input"): JSON bodies are taken as
// sent (no true -> "true", null -> ""), config vars have a count and size cap, and every
// error, also those Fastify and Node's HTTP parser produce, is {"error":{"code","message"}}.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin } from '../../src/domain/auth.js';
import { DataPaths } from '../../src/lib/paths.js';
import { openStore, type Store } from '../../src/store/db.js';
import { buildTestApi } from './test-api.js';

/** Petri's error shape and nothing else. */
function assertPetriError(body: string, status: number, actual: number): { code: string; message: string } {
  assert.equal(actual, status, body);
  const parsed = JSON.parse(body) as { error: { code: string; message: string } };
  assert.deepEqual(Object.keys(parsed), ['error'], body);
  assert.deepEqual(Object.keys(parsed.error).sort(), ['code', 'message'], body);
  assert.equal(typeof parsed.error.code, 'string');
  assert.ok(parsed.error.message.length > 0);
  return parsed.error;
}

/** One raw HTTP exchange, for what inject() cannot send (headers past Node's limit). */
function rawRequest(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (c) => {
      data += c;
    });
    socket.on('error', (err) => (data ? resolve(data) : reject(err)));
    socket.on('close', () => resolve(data));
    socket.end(request);
  });
}

describe('API input', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let token: string;
  const auth = () => ({ authorization: `Bearer ${token}` });

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'petri-input-'));
    db = await openStore(new DataPaths(dir).store);
    token = (await bootstrapAdmin(db))!;
    api = await buildTestApi(dir, db);
    await api.listen({ port: 0, host: '127.0.0.1' });
    const res = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'vars' },
    });
    assert.equal(res.statusCode, 201, res.body);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('an app name of true, null or 7 is refused, not turned into "true", "" or "7"', async () => {
    for (const name of [true, null, 7]) {
      const res = await api.inject({ method: 'POST', url: '/v1/apps', headers: auth(), payload: { name } });
      const error = assertPetriError(res.body, 400, res.statusCode);
      assert.match(error.message, /'name'/);
    }
    // Nor is a field the API does not know (it would be silently ignored).
    const extra = await api.inject({
      method: 'POST',
      url: '/v1/apps',
      headers: auth(),
      payload: { name: 'extra', owner: 'someone-else' },
    });
    assert.match(assertPetriError(extra.body, 400, extra.statusCode).message, /owner/);
    const apps = await db.selectFrom('apps').select('name').execute();
    assert.deepEqual(
      apps.map((a) => a.name),
      ['vars'],
    );
  });

  test('numbers and strings in bodies are not converted: "512" MiB and a number as a config value are 400', async () => {
    const limits = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars',
      headers: auth(),
      payload: { limits: { memoryMiB: '512' } },
    });
    assert.match(assertPetriError(limits.body, 400, limits.statusCode).message, /limits\.memoryMiB/);
    const config = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { set: { A: 1 } },
    });
    assertPetriError(config.body, 400, config.statusCode);
  });

  test('query strings are still read as numbers and booleans', async () => {
    const res = await api.inject({
      method: 'GET',
      url: '/v1/apps/vars/logs?lines=5&follow=false',
      headers: auth(),
    });
    assert.equal(res.statusCode, 200, res.body);
  });

  test('20,000 config vars are refused with the cap; so is a config over 64 KiB in total', async () => {
    const many = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`K${i}`, 'v']));
    const res = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { set: many },
    });
    const error = assertPetriError(res.body, 400, res.statusCode);
    assert.match(error.message, /20000 config vars; at most 500/);
    const big = { A: 'x'.repeat(30_000), B: 'x'.repeat(30_000), C: 'x'.repeat(30_000) };
    const size = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { set: big },
    });
    assert.match(assertPetriError(size.body, 400, size.statusCode).message, /64 KiB/);
    // The cap is on the whole config, not one request: 300 and then 300 more is over it.
    const half = (from: number) =>
      Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`K${from + i}`, 'v']));
    const first = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { set: half(0) },
    });
    assert.equal(first.statusCode, 201, first.body);
    const second = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { set: half(300) },
    });
    assert.match(
      assertPetriError(second.body, 400, second.statusCode).message,
      /600 config vars; at most 500/,
    );
    // Going down is always possible, even from over the cap.
    const unset = await api.inject({
      method: 'PATCH',
      url: '/v1/apps/vars/config',
      headers: auth(),
      payload: { unset: Object.keys(half(0)) },
    });
    assert.equal(unset.statusCode, 201, unset.body);
  });

  test('a bad URL escape and an over-long path parameter get Petri errors', async () => {
    for (const url of ['/v1/apps/%E0%A4%A', `/v1/apps/${'a'.repeat(300)}`]) {
      const res = await api.inject({ method: 'GET', url, headers: auth() });
      assert.equal(assertPetriError(res.body, 400, res.statusCode).code, 'bad_request');
    }
  });

  test('headers over the limit get 431 with a Petri error; a malformed request gets 400 with one', async () => {
    const port = (api.server.address() as net.AddressInfo).port;
    const big = await rawRequest(
      port,
      `GET /v1/apps HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\nConnection: close\r\n\r\n`,
    );
    const [head, body] = big.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 431 /);
    assert.equal(assertPetriError(body!, 431, 431).code, 'headers_too_large');
    const junk = await rawRequest(port, 'NOT HTTP AT ALL\r\n\r\n');
    const [junkHead, junkBody] = junk.split('\r\n\r\n');
    assert.match(junkHead!, /^HTTP\/1\.1 400 /);
    assert.equal(assertPetriError(junkBody!, 400, 400).code, 'bad_request');
  });
});
