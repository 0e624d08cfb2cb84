// Attack: the HTTP send API reads a request's whole body (up to 1 MiB + 64 KiB) into memory
// before anything else, with no bound on how many requests one app has in flight. An app
// that opens 64 requests at once and sends each a 1 MiB body without finishing it holds
// 64 MiB of the control plane's memory (and more with more requests) for as long as Node's
// request timeout (300 s) lets it; the relay runs inside the Petri server.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { mailApiToken } from '../../src/domain/mail-credentials.js';
import { type Relay, secrets, startRelay } from './harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let r: Relay;
const requests: http.ClientRequest[] = [];
before(async () => {
  r = await startRelay(['bulky']);
});
after(async () => {
  for (const q of requests) q.destroy();
  await r?.stop();
});

test("one app's unfinished HTTP sends do not hold tens of MiB of the server's memory", async () => {
  gc();
  const base = process.memoryUsage().arrayBuffers;
  const body = Buffer.alloc(1024 * 1024, 'a');
  const n = 64;
  const agent = new http.Agent({ maxSockets: n });
  await Promise.all(
    Array.from({ length: n }, async () => {
      const q = http.request({
        host: '127.0.0.1',
        port: r.mail.relay.httpPort,
        path: '/v1/send',
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${mailApiToken(secrets, r.apps.bulky!)}`,
          'content-length': String(body.length + 10),
        },
      });
      q.on('error', () => undefined);
      requests.push(q);
      await new Promise<void>((res) => q.write(body, () => res()));
    }),
  );
  // Every body was handed to the kernel; wait until the server has read them (its buffers
  // grew by most of them) or a deadline passes.
  const deadline = Date.now() + 5000;
  let held = 0;
  while (Date.now() < deadline) {
    gc();
    held = (process.memoryUsage().arrayBuffers - base - body.length) / 2 ** 20;
    if (held > 32) break;
    await new Promise((res) => setImmediate(res));
  }
  assert.ok(
    held < 32,
    `${n} unfinished requests of one app hold ${held.toFixed(1)} MiB in the relay: limit the requests in flight per app (429) or stream the body and stop at the size limit`,
  );
});
