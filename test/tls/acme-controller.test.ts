// The certificate controller's decisions (src/controllers/certificates.ts) with a real store
// and stand-in sources and router: which hosts want a certificate in each mode and from
// where, when one is renewed, how failures back off, what a directory in trouble holds back,
// a certificate the router refused kept for the next try, hosts no longer wanted, and a
// thousand apps. The real ACME exchange is test/tls/acme.test.ts's (pebble, a real Petri).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  CertificateController,
  type ObtainedCertificate,
  renewalTime,
} from '../../src/controllers/certificates.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import { type Certificate, listCertificates } from '../../src/domain/certificates.js';
import { loadConfig, type PetriConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { openStore, type Store } from '../../src/store/db.js';
import type { User } from '../../src/store/schema.js';

const DAY_MS = 86_400_000;

/** A source that hands out certificates of `lifeDays` (or fails as told), counting calls. */
class FakeSource {
  calls: string[] = [];
  failing: Error | undefined;
  serial = 0;
  constructor(
    private readonly issuer: string,
    private readonly clock: () => number,
    private readonly lifeDays = 90,
  ) {}
  async obtain(hosts: string[]): Promise<ObtainedCertificate> {
    this.calls.push(hosts.join(','));
    if (this.failing) throw this.failing;
    const now = this.clock();
    this.serial += 1;
    return {
      pem: `PEM ${hosts[0]} ${this.serial}`,
      issuer: this.issuer,
      serial: this.serial.toString(16),
      notBefore: new Date(now),
      notAfter: new Date(now + this.lifeDays * DAY_MS),
    };
  }
}

class FakeRouter {
  certs = new Map<string, string>();
  refusing = false;
  async setCertificate(name: string, pem: string): Promise<void> {
    if (this.refusing) throw new Error('the runtime API did not answer');
    this.certs.set(name, pem);
  }
  async removeCertificate(name: string): Promise<void> {
    this.certs.delete(name);
  }
}

describe('CertificateController', () => {
  let dir: string;
  let db: Store;
  let ana: User;
  let now = Date.parse('2026-12-03T09:00:00Z');
  const clock = () => now;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-certs-'));
    db = await openStore(path.join(dir, 'petri.db'));
    ana = await createUser(db, 'ana', 'member', { email: 'ana@example.org' });
    await createApp(db, ana, 'shop', { memoryMiB: 64, cpus: 1, pids: 32 });
  });

  // Every controller made here: a finished attempt nudges its loop, whose timer would keep
  // the test process alive after the last test.
  const made: CertificateController[] = [];
  after(async () => {
    await Promise.all(made.map((c) => c.stop()));
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const configWith = (tls: Partial<PetriConfig['tls']>, httpsPort = 8443): PetriConfig => {
    const base = loadConfig({ dataDir: dir });
    return { ...base, httpsPort, tls: { ...base.tls, ...tls } };
  };

  const controller = (
    config: PetriConfig,
    opts: { acme?: FakeSource; ca?: FakeSource; router?: FakeRouter; custom?: string[] } = {},
  ) => {
    const c = new CertificateController({
      db,
      config,
      router: opts.router ?? new FakeRouter(),
      sources: { ...(opts.acme && { acme: opts.acme }), ...(opts.ca && { 'local-ca': opts.ca }) },
      customHosts: async () => opts.custom ?? [],
      logger: createLogger('silent'),
      now: clock,
    });
    made.push(c);
    return c;
  };

  const rows = async () => new Map((await listCertificates(db)).map((r) => [r.host, r]));
  const clear = () => db.deleteFrom('certificates').execute();

  test('self-signed mode: custom domains get the local CA’s certificates, app hosts none of their own', async () => {
    await clear();
    const ca = new FakeSource('Petri local CA', clock, 397);
    const router = new FakeRouter();
    const c = controller(configWith({ mode: 'self-signed', acme: undefined }), {
      ca,
      router,
      custom: ['www.example.org'],
    });
    await c.tick();
    assert.deepEqual(ca.calls, ['www.example.org']);
    assert.deepEqual([...router.certs.keys()], ['www.example.org']);
    const row = (await rows()).get('www.example.org') as Certificate;
    assert.equal(row.source, 'local-ca');
    assert.equal(row.issuer, 'Petri local CA');
    assert.equal(row.last_outcome, 'ok');
    // Nothing due at the next pass.
    await c.tick();
    assert.equal(ca.calls.length, 1);
  });

  test('acme mode: the API host, every app host and custom domains, from the directory; none without HTTPS', async () => {
    await clear();
    const acme = new FakeSource('Pebble Intermediate CA', clock);
    const c = controller(
      configWith({
        mode: 'acme',
        acme: { directoryUrl: 'https://acme.invalid/dir', email: 'ops@example.org' },
      }),
      { acme, ca: new FakeSource('local', clock), custom: ['www.example.org'] },
    );
    assert.deepEqual([...(await c.wanted())].sort(), [
      ['petri.localhost', 'acme'],
      ['shop.petri.localhost', 'acme'],
      ['www.example.org', 'acme'],
    ]);
    await c.tick();
    assert.deepEqual(acme.calls.sort(), ['petri.localhost', 'shop.petri.localhost', 'www.example.org']);
    const off = controller(configWith({ mode: 'acme' }, 0), { acme, custom: ['www.example.org'] });
    assert.equal((await off.wanted()).size, 0);
  });

  test('renewal: renewBeforeDays before expiry, but never before a third of the life', () => {
    const from = '2026-01-01T00:00:00.000Z';
    const to = '2026-04-01T00:00:00.000Z'; // 90 days
    assert.equal(new Date(renewalTime(from, to, 30)).toISOString(), '2026-03-02T00:00:00.000Z');
    // A window longer than the life: a third of the way through.
    assert.equal(new Date(renewalTime(from, to, 365)).toISOString(), '2026-01-31T00:00:00.000Z');
  });

  test('a certificate is renewed once due, not before', async () => {
    await clear();
    const ca = new FakeSource('Petri local CA', clock, 90);
    const c = controller(configWith({ mode: 'self-signed', acme: undefined, renewBeforeDays: 30 }), {
      ca,
      custom: ['due.example.org'],
    });
    await c.tick();
    now += 59 * DAY_MS;
    await c.tick();
    assert.equal(ca.calls.length, 1, 'not yet at 59 days of 90');
    now += 2 * DAY_MS;
    await c.tick();
    assert.equal(ca.calls.length, 2, 'renewed at 61 days');
    assert.equal((await rows()).get('due.example.org')?.serial, '2');
  });

  test('failures: the reason recorded, 5 min then doubling; a directory in trouble holds the other hosts', async () => {
    await clear();
    const acme = new FakeSource('Pebble', clock);
    acme.failing = Object.assign(
      new Error('https://acme/dir: the ACME directory is not reachable (ECONNREFUSED)'),
      {
        directoryTrouble: true,
      },
    );
    const c = controller(
      configWith({ mode: 'acme', acme: { directoryUrl: 'https://acme/dir', email: 'o@example.org' } }),
      {
        acme,
      },
    );
    await c.tick();
    // One attempt, not one per host: the directory is down for all of them.
    assert.equal(acme.calls.length, 1);
    const failed = [...(await rows()).values()];
    assert.equal(failed.length, 1);
    assert.match(failed[0]?.last_outcome ?? '', /not reachable/);
    assert.equal(failed[0]?.failures, 1);
    assert.equal(Date.parse(failed[0]!.next_attempt_at!) - now, 5 * 60_000);
    // Still held within the directory's minute, then tried again (and failing again).
    now += 30_000;
    await c.tick();
    assert.equal(acme.calls.length, 1);
    now += 31_000;
    await c.tick();
    assert.equal(acme.calls.length, 2, 'the other host, after the directory’s delay');
    // A host's own failure (a challenge) holds no one else; its delay doubles.
    acme.failing = new Error('Get "http://lost/...": connection refused');
    now += 10 * 60_000;
    await c.tick();
    const again = [...(await rows()).values()].find((r) => r.failures === 2);
    assert.ok(again, 'the first host failed twice');
    assert.equal(Date.parse(again.next_attempt_at!) - now, 10 * 60_000);
    acme.failing = undefined;
    now += 20 * 60_000;
    await c.tick();
    for (const row of (await rows()).values()) {
      assert.equal(row.failures, 0);
      assert.equal(row.last_outcome, 'ok');
      assert.equal(row.next_attempt_at, null);
    }
  });

  test('a certificate the router refused is installed later without asking the CA again', async () => {
    await clear();
    const ca = new FakeSource('Petri local CA', clock);
    const router = new FakeRouter();
    router.refusing = true;
    const c = controller(configWith({ mode: 'self-signed', acme: undefined }), {
      ca,
      router,
      custom: ['kept.example.org'],
    });
    await c.tick();
    assert.equal(ca.calls.length, 1);
    assert.match((await rows()).get('kept.example.org')?.last_outcome ?? '', /runtime API/);
    router.refusing = false;
    now += 6 * 60_000;
    await c.tick();
    assert.equal(ca.calls.length, 1, 'the same certificate');
    assert.equal(router.certs.get('kept.example.org'), 'PEM kept.example.org 1');
  });

  test('a host no longer wanted keeps its certificate a day, then leaves the router; a domain given up, at once', async () => {
    await clear();
    const ca = new FakeSource('Petri local CA', clock);
    const router = new FakeRouter();
    const custom = ['old.example.org', 'gone.example.org'];
    const c = new CertificateController({
      db,
      config: configWith({ mode: 'self-signed', acme: undefined }),
      router,
      sources: { 'local-ca': ca },
      customHosts: async () => custom,
      logger: createLogger('silent'),
      now: clock,
    });
    made.push(c);
    await c.tick();
    // old.example.org is still claimed (its check failing for now); gone.example.org is not.
    const shop = await db
      .selectFrom('apps')
      .select('id')
      .where('name', '=', 'shop')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('domains')
      .values({
        app_id: shop.id,
        host: 'old.example.org',
        unicode: 'old.example.org',
        token: 't',
        state: 'failing',
        created_at: new Date(now).toISOString(),
        next_check_at: new Date(now).toISOString(),
      })
      .execute();
    custom.length = 0;
    await c.tick();
    assert.ok((await rows()).get('old.example.org')?.unwanted_since);
    assert.ok(router.certs.has('old.example.org'));
    assert.equal((await rows()).has('gone.example.org'), false, 'a domain given up goes at once');
    assert.equal(router.certs.has('gone.example.org'), false);
    now += DAY_MS + 1000;
    await c.tick();
    assert.equal((await rows()).has('old.example.org'), false);
    assert.equal(router.certs.has('old.example.org'), false);
  });

  test('a thousand apps: each gets its certificate, and a pass with nothing due is cheap', async (t) => {
    await clear();
    // Past the team's default quota of apps (a test's own store).
    await db.updateTable('teams').set({ quota_apps: 2000, quota_memory_mib: 1_000_000 }).execute();
    for (let i = 0; i < 1000; i++) await createApp(db, ana, `app${i}`, { memoryMiB: 64, cpus: 1, pids: 32 });
    const acme = new FakeSource('Pebble', clock);
    const c = controller(
      configWith({ mode: 'acme', acme: { directoryUrl: 'https://acme/dir', email: 'o@example.org' } }),
      {
        acme,
      },
    );
    await c.tick();
    assert.equal(acme.calls.length, 1002);
    const began = performance.now();
    await c.tick();
    const ms = performance.now() - began;
    assert.equal(acme.calls.length, 1002);
    t.diagnostic(`a quiet pass over 1002 hosts: ${ms.toFixed(1)} ms`);
    assert.ok(ms < 500, `a quiet pass over 1002 hosts took ${ms.toFixed(0)} ms`);
  });
});
