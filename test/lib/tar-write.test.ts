// The bundle's tar writer: what it writes reads back with the system's tar (long names, links,
// empty files, modes, root's ownership), and a file that is not what it was when listed (it
// grew, shrank, or became a link) fails the stream instead of putting something else in it.
import assert from 'node:assert/strict';
import {
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { execOk } from '../../src/lib/exec.js';
import { type TarEntry, tarGzStream } from '../../src/lib/tar-write.js';

describe('tarGzStream', () => {
  let dir: string;
  const when = new Date('2026-02-10T12:00:00Z');
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-tar-write-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const fileEntry = (name: string, p: string): TarEntry => {
    const info = lstatSync(p);
    return { type: 'file', path: name, mode: info.mode, mtime: info.mtime, size: info.size, file: p };
  };

  test('reads back with the system tar: long names, links, empty files, modes, root as owner', async () => {
    const src = path.join(dir, 'script.sh');
    writeFileSync(src, '#!/bin/sh\necho hi\n', { mode: 0o750 });
    const long = `top/${'d'.repeat(120)}/${'f'.repeat(90)}.txt`;
    const archive = await buffer(
      tarGzStream([
        { type: 'directory', path: 'top', mode: 0o755, mtime: when },
        { type: 'directory', path: `top/${'d'.repeat(120)}`, mode: 0o700, mtime: when },
        { type: 'file', path: long, mode: 0o644, mtime: when, size: 5, data: Buffer.from('hello') },
        { type: 'file', path: 'top/empty', mode: 0o600, mtime: when, size: 0, data: Buffer.alloc(0) },
        fileEntry('top/script.sh', src),
        { type: 'symlink', path: 'top/link', mtime: when, linkpath: '../../etc/passwd' },
      ]),
    );
    const out = mkdtempSync(path.join(dir, 'out-'));
    writeFileSync(path.join(out, 'a.tgz'), archive);
    const listing = await execOk('tar', ['-tvzf', path.join(out, 'a.tgz')]);
    assert.match(listing.stdout, /^-rwxr-x--- root\/root/m);
    await execOk('tar', ['-xzf', path.join(out, 'a.tgz'), '-C', out]);
    assert.equal(readFileSync(path.join(out, long), 'utf8'), 'hello');
    assert.equal(readFileSync(path.join(out, 'top/empty'), 'utf8'), '');
    assert.equal(readFileSync(path.join(out, 'top/script.sh'), 'utf8'), '#!/bin/sh\necho hi\n');
    assert.equal(lstatSync(path.join(out, 'top/script.sh')).mode & 0o777, 0o750);
    assert.equal(readlinkSync(path.join(out, 'top/link')), '../../etc/passwd', 'a link stays a link');
  });

  test('a file that grew, shrank or became a link after it was listed fails the stream', async () => {
    const grows = path.join(dir, 'grows');
    writeFileSync(grows, 'short');
    const grown = fileEntry('grows', grows);
    writeFileSync(grows, 'much longer now');
    await assert.rejects(buffer(tarGzStream([grown])), /grows changed size while it was packed/);

    const swapped = path.join(dir, 'swapped');
    writeFileSync(swapped, 'x'.repeat(10));
    const listed = fileEntry('swapped', swapped);
    unlinkSync(swapped);
    writeFileSync(path.join(dir, 'secret'), 'y'.repeat(10));
    symlinkSync(path.join(dir, 'secret'), swapped);
    await assert.rejects(buffer(tarGzStream([listed])), /ELOOP|no longer a regular file/);

    await assert.rejects(
      buffer(
        tarGzStream([
          { type: 'file', path: 'x', mode: 0o644, mtime: when, size: 3, data: Buffer.from('four') },
        ]),
      ),
      /x: 4 bytes, not 3/,
    );
  });
});
