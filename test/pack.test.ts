// packDirectory: what `petri deploy DIR` sends, checked entry by entry and by unpacking
// it with the server's own unpacker.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { packDirectory } from '../src/cli/pack.js';
import { unpackUntrusted } from '../src/lib/archive.js';

const temps: string[] = [];
after(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'petri-pack-'));
  temps.push(dir);
  return dir;
}

async function put(root: string, rel: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true });
  await writeFile(join(root, rel), content);
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** An app tree with one of everything pack has an opinion about. */
async function appTree(): Promise<{ base: string; app: string }> {
  const base = await tempDir();
  const app = join(base, 'app');
  await put(base, 'outside.txt', 'not part of the app\n');
  await put(app, '.gitignore', '*.log\ndist/\n!keep.log\n');
  await put(app, '.petriignore', 'secrets.txt\n');
  await put(app, '.env.example', 'PORT=3000\n');
  await put(app, '.git/HEAD', 'ref: refs/heads/main\n');
  await put(app, '.petri/state.json', '{}\n');
  await put(app, 'node_modules/lodash/index.js', 'module.exports = {}\n');
  await put(app, 'sub/node_modules/x/index.js', 'nested dependency\n');
  await put(app, 'sub/readme.md', '# sub\n');
  await put(app, 'app.log', 'gitignored\n');
  await put(app, 'keep.log', 're-included by !keep.log\n');
  await put(app, 'dist/bundle.js', 'gitignored directory\n');
  await put(app, 'secrets.txt', 'petriignored\n');
  await put(app, 'src/.gitignore', 'generated.js\n');
  await put(app, 'src/generated.js', 'ignored by the nested .gitignore\n');
  await put(app, 'src/index.js', 'console.log("hi")\n');
  await put(app, 'src/lib/util.js', 'export const x = 1\n');
  await put(app, 'bin/start.sh', '#!/bin/sh\nexec node src/index.js\n');
  await chmod(join(app, 'bin/start.sh'), 0o755);
  await put(app, '@weird.txt', 'a name node-tar create() would misread\n');
  await symlink('src/index.js', join(app, 'link-inside'));
  await symlink('src/lib', join(app, 'linkdir'));
  await symlink(join(base, 'outside.txt'), join(app, 'link-outside'));
  await symlink('does-not-exist', join(app, 'dangling'));
  await symlink('.', join(app, 'loop'));
  return { base, app };
}

const EXPECTED = [
  '.env.example',
  '.gitignore',
  '.petriignore',
  '@weird.txt',
  'bin/start.sh',
  'keep.log',
  'link-inside',
  'linkdir/util.js',
  'src/.gitignore',
  'src/index.js',
  'src/lib/util.js',
  'sub/readme.md',
];

describe('packDirectory', () => {
  it('packs exactly the files a deploy needs, in a stable order', async () => {
    const { app } = await appTree();
    const packed = await packDirectory(app);
    assert.deepEqual(packed.files, EXPECTED);
    assert.deepEqual(packed.warnings, [
      'skipped dangling: it is a symlink that points outside the app or nowhere',
      'skipped link-outside: it is a symlink that points outside the app or nowhere',
      'skipped loop: it is a symlink to a directory that contains it',
    ]);
    await collect(packed.stream);
  });

  it('unpacks with the server unpacker to the same bytes, links stored as content', async () => {
    const { app } = await appTree();
    const target = join(await tempDir(), 'unpacked');
    const packed = await packDirectory(app);
    const result = await unpackUntrusted(packed.stream, target, { maxBytes: 1024 * 1024 });
    assert.equal(result.files, EXPECTED.length);
    for (const rel of EXPECTED) {
      assert.deepEqual(await readFile(join(target, rel)), await readFile(join(app, rel)), rel);
    }
    assert.equal((await stat(join(target, 'bin/start.sh'))).mode & 0o777, 0o755);
    assert.ok((await stat(join(target, 'link-inside'))).isFile());
  });

  it('packs the same tree to the same bytes', async () => {
    const { app } = await appTree();
    const first = await collect((await packDirectory(app)).stream);
    const second = await collect((await packDirectory(app)).stream);
    assert.deepEqual(first, second);
  });

  it('refuses a directory with nothing to deploy', async () => {
    const app = await tempDir();
    await put(app, 'node_modules/a.js', 'x');
    await assert.rejects(packDirectory(app), { code: 'bad_request', message: /nothing to deploy/ });
  });
});
