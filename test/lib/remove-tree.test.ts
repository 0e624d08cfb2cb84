// removeTree: what root removes of a tree an app wrote stays inside it: links are removed,
// never followed, and a mounted disk inside the tree is refused, not emptied.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { removeTree } from '../../src/lib/remove-tree.js';

test('a tree with links to a host directory is removed, the directory stays', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'petri-remove-'));
  try {
    const host = path.join(root, 'host');
    mkdirSync(host);
    writeFileSync(path.join(host, 'keep.txt'), 'precious\n');
    const tree = path.join(root, 'tree');
    mkdirSync(path.join(tree, 'a/b'), { recursive: true });
    symlinkSync(host, path.join(tree, 'a/link'));
    symlinkSync(host, path.join(tree, 'a/b/link2'));
    await removeTree(tree);
    assert.equal(existsSync(tree), false);
    assert.deepEqual(readdirSync(host), ['keep.txt']);
    await removeTree(tree); // absent is fine
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a tree with a mounted disk in it is refused, and the disk is not emptied', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'petri-remove-'));
  const mount = path.join(root, 'tree', 'app');
  try {
    mkdirSync(mount, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mount]);
    writeFileSync(path.join(mount, 'app-file'), 'mine\n');
    await assert.rejects(removeTree(path.join(root, 'tree')), /could not remove .*different device/);
    assert.deepEqual(readdirSync(mount), ['app-file']);
  } finally {
    execFileSync('umount', ['-l', mount]);
    rmSync(root, { recursive: true, force: true });
  }
});

test('relative paths and / are refused', async () => {
  await assert.rejects(removeTree('/'), /refusing/);
  await assert.rejects(removeTree('apps/1'), /refusing/);
});
