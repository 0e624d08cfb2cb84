// The check the fake API goes through: it refuses what the server could not answer, so it
// is no rubber stamp; and the document it checks against covers every route, answers too.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { apiDocument, ContractChecker } from './contract.js';
import { cannedApps } from './fake-api.js';

describe('the API contract the fake is held to', () => {
  test('an answer the server could give passes; one it could not is refused, with why', async () => {
    const checker = await ContractChecker.load();
    const app = cannedApps()[0]!;
    assert.equal(checker.checkAnswer('GET', '/v1/apps/alpha', 200, 'application/json', app), undefined);
    const { url: _url, ...noUrl } = app;
    assert.match(
      checker.checkAnswer('GET', '/v1/apps/alpha', 200, 'application/json', noUrl) ?? '',
      /required property 'url'/,
    );
    assert.match(
      checker.checkAnswer('GET', '/v1/apps/alpha', 200, 'application/json', { ...app, status: 'asleep' }) ??
        '',
      /status must be equal to one of the allowed values/,
    );
    assert.match(
      checker.checkAnswer('GET', '/v1/apps/alpha', 404, 'application/json', {
        error: { code: 'no_such_app', message: 'gone' },
      }) ?? '',
      /code must be equal to one of the allowed values/,
    );
    assert.match(checker.checkAnswer('GET', '/v1/apps/alpha', 302, undefined) ?? '', /status not documented/);
    assert.match(
      checker.checkAnswer('GET', '/v1/nothing', 200, 'application/json', {}) ?? '',
      /no such route/,
    );
    // NDJSON: each line against the route's line schema.
    assert.equal(
      checker.checkAnswer('GET', '/v1/apps/alpha/logs?lines=5', 200, 'application/x-ndjson', {
        time: '2025-01-02T03:05:01.123Z',
        source: 'web.1',
        text: 'hi',
      }),
      undefined,
    );
    assert.match(
      checker.checkAnswer('GET', '/v1/apps/alpha/deploys/d1/stream', 200, 'application/x-ndjson', {
        type: 'end',
      }) ?? '',
      /deploy|type/,
    );
  });

  test('a request body the server would refuse is caught', async () => {
    const checker = await ContractChecker.load();
    assert.equal(checker.checkRequest('PATCH', '/v1/apps/alpha/formation', { web: 2 }), undefined);
    assert.ok(checker.checkRequest('PATCH', '/v1/apps/alpha/formation', { web: '2' }));
    assert.ok(checker.checkRequest('POST', '/v1/apps', { name: 'x', extra: true }));
  });

  test('every route documents its successful answer and its error body', async () => {
    const doc = await apiDocument();
    const missing: string[] = [];
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const codes = Object.keys(operation.responses ?? {});
        // `petri run` is a WebSocket: its protocol is in the route's description. The web
        // sign-in's forms answer a redirect (303) on success.
        const success = path.endsWith('/run') || codes.some((c) => c.startsWith('2') || c === '303');
        if (!success || !codes.includes('4XX'))
          missing.push(`${method.toUpperCase()} ${path}: ${codes.join(',')}`);
      }
    }
    assert.deepEqual(missing, []);
  });
});
