// `petri graduate NAME [-o FILE]` against a small HTTP server that answers as the API does:
// the bundle is written whole or not at all (a cut-off or damaged answer leaves no file, and
// says so), stderr tells what arrived, `-o -` pours it to stdout, refusals are one line.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';
import { formatSize } from '../../src/cli/addons.js';
import { type TarEntry, tarGzStream } from '../../src/lib/tar-write.js';
import { Capture, envFor, run, tempDir } from './harness.js';

const TOKEN = 'test-token';

async function bundle(): Promise<Buffer> {
  const when = new Date('2026-02-10T12:00:00Z');
  const file = (p: string, text: string): TarEntry => ({
    type: 'file',
    path: `shop-handoff/${p}`,
    mode: 0o644,
    mtime: when,
    size: Buffer.byteLength(text),
    data: Buffer.from(text),
  });
  return buffer(
    tarGzStream([
      { type: 'directory', path: 'shop-handoff', mode: 0o755, mtime: when },
      file('HANDOFF.md', '# Handoff: shop\n'),
      file('Dockerfile', 'FROM node:22\nCMD ["sh","-c","node server.js"]\n'),
      file('backups/postgres-b3.pgdump', 'PGDMP'.repeat(300)),
      file('slug/server.js', 'listen()\n'),
      file('slug/lib/a.js', 'x'.repeat(2048)),
    ]),
  );
}

describe('petri graduate', () => {
  let server: Server;
  let url: string;
  let home: { dir: string; remove: () => Promise<void> };
  let whole: Buffer;
  const seen: string[] = [];

  before(async () => {
    whole = await bundle();
    home = await tempDir('petri-graduate-cli-');
    server = createServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
      const app = /^\/v1\/apps\/([^/]+)\/graduate$/.exec(req.url ?? '')?.[1];
      const headers = {
        'content-type': 'application/gzip',
        'content-disposition': `attachment; filename="${app}-handoff.tar.gz"`,
        'petri-release': 'v7',
        'petri-stage': 'graduating',
        'petri-backups': 'postgres=b3 fresh',
      };
      if (req.method !== 'POST' || !app) {
        res.writeHead(404).end();
      } else if (app === 'shop') {
        res.writeHead(200, headers);
        Readable.from([whole.subarray(0, 100), whole.subarray(100)]).pipe(res);
      } else if (app === 'cut') {
        // Half of it, then the connection drops: the server failed while streaming.
        res.writeHead(200, headers);
        res.write(whole.subarray(0, Math.floor(whole.length / 2)), () => res.destroy());
      } else if (app === 'damaged') {
        res.writeHead(200, headers);
        res.end(Buffer.from('this is not gzip at all'));
      } else {
        res.writeHead(403, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: {
              code: 'forbidden',
              message: `graduating ${app} needs the admin role in team growth; you are a member`,
            },
          }),
        );
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await home?.remove();
  });

  const env = () => envFor(url, TOKEN, path.join(home.dir, 'config'));

  test('writes NAME-handoff.tar.gz whole, and says on stderr what it holds', async () => {
    const cwd = path.join(home.dir, 'work');
    mkdirSync(cwd, { recursive: true });
    const res = await run(['graduate', 'shop'], { env: env(), cwd });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stdout, '');
    assert.deepEqual(readFileSync(path.join(cwd, 'shop-handoff.tar.gz')), whole);
    assert.ok(seen.includes(`POST /v1/apps/shop/graduate Bearer ${TOKEN}`));
    assert.equal(
      res.stderr,
      [
        'Graduating shop: backing up its add-ons and packing its build...',
        'Add-on backups: postgres=b3 fresh',
        '  HANDOFF.md',
        '  Dockerfile',
        '  backups/postgres-b3.pgdump (1.5 KiB)',
        '  slug/ (2 files, 2.0 KiB)',
        `Wrote shop-handoff.tar.gz (${formatSize(whole.length)}): shop v7, now graduating.`,
        "Next: read HANDOFF.md in it. An admin closes the handoff with 'petri apps set shop stage=graduated'.",
        '',
      ].join('\n'),
    );
  });

  test('-o FILE writes there; -o - pours the bundle to stdout (never to a terminal)', async () => {
    const file = path.join(home.dir, 'out.tgz');
    assert.equal((await run(['graduate', 'shop', '-o', file], { env: env(), cwd: home.dir })).code, 0);
    assert.deepEqual(readFileSync(file), whole);

    const chunks: Buffer[] = [];
    const stdout = Object.assign(new Capture(false), {
      write: (chunk: string | Uint8Array) => {
        chunks.push(Buffer.from(chunk));
        return true;
      },
      once: () => {},
    });
    const piped = await run(['graduate', 'shop', '-o', '-'], { env: env(), cwd: home.dir, stdout });
    assert.equal(piped.code, 0, piped.stderr);
    assert.deepEqual(Buffer.concat(chunks), whole);
    assert.match(piped.stderr, /Wrote stdout: shop v7, now graduating/);

    const tty = await run(['graduate', 'shop', '-o', '-'], { env: env(), cwd: home.dir, tty: true });
    assert.equal(tty.code, 2);
    assert.match(tty.stderr, /the bundle is binary: redirect it/);
  });

  test('a bundle cut off or damaged on the way is not written, and the error says to run it again', async () => {
    const cwd = path.join(home.dir, 'cut-work');
    mkdirSync(cwd, { recursive: true });
    const cut = await run(['graduate', 'cut'], { env: env(), cwd });
    assert.equal(cut.code, 1, cut.stderr);
    assert.match(
      cut.stderr,
      /^error: the bundle did not arrive whole \(.+\); nothing was written: run the command again$/m,
    );
    const damaged = await run(['graduate', 'damaged'], { env: env(), cwd });
    assert.equal(damaged.code, 1);
    assert.match(
      damaged.stderr,
      /error: the bundle arrived damaged \(.*\); nothing was written: run the command again/,
    );
    assert.deepEqual(readdirSync(cwd), [], 'no bundle, no .partial');
  });

  test('a refusal is one line naming what is missing, and nothing is written', async () => {
    const res = await run(['graduate', 'lab'], { env: env(), cwd: home.dir });
    assert.equal(res.code, 1);
    assert.match(res.stderr, /error: graduating lab needs the admin role in team growth; you are a member/);
    assert.ok(!existsSync(path.join(home.dir, 'lab-handoff.tar.gz')));
  });
});
