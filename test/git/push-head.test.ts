// The start of a receive-pack request (ref commands, pack header) as read before git sees
// it, and the report-status that refuses a push with the reason.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { FLUSH, parsePktLines, pktLine } from '../../src/git/pkt-line.js';
import { MAX_COMMAND_BYTES, parsePushHead, readPushHead, refusePush } from '../../src/git/push-head.js';

const ZERO = '0'.repeat(40);
const NEW = 'a'.repeat(40);

function packHeader(objects: number): Buffer {
  const head = Buffer.alloc(12);
  head.write('PACK', 0, 'latin1');
  head.writeUInt32BE(2, 4);
  head.writeUInt32BE(objects, 8);
  return head;
}

function request(objects: number | undefined): Buffer {
  return Buffer.concat([
    pktLine(`${ZERO} ${NEW} refs/heads/main\0report-status side-band-64k agent=git/2.43\n`),
    pktLine(`${ZERO} ${NEW} refs/tags/v1\n`),
    FLUSH,
    ...(objects === undefined ? [] : [packHeader(objects), Buffer.from('rest of the pack')]),
  ]);
}

describe('push head', () => {
  test('names the refs, the capabilities and the pack object count', () => {
    const head = parsePushHead(request(4_000_000_000), false);
    assert.deepEqual(head.refs, ['refs/heads/main', 'refs/tags/v1']);
    assert.ok(head.capabilities.includes('side-band-64k'));
    assert.equal(head.objects, 4_000_000_000);
  });

  test('a deletion-only push has no pack', () => {
    assert.equal(parsePushHead(request(undefined), true).objects, undefined);
  });

  test('is read from a stream arriving byte by byte, and the rest stays for git', async () => {
    const body = new PassThrough();
    const bytes = request(7);
    const reading = readPushHead(body, new AbortController().signal);
    for (const byte of bytes.subarray(0, 120)) body.write(Buffer.from([byte]));
    body.end(bytes.subarray(120));
    const head = await reading;
    assert.equal(head.objects, 7);
    const rest: Buffer[] = [];
    for await (const chunk of body) rest.push(chunk as Buffer);
    assert.deepEqual(Buffer.concat([head.bytes, ...rest]), bytes);
  });

  test('endless ref commands are refused after 1 MiB', async () => {
    const body = new PassThrough();
    const line = pktLine(`${ZERO} ${NEW} refs/heads/${'x'.repeat(900)}\n`);
    const reading = readPushHead(body, new AbortController().signal);
    for (let sent = 0; sent <= MAX_COMMAND_BYTES + line.length; sent += line.length) body.write(line);
    await assert.rejects(reading, /more than 1048576 bytes of ref commands/);
  });

  test('stops when its signal aborts (the pusher hung up)', async () => {
    const controller = new AbortController();
    const reading = readPushHead(new PassThrough(), controller.signal);
    controller.abort(new Error('gone'));
    await assert.rejects(reading, /gone/);
  });

  test('a refusal is report-status in band 1 and the reason in band 2', () => {
    const head = parsePushHead(request(10), false);
    const packets = parsePktLines(refusePush(head, 'too many objects'));
    assert.equal(packets.at(-1), null);
    const bands = packets.filter((p) => p !== null).map((p) => [p[0], p.subarray(1)] as const);
    assert.deepEqual(bands[0], [2, Buffer.from('too many objects\n')]);
    const report = parsePktLines(bands[1]![1]).map((p) => p?.toString() ?? null);
    assert.deepEqual(report, [
      'unpack too many objects\n',
      'ng refs/heads/main push refused\n',
      'ng refs/tags/v1 push refused\n',
      null,
    ]);
  });
});
