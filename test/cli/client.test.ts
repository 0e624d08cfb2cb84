// The client on its own: NDJSON split anywhere across chunks, error bodies that are not
// Petri's, and a stream stopped by its caller.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiError, ConnectionError, PetriClient, parseNdjson } from '../../src/client/index.js';
import { freePort } from '../../src/lib/ports.js';
import { type FakeApi, startFakeApi, TOKEN } from './fake-api.js';

async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  yield* parts;
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of it) out.push(value);
  return out;
}

describe('parseNdjson', () => {
  test('lines split across chunks, a multi-byte character split across bytes, no final newline', async () => {
    const bytes = new TextEncoder().encode('{"a":"é"}\n');
    const values = await collect(
      parseNdjson(chunks('{"n":', '1}\n\n{"n"', ':2}\r\n', bytes.slice(0, 7), bytes.slice(7), '{"n":3}')),
    );
    assert.deepEqual(values, [{ n: 1 }, { n: 2 }, { a: 'é' }, { n: 3 }]);
  });

  test('a line that is not JSON is an error naming it', async () => {
    await assert.rejects(collect(parseNdjson(chunks('{"ok":1}\n<html>\n'))), /not JSON: <html>/);
  });
});

describe('PetriClient', () => {
  let fake: FakeApi;
  before(async () => {
    fake = await startFakeApi();
  });
  after(() => fake.close());

  test('ApiError carries status, code and message', async () => {
    const client = new PetriClient({ url: fake.url, token: TOKEN });
    const err = await client.getApp('nope').catch((e: unknown) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'not_found');
    assert.equal(err.message, "app 'nope' not found; list your apps with 'petri apps'");
  });

  test('a body that is not a Petri error still says what answered', async () => {
    const server = http.createServer((_req, res) => res.writeHead(502).end('<html>Bad Gateway</html>'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const err = await new PetriClient({ url, token: TOKEN }).listApps().catch((e: unknown) => e);
      assert.ok(err instanceof ApiError);
      assert.equal(err.code, 'http_502');
      assert.equal(err.message, `Petri at ${url} answered HTTP 502: <html>Bad Gateway</html>`);
    } finally {
      server.close();
    }
  });

  test('connection refused', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const err = await new PetriClient({ url, token: TOKEN }).whoami().catch((e: unknown) => e);
    assert.ok(err instanceof ConnectionError);
    assert.equal(err.message, `cannot reach Petri at ${url}: connection refused; is 'petri server' running?`);
  });

  test('breaking out of a stream closes it', async () => {
    const client = new PetriClient({ url: fake.url, token: TOKEN });
    for await (const line of client.logs('alpha', { follow: true })) {
      assert.equal(line.source, 'web.1');
      break;
    }
  });

  test('aborting a stream ends it quietly', async () => {
    const client = new PetriClient({ url: fake.url, token: TOKEN });
    const abort = new AbortController();
    const seen: string[] = [];
    for await (const line of client.logs('alpha', { follow: true, signal: abort.signal })) {
      seen.push(line.text);
      abort.abort();
    }
    assert.ok(seen.length >= 1);
  });
});
