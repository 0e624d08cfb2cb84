// Bad input through the HTTP send API: the same address twice in `to` violates the
// deliveries' primary key (message_id, recipient) inside reserveMessage, and the API answers
// 500 "the mail API failed; see the server log" instead of a clear 4xx (SMTP dedups repeated
// RCPTs; the HTTP API does not). The failure is not counted as a refusal either.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mailApiToken } from '../../src/domain/mail-credentials.js';
import { type Relay, secrets, startRelay } from './harness.js';

let r: Relay;
before(async () => {
  r = await startRelay(['dup']);
});
after(async () => {
  await r?.stop();
});

test('the same recipient twice through the HTTP API gets a clear answer, not a 500', async () => {
  const res = await fetch(`http://127.0.0.1:${r.mail.relay.httpPort}/v1/send`, {
    method: 'POST',
    headers: { authorization: `Bearer ${mailApiToken(secrets, r.apps.dup!)}` },
    body: JSON.stringify({ to: ['bob@example.org', 'bob@example.org'], subject: 'Hi', text: 'Hello' }),
  });
  const body = await res.text();
  assert.ok(
    res.status === 202 || (res.status >= 400 && res.status < 500),
    `expected 202 (once to bob) or a 4xx saying why; got ${res.status} ${body}`,
  );
});
