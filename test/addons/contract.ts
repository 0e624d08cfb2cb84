// The contract every AddonProvider keeps, run by each engine's test file against a real
// server (external: the machine's own; managed: one the test starts on another port).
// The engine supplies an AppClient that acts as an app would, with the URL it was given.
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { AddonCredentials, AddonProvider, Endpoint } from '../../src/addons/provider.js';

export interface AppSession {
  /** Creates data of several types (tables with text, numbers, dates, json, nulls, binary;
   * or strings, hashes, lists, sets, sorted sets, keys with a TTL) with fixed values. */
  writeSample(): Promise<void>;
  /** Everything writeSample made, in a canonical form that deepEqual can compare. */
  readSample(): Promise<unknown>;
  /** Changes and deletes part of the sample and adds something new. */
  mutate(): Promise<void>;
  /** Tries to connect to, list, read and write the other add-on's data; returns a
   * description of each attempt that worked (so [] is the pass). */
  trespass(other: AddonCredentials, at: Endpoint): Promise<string[]>;
  /** Tries to raise its privileges (new roles/users, grants, server config, flushing
   * everything, reading server files); returns each attempt that worked. */
  escalate(): Promise<string[]>;
  /** A trivial round trip; throws when the session is gone. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface AppClient {
  /** Opens a session with the URL (throws when the login is refused). */
  connect(url: string): Promise<AppSession>;
}

export interface ContractOptions {
  name: string;
  /** Called once before the tests: the provider and where the server is. */
  setUp(): Promise<{ provider: AddonProvider; endpoint: Endpoint }>;
  tearDown?(): Promise<void>;
  client: AppClient;
  /** Unique per run, so runs against a shared server never meet: e.g. 'ct_<random>'. */
  prefix: string;
  /** Engines that cap sessions: how many one login may open, and whether the other login
   * slot shares that cap (PostgreSQL: a limit on the database) or has its own (MariaDB). */
  sessions?: { perLogin: number; slotsShare: boolean };
}

export function providerContract(opts: ContractOptions): void {
  describe(`AddonProvider contract: ${opts.name}`, () => {
    let provider: AddonProvider;
    let endpoint: Endpoint;
    let dir: string;
    const resources: string[] = [];
    const sessions: AppSession[] = [];
    const resource = (n: string) => {
      const r = `${opts.prefix}_${n}`;
      resources.push(r);
      return r;
    };
    const connect = async (creds: AddonCredentials) => {
      const s = await opts.client.connect(provider.url(creds, endpoint));
      sessions.push(s);
      return s;
    };

    before(async () => {
      ({ provider, endpoint } = await opts.setUp());
      dir = await mkdtemp(path.join(tmpdir(), 'petri-addon-contract-'));
    });
    after(async () => {
      for (const s of sessions) await s.close().catch(() => {});
      for (const r of resources) await provider?.deprovision(r).catch(() => {});
      await provider?.close();
      await opts.tearDown?.();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('ping answers', async () => {
      await provider.ping();
    });

    test('provision gives a login that can write and read its own data', async () => {
      const creds = await provider.provision(resource('own'));
      const s = await connect(creds);
      await s.writeSample();
      const sample = await s.readSample();
      assert.ok(sample, 'the sample reads back');
    });

    test("one add-on's login cannot reach another's data, nor raise its privileges", async () => {
      const a = await provider.provision(resource('iso_a'));
      const b = await provider.provision(resource('iso_b'));
      const sb = await connect(b);
      await sb.writeSample();
      const before = await sb.readSample();
      const sa = await connect(a);
      assert.deepEqual(await sa.trespass(b, endpoint), []);
      assert.deepEqual(await sa.escalate(), []);
      assert.deepEqual(await sb.readSample(), before, "B's data is untouched");
    });

    test('backup then restore gives back exactly the data', async () => {
      const r = resource('backup');
      const s = await connect(await provider.provision(r));
      await s.writeSample();
      const sample = await s.readSample();
      const file = path.join(dir, 'dump');
      await provider.backup(r, file);
      assert.ok((await stat(file)).size > 0, 'the dump is not empty');
      await s.mutate();
      assert.notDeepEqual(await s.readSample().catch(() => 'gone'), sample);
      await s.close();
      await provider.restore(r, file);
      const again = await connect(await provider.createLogin(r, 'a'));
      assert.deepEqual(await again.readSample(), sample);
      // Restored data belongs to the add-on: it can still change it.
      await again.mutate();
    });

    test('a backup restores into another add-on of the same engine', async () => {
      const from = resource('copy_from');
      const to = resource('copy_to');
      const s = await connect(await provider.provision(from));
      await s.writeSample();
      const sample = await s.readSample();
      const file = path.join(dir, 'copy');
      await provider.backup(from, file);
      const target = await provider.provision(to);
      await provider.restore(to, file);
      assert.deepEqual(await (await connect(target)).readSample(), sample);
    });

    test('rotation: the new login works alongside the old, then the old one is revoked', async () => {
      const r = resource('rotate');
      const old = await provider.provision(r);
      const s1 = await connect(old);
      await s1.writeSample();
      const fresh = await provider.createLogin(r, 'b');
      assert.notEqual(fresh.password, old.password);
      assert.notEqual(fresh.user, old.user);
      const s2 = await connect(fresh);
      assert.deepEqual(await s2.readSample(), await s1.readSample(), 'the new login sees the same data');
      await s2.mutate();
      await provider.revokeLogin(r, 'a');
      await assert.rejects(s1.ping(), 'the old session is closed');
      await assert.rejects(opts.client.connect(provider.url(old, endpoint)), 'the old password is refused');
      await s2.ping();
    });

    test('usage counts bytes and open sessions', async () => {
      const r = resource('usage');
      const s = await connect(await provider.provision(r));
      await s.writeSample();
      const usage = await provider.usage(r);
      assert.ok(usage.bytes > 0, `bytes: ${usage.bytes}`);
      assert.ok(usage.connections >= 1, `connections: ${usage.connections}`);
    });

    const ceiling = opts.sessions;
    if (ceiling) {
      test("an add-on's logins hold a bounded number of sessions; other add-ons and the admin still get in", async () => {
        const hog = resource('hog');
        const creds = await provider.provision(hog);
        const url = provider.url(creds, endpoint);
        const open: AppSession[] = [];
        try {
          // One more than the ceiling; before there was one, this took 50 of 100 slots per login.
          let refused: unknown;
          for (let i = 0; i <= ceiling.perLogin && refused === undefined; i++) {
            await opts.client.connect(url).then(
              (s) => open.push(s),
              (err: unknown) => {
                refused = err;
              },
            );
          }
          assert.equal(open.length, ceiling.perLogin, `sessions one login opened: ${open.length}`);
          assert.ok(refused, 'the session past the ceiling is refused');
          const other = await provider.createLogin(hog, 'b');
          if (ceiling.slotsShare) {
            await assert.rejects(
              opts.client.connect(provider.url(other, endpoint)),
              'slot b shares the ceiling',
            );
          } else {
            open.push(await opts.client.connect(provider.url(other, endpoint)));
          }
          // A neighbour and the admin are unaffected.
          const neighbour = await connect(await provider.provision(resource('neighbour')));
          await neighbour.ping();
          assert.ok((await provider.usage(hog)).connections >= ceiling.perLogin);
        } finally {
          for (const s of open) await s.close().catch(() => {});
        }
      });
    }

    test('deprovision closes sessions, refuses the login, and can run again', async () => {
      const r = resource('gone');
      const creds = await provider.provision(r);
      const s = await connect(creds);
      await s.writeSample();
      await provider.deprovision(r);
      await provider.deprovision(r);
      await assert.rejects(s.ping(), 'the open session is closed');
      await assert.rejects(opts.client.connect(provider.url(creds, endpoint)), 'the login is refused');
      // The same name can be provisioned afresh, with nothing of the old data.
      const again = await connect(await provider.provision(r));
      await assert.rejects(again.readSample(), 'no old data');
    });
  });
}
