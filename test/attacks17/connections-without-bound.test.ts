// Attack: the SMTP server has no maxClients and no per-address limit, and an idle connection
// lives for smtp-server's 60 s socket timeout. One sandbox opening connections in a loop
// holds as many of the control plane's file descriptors (and per-connection buffers) as it
// likes: the relay runs in the Petri server process, whose API, store and router reloads
// need descriptors too.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RawSmtp, type Relay, startRelay } from './harness.js';

let r: Relay;
const open: RawSmtp[] = [];
before(async () => {
  r = await startRelay(['idle']);
});
after(async () => {
  for (const c of open) c.close();
  await r?.stop();
});

test('one address cannot hold hundreds of idle SMTP connections to the relay', async () => {
  const tries = 200;
  let greeted = 0;
  for (let i = 0; i < tries; i++) {
    const c = await RawSmtp.open(r.mail.relay.smtpPort).catch(() => undefined);
    if (!c) continue;
    open.push(c);
    if (c.greeting.startsWith('220')) greeted++;
  }
  assert.ok(
    greeted < tries,
    `all ${greeted} of ${tries} connections from one address were greeted and held open: set maxClients and a per-address connection limit (421 for the rest)`,
  );
});
