// The build queue is shared by every tenant (issue 11): one running build per owner while
// others wait, only the newest queued deploy of an app kept (the older ones superseded, so
// no sources pile up behind a slow build), a ceiling on queued deploys per owner and on
// apps per owner. On a temp store, no root.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import {
  checkQueuedDeploys,
  claimDeploy,
  deploysReadyToBuild,
  queueDeploy,
  supersedeQueuedDeploys,
} from '../../src/domain/deploys.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { App, User } from '../../src/store/schema.js';

const LIMITS = { memoryMiB: 512, cpus: 1, pids: 256, diskMiB: 1024 };

describe('the build queue across owners', () => {
  let dir: string;
  let db: Store;
  let mallory: User;
  let alice: User;
  const apps: Record<string, App> = {};
  let n = 0;
  /** A deploy of `app`, queued now (ids and times in order). */
  const queue = async (user: User, app: string) => {
    n += 1;
    const deploy = await queueDeploy(db, user, apps[app]!, `d${String(n).padStart(4, '0')}`);
    await new Promise((r) => setTimeout(r, 2)); // distinct created_at
    return deploy.id;
  };
  const ready = async () => (await deploysReadyToBuild(db)).map((d) => d.id);
  const statusOf = async (id: string) =>
    await db.selectFrom('deploys').select(['status', 'error']).where('id', '=', id).executeTakeFirstOrThrow();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-queue-'));
    db = await openStore(path.join(dir, 'petri.db'));
    mallory = await createUser(db, 'mallory', 'member');
    alice = await createUser(db, 'alice', 'member');
    for (const name of ['slow-a', 'slow-b', 'slow-c'])
      apps[name] = await createApp(db, mallory, name, LIMITS);
    apps.victim = await createApp(db, alice, 'victim', LIMITS);
  });
  after(async () => {
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test("one owner's builds take one slot while another owner's deploy waits", async () => {
    const a = await queue(mallory, 'slow-a');
    const b = await queue(mallory, 'slow-b');
    // Both of mallory's are ready, but only the oldest of one owner is offered.
    assert.deepEqual(await ready(), [a]);
    assert.ok(await claimDeploy(db, a));
    // With one of mallory's building, none of hers starts; alice's, queued later, does.
    assert.deepEqual(await ready(), []);
    const v = await queue(alice, 'victim');
    assert.deepEqual(await ready(), [v]);
    assert.ok(await claimDeploy(db, v));
    assert.deepEqual(await ready(), []);
    assert.equal((await statusOf(b)).status, 'queued');
  });

  test('a newer queued deploy of an app supersedes the older ones; the building one is untouched', async () => {
    const queued = [
      await queue(mallory, 'slow-a'),
      await queue(mallory, 'slow-a'),
      await queue(mallory, 'slow-a'),
    ];
    const superseded = await supersedeQueuedDeploys(db);
    assert.deepEqual(superseded.map((d) => d.id).sort(), queued.slice(0, 2));
    for (const id of queued.slice(0, 2)) {
      const s = await statusOf(id);
      assert.equal(s.status, 'failed');
      assert.equal(s.error, `superseded by ${queued[2]}, a newer deploy of the same app`);
    }
    assert.equal((await statusOf(queued[2]!)).status, 'queued');
    assert.equal((await statusOf('d0001')).status, 'building');
    assert.deepEqual(await supersedeQueuedDeploys(db), [], 'nothing more to supersede');
  });

  test("an owner's queued deploys are bounded; the app's own queued deploy does not count", async () => {
    const ceilings = { queuedDeploysPerOwner: 2 };
    // Queued now: slow-a and slow-b. A new deploy of either replaces its own.
    await checkQueuedDeploys(db, apps['slow-a']!, ceilings);
    await checkQueuedDeploys(db, apps['slow-b']!, ceilings);
    await assert.rejects(
      checkQueuedDeploys(db, apps['slow-c']!, ceilings),
      (err: Error & { code?: string }) => {
        assert.equal(err.code, 'too_many_requests');
        assert.match(
          err.message,
          /already have 2 deploys queued, the ceiling of 2 per owner \(ceilings\.queuedDeploysPerOwner\)/,
        );
        return true;
      },
    );
    await checkQueuedDeploys(db, apps.victim!, ceilings); // alice's own count
  });

  test('an owner has at most ceilings.appsPerOwner apps', async () => {
    await assert.rejects(
      createApp(db, mallory, 'slow-d', LIMITS, undefined, Number.POSITIVE_INFINITY, 3),
      /you already own 3 apps, the ceiling of 3 per owner \(ceilings\.appsPerOwner\)/,
    );
    await createApp(db, alice, 'fair', LIMITS, undefined, Number.POSITIVE_INFINITY, 3);
  });
});
