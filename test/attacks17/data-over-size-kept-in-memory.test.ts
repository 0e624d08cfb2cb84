// Attack: the SMTP size limit (1 MiB) is only checked once DATA has ended; until then the
// relay keeps every byte a client sends in memory (relay.ts onData pushes each chunk into an
// array whatever stream.sizeExceeded says). One authenticated app streaming a 64 MiB DATA
// (or a few at once) grows the control plane's memory by as much: the relay runs inside the
// Petri server, so a tenant can exhaust the control plane's memory with a loop.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RawSmtp, type Relay, startRelay } from './harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** arrayBuffers once a full GC's garbage is gone: V8 frees old ArrayBuffers on a background
 * thread after the GC, so the figure falls for a while after gc() returns. The event loop is
 * held meanwhile (the relay reads nothing more); at most 2 s. */
function settledArrayBuffers(): number {
  gc();
  const tick = new Int32Array(new SharedArrayBuffer(4));
  let last = process.memoryUsage().arrayBuffers;
  for (const deadline = Date.now() + 2000; Date.now() < deadline; ) {
    Atomics.wait(tick, 0, 0, 25);
    const now = process.memoryUsage().arrayBuffers;
    if (now === last) return now;
    last = now;
  }
  return last;
}

let r: Relay;
before(async () => {
  r = await startRelay(['hog']);
});
after(async () => {
  await r?.stop();
});

test('DATA beyond the size limit is not kept in the control plane memory', async () => {
  const c = await RawSmtp.open(r.mail.relay.smtpPort);
  await c.login(r.apps.hog!);
  assert.match(await c.cmd('MAIL FROM:<hog@petri.test>'), /^250/);
  assert.match(await c.cmd('RCPT TO:<bob@example.org>'), /^250/);
  assert.match(await c.cmd('DATA'), /^354/);
  gc();
  const base = process.memoryUsage().arrayBuffers;
  const line = `${'x'.repeat(998)}\r\n`;
  const chunk = Buffer.from(line.repeat(1024)); // 1 MiB
  const totalMiB = 64;
  for (let i = 0; i < totalMiB; i++) {
    if (!c.socket.write(chunk)) await new Promise((res) => c.socket.once('drain', res));
  }
  // Everything was taken by the kernel; the relay has read all but the socket buffers.
  await new Promise<void>((res) => c.socket.write('', () => res()));
  const reply = c.cmd('.');
  const held = (settledArrayBuffers() - base) / 2 ** 20;
  assert.match(await reply, /^552/, 'the message is refused for its size');
  c.close();
  assert.ok(
    held < 16,
    `the relay held ${held.toFixed(1)} MiB of a ${totalMiB} MiB DATA in memory (limit 1 MiB): it should stop keeping bytes once the size limit is passed`,
  );
});
