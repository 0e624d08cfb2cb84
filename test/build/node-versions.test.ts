// Which Node.js an app gets, from its package.json's engines.node and what is on offer, and
// what a build says when it cannot have what it asks for. Pure: the offer is data here (the
// registry's own list is exercised in node-runtimes.test.ts).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { nodeDetector } from '../../src/build/detect-node.js';
import {
  chooseNodeVersion,
  enginesNodeRange,
  ltsMajors,
  type NodeOffer,
  offerable,
} from '../../src/build/node-versions.js';
import { isUserError } from '../../src/lib/errors.js';

const VERSIONS = [
  '0.8.6',
  '18.20.4',
  '20.5.0',
  '20.17.0',
  '20.20.2',
  '22.0.0',
  '22.9.0',
  '22.23.5',
  '23.0.0-rc.1',
  '24.0.0',
  '24.22.3',
  '25.9.0',
  '26.0.0',
  '26.12.1',
];
const NPM = { version: '11.19.1', node: '^20.17.0 || >=22.9.0' };
const TIME = {
  '22.0.0': '2024-04-24T00:00:00.000Z',
  '24.0.0': '2025-05-06T00:00:00.000Z',
  '25.9.0': '2026-04-01T00:00:00.000Z',
  '26.0.0': '2026-05-06T00:00:00.000Z',
  '26.12.1': '2026-11-20T00:00:00.000Z',
};
const DEC_2026 = new Date('2026-12-02T00:00:00Z');

function registryOffer(): NodeOffer {
  const { versions, excluded } = offerable(VERSIONS, NPM.node);
  return { versions, excluded, source: 'registry', time: TIME, npm: NPM };
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isUserError(err), `a user error, got ${String(err)}`);
    assert.equal(err.code, 'build_failed');
    return err.message;
  }
  assert.fail('expected a build error');
}

test("the offer: the registry's releases that the build's npm runs on, no prereleases", () => {
  const offer = registryOffer();
  assert.deepEqual(offer.versions, [
    '20.17.0',
    '20.20.2',
    '22.9.0',
    '22.23.5',
    '24.0.0',
    '24.22.3',
    '25.9.0',
    '26.0.0',
    '26.12.1',
  ]);
  assert.deepEqual(offer.excluded, ['0.8.6', '18.20.4', '20.5.0', '22.0.0']);
  // npm's range unknown: every release is on offer.
  assert.equal(offerable(VERSIONS).versions.length, VERSIONS.length - 1);
});

test('engines.node picks the newest version it allows, read as npm reads ranges', () => {
  const offer = registryOffer();
  const pick = (range: string) => chooseNodeVersion(range, offer, DEC_2026)?.version;
  assert.equal(pick('22.x'), '22.23.5');
  assert.equal(pick('22'), '22.23.5');
  assert.equal(pick('^24.1'), '24.22.3');
  assert.equal(pick('~22.9.0'), '22.9.0');
  assert.equal(pick('>=20 <22'), '20.20.2');
  assert.equal(pick('24.0.0'), '24.0.0');
  assert.equal(pick('>=22'), '26.12.1');
  assert.equal(pick('20.x || 22.x'), '22.23.5');
  assert.equal(chooseNodeVersion('22.x', offer, DEC_2026)?.reason, 'engines.node "22.x"');
});

test('without engines.node: the newest LTS, an even major six months after its first release', () => {
  const offer = registryOffer();
  // December 2026: 26 has been LTS since October.
  assert.deepEqual(chooseNodeVersion(undefined, offer, DEC_2026), {
    version: '26.12.1',
    reason: 'the newest LTS',
  });
  // June 2026: 26 came out in May, so 24 is still the newest LTS (25 is odd: never LTS).
  assert.equal(chooseNodeVersion(undefined, offer, new Date('2026-06-01T00:00:00Z'))?.version, '24.22.3');
  assert.deepEqual(ltsMajors(offer, new Date('2026-06-01T00:00:00Z')), [20, 22, 24]);
  // Without the registry's dates (it is away): the newest even major installed.
  const installed: NodeOffer = { versions: ['22.23.5', '25.9.0'], source: 'installed' };
  assert.equal(chooseNodeVersion(undefined, installed, DEC_2026)?.version, '22.23.5');
  // Only odd majors installed: the newest of them, said so.
  assert.deepEqual(chooseNodeVersion(undefined, { versions: ['25.9.0'], source: 'installed' }, DEC_2026), {
    version: '25.9.0',
    reason: 'the newest on offer',
  });
});

test('">=99" fails the build naming the versions on offer and one to ask for', () => {
  const message = refusal(() => chooseNodeVersion('>=99', registryOffer(), DEC_2026));
  assert.match(message, /^no Node\.js on offer satisfies engines\.node ">=99" in package\.json; /);
  assert.match(
    message,
    /on offer: 20\.20\.2, 22\.23\.5, 24\.22\.3, 25\.9\.0, 26\.12\.1 \(the newest of each major, of 9 versions from 20\.17\.0 on\)/,
  );
  assert.match(message, /Set engines\.node to one of them, e\.g\. "26\.x"$/);
});

test('a version the registry does not have fails the build the same way', () => {
  const message = refusal(() => chooseNodeVersion('22.99.1', registryOffer(), DEC_2026));
  assert.match(message, /engines\.node "22\.99\.1"/);
  assert.match(message, /on offer: .*22\.23\.5/);
});

test("a version the registry has but the build's npm cannot run on says so", () => {
  const message = refusal(() => chooseNodeVersion('18.x', registryOffer(), DEC_2026));
  assert.match(
    message,
    /\(18\.20\.4 is in the registry, but the build's npm 11\.19\.1 runs on Node\.js \^20\.17\.0 \|\| >=22\.9\.0 only\)/,
  );
});

test('the registry away: what is installed is on offer; with nothing installed, an app asking for none gets the host', () => {
  const away: NodeOffer = { versions: [], source: 'installed', registryError: 'ENOTFOUND registry' };
  assert.equal(chooseNodeVersion(undefined, away, DEC_2026), undefined);
  const message = refusal(() => chooseNodeVersion('22.x', away, DEC_2026));
  assert.match(
    message,
    /no installed Node\.js satisfies engines\.node "22\.x" in package\.json \(installed: none\)/,
  );
  assert.match(
    message,
    /could not be asked for more \(ENOTFOUND registry\); deploy again once the registry is reachable/,
  );
  const some: NodeOffer = { ...away, versions: ['22.23.5'] };
  assert.equal(chooseNodeVersion('22.x', some, DEC_2026)?.version, '22.23.5');
  assert.match(
    refusal(() => chooseNodeVersion('24.x', some, DEC_2026)),
    /\(installed: 22\.23\.5\)/,
  );
});

test('engines.node must be a version range; anything else is a build error that says what is expected', () => {
  assert.equal(enginesNodeRange(undefined), undefined);
  assert.equal(enginesNodeRange({}), undefined);
  assert.equal(enginesNodeRange({ npm: '>=10' }), undefined);
  assert.equal(enginesNodeRange({ node: ' 22.x ' }), '22.x');
  for (const bad of ['lts/*', '', '   ', 'node 22', 42, ['22'], { major: 22 }, `${'1 || '.repeat(60)}1`]) {
    assert.match(
      refusal(() => enginesNodeRange({ node: bad })),
      /^engines\.node in package\.json must be a version range like "22\.x", "\^24\.1" or ">=22", got /,
      JSON.stringify(bad),
    );
  }
  assert.match(
    refusal(() => enginesNodeRange('22.x')),
    /engines in package\.json must be an object/,
  );
  assert.match(
    refusal(() => enginesNodeRange(['22.x'])),
    /engines in package\.json must be an object/,
  );
});

test("the Node.js detector carries package.json's engines.node into the plan", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'petri-engines-'));
  try {
    const write = (pkg: object) => writeFileSync(path.join(dir, 'package.json'), JSON.stringify(pkg));
    write({ scripts: { start: 'node server.js' }, engines: { node: '22.x' } });
    assert.deepEqual((await nodeDetector.detect(dir))?.node, { range: '22.x' });
    write({ scripts: { start: 'node server.js' } });
    assert.deepEqual((await nodeDetector.detect(dir))?.node, { range: undefined });
    write({ scripts: { start: 'node server.js' }, engines: { node: 'lts/*' } });
    await assert.rejects(nodeDetector.detect(dir), /engines\.node in package\.json must be a version range/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
