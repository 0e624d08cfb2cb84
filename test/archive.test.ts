// unpackUntrusted against the known tar tricks. Hostile archives are written header by
// header with node-tar's Header, because its packer refuses to create most of them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Header, type HeaderData } from 'tar';
import { type UnpackOptions, unpackUntrusted } from '../src/lib/archive.js';
import { isUserError } from '../src/lib/errors.js';
import { bigFileBomb, manyFilesBomb, trailingZerosBomb } from './fixtures/bombs.js';

const MB = 1024 * 1024;
const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

/** A temp parent holding the target `app/`; anything else appearing in it is an escape. */
async function world(): Promise<{ base: string; target: string }> {
  const base = await mkdtemp(join(tmpdir(), 'petri-archive-'));
  temps.push(base);
  return { base, target: join(base, 'app') };
}

type Entry = HeaderData & { body?: string | Buffer };

function tarEntry({ body, ...data }: Entry): Buffer {
  const content = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  const header = new Header({
    mode: 0o644,
    uid: 1000,
    gid: 1000,
    mtime: new Date(0),
    type: 'File',
    ...data,
    size: content.length,
  });
  header.encode();
  assert.ok(header.block, `header for ${data.path} encodes`);
  const padding = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header.block, content, padding]);
}

function tarball(entries: Entry[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(1024)]);
}

function targz(entries: Entry[]): Buffer {
  return gzipSync(tarball(entries));
}

/** Unpacks, expects a UserError with `code` whose message contains `mentions`, and that nothing was left. */
async function expectRefusal(
  archive: Buffer,
  code: string,
  mentions: string,
  opts: UnpackOptions = { maxBytes: MB },
): Promise<{ base: string; message: string }> {
  const { base, target } = await world();
  const err = await unpackUntrusted(archive, target, opts).then(
    () => assert.fail('unpack should have been refused'),
    (e: unknown) => e,
  );
  assert.ok(isUserError(err), `expected a UserError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.ok(err.message.includes(mentions), `message should mention ${mentions}: ${err.message}`);
  assert.deepEqual(await readdir(base), ['app'], 'nothing written beside the target');
  assert.deepEqual(await readdir(target), [], 'nothing half-unpacked survives');
  return { base, message: err.message };
}

describe('unpackUntrusted refuses', () => {
  it('a path climbing out with ..', async () => {
    const { message } = await expectRefusal(
      targz([
        { path: 'ok.txt', body: 'fine' },
        { path: '../escape', body: 'pwned' },
      ]),
      'invalid_archive',
      "'../escape'",
    );
    assert.match(message, /leaves the app directory/);
  });

  it('a .. hidden in the middle of a path', async () => {
    await expectRefusal(targz([{ path: 'a/../../x', body: 'pwned' }]), 'invalid_archive', "'a/../../x'");
  });

  it('a .. hidden in a long ustar prefix', async () => {
    const path = `${'d/'.repeat(40)}${'../'.repeat(41)}pwn`;
    await expectRefusal(targz([{ path, body: 'pwned' }]), 'invalid_archive', 'pwn');
  });

  it('an absolute path', async () => {
    const { base } = await world();
    const sentinel = join(base, 'abs-escape');
    const { message } = await expectRefusal(
      targz([{ path: sentinel, body: 'pwned' }]),
      'invalid_archive',
      `'${sentinel}'`,
    );
    assert.match(message, /absolute path/);
    assert.equal(existsSync(sentinel), false);
  });

  it('/etc/passwd', async () => {
    await expectRefusal(
      targz([{ path: '/etc/passwd', body: 'root::0:0::/:/bin/sh\n' }]),
      'invalid_archive',
      "'/etc/passwd'",
    );
  });

  it('a symlink to /etc', async () => {
    const { message } = await expectRefusal(
      targz([{ path: 'etc', type: 'SymbolicLink', linkpath: '/etc' }]),
      'invalid_archive',
      "'etc'",
    );
    assert.match(message, /symbolic link to '\/etc'/);
  });

  it('a symlink and then a file written through it', async () => {
    const { base } = await world();
    const outside = join(base, 'outside');
    await expectRefusal(
      targz([
        { path: 'link', type: 'SymbolicLink', linkpath: outside },
        { path: 'link/file', body: 'pwned' },
      ]),
      'invalid_archive',
      "'link'",
    );
    assert.equal(existsSync(join(outside, 'file')), false);
  });

  it('a hard link to /etc/shadow', async () => {
    const { message } = await expectRefusal(
      targz([{ path: 'shadow', type: 'Link', linkpath: '/etc/shadow' }]),
      'invalid_archive',
      "'shadow'",
    );
    assert.match(message, /hard link to '\/etc\/shadow'/);
  });

  it('a character device', async () => {
    const { message } = await expectRefusal(
      targz([{ path: 'null', type: 'CharacterDevice', devmaj: 1, devmin: 3 }]),
      'invalid_archive',
      "'null'",
    );
    assert.match(message, /character device/);
  });

  it('a block device', async () => {
    await expectRefusal(targz([{ path: 'sda', type: 'BlockDevice', devmaj: 8 }]), 'invalid_archive', "'sda'");
  });

  it('a fifo', async () => {
    const { message } = await expectRefusal(
      targz([{ path: 'pipe', type: 'FIFO' }]),
      'invalid_archive',
      "'pipe'",
    );
    assert.match(message, /FIFO/);
  });

  it('an entry type the parser would skip', async () => {
    await expectRefusal(targz([{ path: 'acl', type: 'SolarisACL', body: 'x' }]), 'invalid_archive', "'acl'");
  });

  it('a file written where a file already is', async () => {
    await expectRefusal(
      targz([
        { path: 'a', body: 'one' },
        { path: 'a', body: 'two' },
      ]),
      'invalid_archive',
      "'a' appears more than once",
    );
  });

  it('a file written through a file', async () => {
    await expectRefusal(
      targz([
        { path: 'a', body: 'one' },
        { path: 'a/b', body: 'two' },
      ]),
      'invalid_archive',
      "'a/b'",
    );
  });

  it('a file over the size cap, and stops before writing it', async () => {
    const { message } = await expectRefusal(
      targz([
        { path: 'small.txt', body: 'x'.repeat(100) },
        { path: 'big.bin', body: Buffer.alloc(2000) },
      ]),
      'payload_too_large',
      "'big.bin'",
      { maxBytes: 1000 },
    );
    assert.match(message, /1000-byte limit/);
  });

  it('many small files that add up past the cap', async () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({ path: `f${i}`, body: 'x'.repeat(100) }));
    await expectRefusal(targz(entries), 'payload_too_large', "'f10'", { maxBytes: 1000 });
  });

  it('more entries than allowed', async () => {
    const { base, target } = await world();
    const entries = Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, body: '' }));
    await assert.rejects(unpackUntrusted(targz(entries), target, { maxBytes: MB, maxEntries: 10 }), {
      code: 'payload_too_large',
      message: /more than 10 entries/,
    });
    assert.deepEqual(await readdir(base), ['app']);
    assert.deepEqual(await readdir(target), []);
  });

  it('more directories than allowed, implied by the paths of a few files', async () => {
    // Two files, 60 directories: each directory costs a mkdir like a file costs an open.
    const deep = (top: string) => `${top}/${Array.from({ length: 29 }, (_, i) => `d${i}`).join('/')}/f`;
    await expectRefusal(
      targz([
        { path: deep('a'), body: 'x' },
        { path: deep('b'), body: 'y' },
      ]),
      'payload_too_large',
      'more than 40 entries',
      { maxBytes: MB, maxEntries: 40 },
    );
  });

  it('a gzip bomb of zeros after the end of the archive', async () => {
    const bomb = gzipSync(Buffer.concat([tarball([{ path: 'a', body: 'x' }]), Buffer.alloc(8 * MB)]));
    await expectRefusal(bomb, 'invalid_archive', 'after the end of the tar archive', { maxBytes: 1000 });
  });

  it('a chain of pax headers that never reaches a file', async () => {
    const pax = (n: number) => ({
      path: `pax${n}`,
      type: 'ExtendedHeader' as const,
      body: `${'x'.repeat(60_000)}\n`,
    });
    const chain = gzipSync(Buffer.concat(Array.from({ length: 40 }, (_, i) => tarEntry(pax(i)))));
    await expectRefusal(chain, 'payload_too_large', 'bytes of tar data', { maxBytes: 1000 });
  });

  it('garbage bytes', async () => {
    await expectRefusal(
      Buffer.from('this is not an archive at all, just some text'),
      'invalid_archive',
      'upload is not a gzip-compressed tar archive',
    );
  });

  it('an uncompressed tar', async () => {
    await expectRefusal(
      tarball([{ path: 'a', body: 'x' }]),
      'invalid_archive',
      'upload is not a gzip-compressed tar archive',
    );
  });

  it('gzip of something that is not a tar', async () => {
    await expectRefusal(
      gzipSync(Buffer.alloc(4096, 'z')),
      'invalid_archive',
      'upload is not a gzip-compressed tar archive',
    );
  });

  it('a truncated upload', async () => {
    const whole = targz([{ path: 'a', body: randomBytes(100_000) }]);
    await expectRefusal(
      whole.subarray(0, 200),
      'invalid_archive',
      'upload is not a gzip-compressed tar archive',
    );
  });
});

describe('unpackUntrusted unpacks', () => {
  const script = '#!/bin/sh\necho hello\n';
  const good = () =>
    targz([
      { path: './', type: 'Directory', mode: 0o755 },
      { path: 'src/', type: 'Directory', mode: 0o777 },
      { path: 'src/lib/', type: 'Directory', mode: 0o755 },
      { path: 'src/lib/app.js', body: 'console.log(1)\n', mode: 0o666 },
      { path: 'bin/start.sh', body: script, mode: 0o4777 },
      { path: 'ro/', type: 'Directory', mode: 0o555 },
      { path: 'ro/data.txt', body: 'read only\n', mode: 0o444 },
      { path: '.env.example', body: 'PORT=3000\n' },
      { path: 'empty', body: '' },
    ]);

  async function mode(path: string): Promise<string> {
    return ((await stat(path)).mode & 0o7777).toString(8);
  }

  it('nested dirs, an executable script, and safe modes', async () => {
    const { base, target } = await world();
    const result = await unpackUntrusted(good(), target, { maxBytes: MB });
    assert.deepEqual(result, {
      files: 5,
      bytes: 'console.log(1)\n'.length + script.length + 'read only\n'.length + 'PORT=3000\n'.length,
    });
    assert.deepEqual(await readdir(base), ['app']);
    assert.deepEqual((await readdir(target)).sort(), ['.env.example', 'bin', 'empty', 'ro', 'src']);
    assert.equal(await readFile(join(target, 'src/lib/app.js'), 'utf8'), 'console.log(1)\n');
    assert.equal(await readFile(join(target, 'bin/start.sh'), 'utf8'), script);
    assert.equal(await readFile(join(target, 'empty'), 'utf8'), '');
    // setuid and group/other write are dropped; the executable bits stay.
    assert.equal(await mode(join(target, 'bin/start.sh')), '755');
    assert.equal(await mode(join(target, 'src/lib/app.js')), '644');
    // The owner can always write what it unpacked, so the build can work in it.
    assert.equal(await mode(join(target, 'ro/data.txt')), '644');
    assert.equal(await mode(join(target, 'src')), '755');
    assert.equal(await mode(join(target, 'ro')), '755');
    // A directory the archive only implied gets ordinary permissions.
    assert.equal(await mode(join(target, 'bin')), '755');
  });

  it('from a stream arriving in small chunks', async () => {
    const { target } = await world();
    const bytes = targz([
      { path: 'big/one.bin', body: Buffer.alloc(300_000, 1) },
      { path: 'big/two.bin', body: Buffer.alloc(200_000, 2) },
    ]);
    const chunks = Array.from({ length: Math.ceil(bytes.length / 100) }, (_, i) =>
      bytes.subarray(i * 100, i * 100 + 100),
    );
    const result = await unpackUntrusted(Readable.from(chunks), target, { maxBytes: MB });
    assert.deepEqual(result, { files: 2, bytes: 500_000 });
    assert.deepEqual(await readFile(join(target, 'big/one.bin')), Buffer.alloc(300_000, 1));
    assert.deepEqual(await readFile(join(target, 'big/two.bin')), Buffer.alloc(200_000, 2));
  });

  it('into a target that does not exist yet, but never into a non-empty one', async () => {
    const { target } = await world();
    await unpackUntrusted(targz([{ path: 'a', body: 'x' }]), join(target, 'deeper'), { maxBytes: MB });
    assert.equal(await readFile(join(target, 'deeper/a'), 'utf8'), 'x');
    await assert.rejects(
      unpackUntrusted(targz([{ path: 'b', body: 'y' }]), target, { maxBytes: MB }),
      /not empty/,
    );
  });
});

// Issue 11: upload bombs tied up the control plane for many minutes. Each must be refused
// within seconds, with the production-sized limits, not only with toy ones.
describe('unpackUntrusted against upload bombs', () => {
  const GiB = 1024 * MB;
  const production = { maxBytes: GiB };

  async function refusedWithin(
    source: NodeJS.ReadableStream | Buffer,
    opts: Parameters<typeof unpackUntrusted>[2],
  ): Promise<{ err: { code?: string; message: string }; ms: number; target: string }> {
    const { base, target } = await world();
    const started = Date.now();
    const err = await unpackUntrusted(source, target, opts).then(
      () => assert.fail('unpack should have been refused'),
      (e: unknown) => e as { code?: string; message: string },
    );
    const ms = Date.now() - started;
    assert.deepEqual(await readdir(base), ['app'], 'nothing written beside the target');
    assert.deepEqual(await readdir(target), [], 'nothing half-unpacked survives');
    return { err, ms, target };
  }

  it('4 GiB of zeros after the end marker (4 MB of gzip): refused in under 5 s', {
    timeout: 60_000,
  }, async () => {
    const { err, ms } = await refusedWithin(trailingZerosBomb(4 * GiB), production);
    assert.equal(err.code, 'invalid_archive', err.message);
    assert.match(err.message, /after the end of the tar archive/);
    assert.ok(ms < 5000, `refused after ${ms} ms`);
  });

  it('non-zero data after the end marker', async () => {
    const junk = gzipSync(
      Buffer.concat([tarball([{ path: 'a', body: 'x' }]), Buffer.from('hidden payload')]),
    );
    const { err } = await refusedWithin(junk, production);
    assert.equal(err.code, 'invalid_archive');
    assert.match(err.message, /after the end of the tar archive/);
  });

  it('100,001 empty files (620 KB of gzip): refused by the default entry cap in under 5 s', {
    timeout: 60_000,
  }, async () => {
    const { err, ms } = await refusedWithin(manyFilesBomb(100_001), production);
    assert.equal(err.code, 'payload_too_large', err.message);
    assert.match(err.message, /more than 20000 entries/);
    assert.ok(ms < 5000, `refused after ${ms} ms`);
  });

  it('one file of 4 GiB of zeros: refused at its header', { timeout: 60_000 }, async () => {
    const { err, ms } = await refusedWithin(bigFileBomb(4 * GiB), production);
    assert.equal(err.code, 'payload_too_large');
    assert.ok(ms < 5000, `refused after ${ms} ms`);
  });

  it('an upload that takes longer than the time cap', { timeout: 30_000 }, async () => {
    // The archive starts, then nothing more ever comes.
    const trickle = new PassThrough();
    trickle.write(gzipSync(tarEntry({ path: 'a', body: 'x' })));
    const { err, ms } = await refusedWithin(trickle, { ...production, timeoutMs: 500 });
    assert.equal(err.code, 'request_timeout', err.message);
    assert.match(err.message, /0\.5 s/);
    assert.ok(ms < 3000, `refused after ${ms} ms`);
  });

  it('stops as soon as its signal aborts (the client left, the server stops)', {
    timeout: 30_000,
  }, async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('client went away')), 200);
    const { err, ms } = await refusedWithin(bigFileBomb(GiB - 1024), {
      ...production,
      signal: controller.signal,
    });
    assert.equal(err.message, 'client went away');
    assert.ok(ms < 3000, `stopped after ${ms} ms`);
  });
});

describe('unpackUntrusted still accepts', () => {
  it('zero padding to the record size after the end marker (GNU tar, bsdtar, git archive)', async () => {
    const { target } = await world();
    const tar = tarball([{ path: 'a', body: 'x' }]);
    const record = 10240;
    const padded = Buffer.concat([tar, Buffer.alloc(record - (tar.length % record))]);
    assert.deepEqual(await unpackUntrusted(gzipSync(padded), target, { maxBytes: MB }), {
      files: 1,
      bytes: 1,
    });
  });

  it('a large blocking factor (tar -b 2048 pads to 1 MiB)', async () => {
    const { target } = await world();
    const tar = tarball([{ path: 'a', body: 'x' }]);
    const padded = Buffer.concat([tar, Buffer.alloc(MB - tar.length)]);
    assert.deepEqual(await unpackUntrusted(gzipSync(padded), target, { maxBytes: MB }), {
      files: 1,
      bytes: 1,
    });
  });

  it('a pax header that sets the size of the next file', async () => {
    // The ustar size field says 0; the pax record says 1500. Framing must follow the pax.
    const body = Buffer.alloc(1500, 'p');
    const record = paxRecord('size', '1500');
    const header = new Header({ path: 'big.txt', mode: 0o644, size: 0, type: 'File', mtime: new Date(0) });
    header.encode();
    assert.ok(header.block);
    const tar = Buffer.concat([
      tarEntry({ path: 'PaxHeader/big.txt', type: 'ExtendedHeader', body: record }),
      header.block,
      body,
      Buffer.alloc(512 - (body.length % 512)),
      tarEntry({ path: 'after.txt', body: 'after' }),
      Buffer.alloc(1024),
    ]);
    const { target } = await world();
    assert.deepEqual(await unpackUntrusted(gzipSync(tar), target, { maxBytes: MB }), {
      files: 2,
      bytes: 1505,
    });
    assert.deepEqual(await readFile(join(target, 'big.txt')), body);
    assert.equal(await readFile(join(target, 'after.txt'), 'utf8'), 'after');
  });

  it('a GNU long name and a long pax path', async () => {
    const long = `${'d'.repeat(120)}/${'n'.repeat(150)}.txt`;
    const tar = Buffer.concat([
      tarEntry({ path: '././@LongLink', type: 'NextFileHasLongPath', body: `${long}\0` }),
      tarEntry({ path: 'short', body: 'gnu' }),
      tarEntry({ path: 'PaxHeader/x', type: 'ExtendedHeader', body: paxRecord('path', `p/${long}`) }),
      tarEntry({ path: 'short2', body: 'pax' }),
      Buffer.alloc(1024),
    ]);
    const { target } = await world();
    assert.deepEqual(await unpackUntrusted(gzipSync(tar), target, { maxBytes: MB }), { files: 2, bytes: 6 });
    assert.equal(await readFile(join(target, long), 'utf8'), 'gnu');
    assert.equal(await readFile(join(target, 'p', long), 'utf8'), 'pax');
  });
});

/** One pax record: its length (counting itself) then `key=value\n`. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return `${len}${rest}`;
}
