// Attack (issue 20, certificates): a tenant fills the router with certificates by cycling
// custom domains. A verified domain gets a certificate at once (from the local CA in the
// default self-signed mode, from the ACME directory with tls.acme), and a removed one keeps
// it in the router, on disk and in the store for a day (controllers/certificates.ts,
// UNWANTED_GRACE_MS). With wildcard DNS (*.evil.test -> the platform) a member claims 20
// fresh names, waits the seconds verification takes, removes them and starts again: within
// the app's limit of 20 domains, every cycle adds 20 certificates that HAProxy keeps in memory
// and in its crt-list, and (with tls.acme) 20 orders on the platform's one ACME account, whose
// rate limits (Let's Encrypt: 300 new orders per 3 h) then hold every other app's renewals.
// Here, real domain claims, removals and checks in a real store with the real controller.
// Fix: a certificate whose custom domain was removed goes at once (the grace day is for app
// hosts and flapping checks), and new certificates per team are rate-limited (claims per hour),
// so what a team holds stays within a bound of its domain limit.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CertificateController, type ObtainedCertificate } from '../../src/controllers/certificates.js';
import { createApp } from '../../src/domain/apps.js';
import { createUser } from '../../src/domain/auth.js';
import {
  addDomain,
  domainHostsWantingCertificates,
  recordDomainCheck,
  removeDomain,
} from '../../src/domain/domains.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { openStore, type Store } from '../../src/store/db.js';

const DAY_MS = 86_400_000;

let dir: string;
let db: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'attack20-churn-'));
  db = await openStore(path.join(dir, 'petri.db'));
});
after(async () => {
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test('cycling custom domains does not pile up certificates beyond what the app may hold', async () => {
  const base = loadConfig({ dataDir: dir });
  const config = { ...base, httpsPort: 8443 };
  assert.equal(config.tls.mode, 'self-signed');
  const mallory = await createUser(db, 'mallory', 'member', { email: 'm@example.org' });
  const app = await createApp(db, mallory, 'churn', { memoryMiB: 64, cpus: 1, pids: 32 });
  let issued = 0;
  const ca = {
    async obtain(hosts: string[]): Promise<ObtainedCertificate> {
      issued += 1;
      const now = Date.now();
      return {
        pem: `PEM ${hosts[0]}`,
        issuer: 'Petri local CA',
        serial: issued.toString(16),
        notBefore: new Date(now),
        notAfter: new Date(now + 397 * DAY_MS),
      };
    },
  };
  const inRouter = new Set<string>();
  const controller = new CertificateController({
    db,
    config,
    router: {
      setCertificate: async (name) => void inRouter.add(name),
      removeCertificate: async (name) => void inRouter.delete(name),
    },
    sources: { 'local-ca': ca },
    customHosts: () => domainHostsWantingCertificates(db),
    logger: createLogger('silent'),
  });
  const cycles = 10;
  let refused: unknown;
  cycling: for (let cycle = 0; cycle < cycles; cycle++) {
    const names = Array.from({ length: config.domains.maxPerApp }, (_, i) => `n${cycle}-${i}.evil.test`);
    const claimed: string[] = [];
    for (const name of names) {
      try {
        const d = await addDomain(db, mallory, app, name, config);
        claimed.push(name);
        // What the verifier records once it sees the wildcard DNS point at the platform.
        await recordDomainCheck(db, d.id, { ok: true });
      } catch (err) {
        refused = err;
        break cycling;
      }
    }
    await controller.tick();
    for (const name of claimed) await removeDomain(db, mallory, app, name, config);
    await controller.tick();
  }
  await controller.stop();
  // The claims per team and hour stop the cycling (domains.claimsPerTeamPerHour).
  assert.match(String((refused as Error | undefined)?.message), /claimsPerTeamPerHour/);
  const rows = await db.selectFrom('certificates').select('host').execute();
  const bound = 2 * config.domains.maxPerApp;
  assert.ok(
    inRouter.size <= bound && issued <= bound,
    `after ${cycles} cycles of ${config.domains.maxPerApp} names (seconds of work): ${issued} certificates issued, ${inRouter.size} in the router, ${rows.length} rows, for an app that may hold ${config.domains.maxPerApp} domains`,
  );
});
