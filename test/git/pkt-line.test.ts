// pkt-line framing as git reads it: the service header of a smart-HTTP advertisement.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isGitService, parsePktLines, pktLine, serviceHeader } from '../../src/git/pkt-line.js';

test('a pkt-line is four hex digits of length, the four included, then the data', () => {
  assert.equal(pktLine('a\n').toString(), '0006a\n');
  assert.equal(pktLine('').toString(), '0004');
  assert.equal(pktLine(Buffer.alloc(65516)).subarray(0, 4).toString(), 'fff0');
  assert.throws(() => pktLine(Buffer.alloc(65517)), /exceeds 65520/);
});

test('the service header is what git-http-backend sends before the refs', () => {
  assert.equal(serviceHeader('git-receive-pack').toString(), '001f# service=git-receive-pack\n0000');
  assert.equal(serviceHeader('git-upload-pack').toString(), '001e# service=git-upload-pack\n0000');
});

test('pkt-lines parse back, flushes as null; bad lengths are refused', () => {
  const parsed = parsePktLines(Buffer.concat([serviceHeader('git-upload-pack'), pktLine('x')]));
  assert.deepEqual(
    parsed.map((p) => p?.toString() ?? null),
    ['# service=git-upload-pack\n', null, 'x'],
  );
  assert.throws(() => parsePktLines(Buffer.from('zzzz')), /bad pkt-line length/);
  assert.throws(() => parsePktLines(Buffer.from('0009ab')), /bad pkt-line length 9/);
  assert.throws(() => parsePktLines(Buffer.from('0002')), /bad pkt-line length 2/);
});

test('only the two smart-HTTP services are served', () => {
  assert.ok(isGitService('git-receive-pack'));
  assert.ok(isGitService('git-upload-pack'));
  assert.ok(!isGitService('git-upload-archive'));
  assert.ok(!isGitService(undefined));
});
