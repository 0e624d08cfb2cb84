// Attack (issue 20, certificates): one tenant's custom domains starve every other host of its
// certificate. The certificate controller (controllers/certificates.ts) attempts due hosts one
// after the other in a pass, each ACME attempt allowed up to 5 minutes (AcmeIssuer's
// obtainMs). A tenant with a few verified custom domains whose HTTP-01 validation is slow
// (their own DNS sends the CA, not Petri's resolver, to a server that trickles its answer)
// holds the pass for minutes per name: 20 apps x 20 domains is over a day during which no new
// app host, no other team's domain and no renewal gets a certificate (browsers refuse the
// default one). Attempts are also retried on a backoff, so the stall comes back.
// Fix: no host's attempt may hold up another's: attempts run concurrently with a bound and
// fair share per team (or a short per-attempt deadline with the slow host set aside), so a
// new host of another team is served within seconds whatever one tenant's names do.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CertificateController, type ObtainedCertificate } from '../../src/controllers/certificates.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { until } from '../../src/lib/until.js';
import { openStore, type Store } from '../../src/store/db.js';

const DAY_MS = 86_400_000;
const TARPIT = /\.tarpit\.test$/;

/** An ACME directory whose validation of the tarpit's names takes as long as the attempt is
 * let run (the CA waits on the tenant's slow server); any other name is issued at once. */
class SlowForTarpit {
  started: string[] = [];
  async obtain(hosts: string[], signal?: AbortSignal): Promise<ObtainedCertificate> {
    const host = hosts[0] as string;
    this.started.push(host);
    if (TARPIT.test(host)) {
      await new Promise<void>((_, reject) => {
        const timer = setTimeout(() => reject(new Error('validation timed out')), 5 * 60_000);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          reject(new Error('stopped'));
        });
      });
    }
    const now = Date.now();
    return {
      pem: `PEM ${host}`,
      issuer: 'Fake ACME',
      serial: '1',
      notBefore: new Date(now),
      notAfter: new Date(now + 90 * DAY_MS),
    };
  }
}

let dir: string;
let db: Store;
before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'attack20-certs-'));
  db = await openStore(path.join(dir, 'petri.db'));
});
after(async () => {
  await db?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

test("a tenant's slow-validating custom domains do not keep another team's domain from its certificate", async () => {
  const base = loadConfig({ dataDir: dir });
  const config = {
    ...base,
    httpsPort: 8443,
    tls: {
      ...base.tls,
      mode: 'self-signed' as const,
      acme: { directoryUrl: 'https://acme.invalid/dir', email: 'ops@example.org' },
    },
  };
  const acme = new SlowForTarpit();
  const installed = new Set<string>();
  // The attacker's 20 verified names sort before the victim's (names are the attacker's to pick).
  const attacker = Array.from({ length: 20 }, (_, i) => `a${String(i).padStart(2, '0')}.tarpit.test`);
  const c = new CertificateController({
    db,
    config,
    router: {
      setCertificate: async (name) => void installed.add(name),
      removeCertificate: async () => {},
    },
    sources: { acme },
    customHosts: async () => [...attacker, 'www.victim.test'],
    logger: createLogger('silent'),
  });
  c.start();
  try {
    await until(async () => installed.has('www.victim.test'), {
      timeout: 15_000,
      message: 'the victim',
    }).catch(() => undefined);
    assert.ok(
      installed.has('www.victim.test'),
      `www.victim.test has no certificate after 15 s; attempts started: ${acme.started.join(' ')}`,
    );
  } finally {
    await c.stop();
  }
});
