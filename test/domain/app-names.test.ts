// Reserved app names (issue 20): an app is served at NAME.<domain>, so a new app may not take
// a host that means something there (mta-sts, autoconfig, wpad, www, mail, ns1, api ...), nor
// the API's own host, nor what the operator reserved;
// every spelling a tenant might try is refused, with why and what to do. Apps that had such
// a name before keep working, and one on the API's host no longer stops the router's updates.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { InstanceReconciler } from '../../src/controllers/instances.js';
import { createApp } from '../../src/domain/apps.js';
import { reservedAppName, validateNewAppName } from '../../src/domain/names.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import { groupRoutes } from '../../src/router/routes.js';
import { openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from '../api/test-api.js';
import { FakeDriver } from '../fakes/fake-driver.js';
import { FakeRouter } from '../fakes/fake-router.js';

const where = { domain: 'petri.example.net', apiHost: 'petri.example.net', domains: {} };
const refused = (name: string, pattern: RegExp, at: Parameters<typeof validateNewAppName>[1] = where) =>
  assert.throws(
    () => validateNewAppName(name, at),
    (err: Error) => {
      assert.match(err.message, pattern);
      return true;
    },
    name,
  );

describe('reserved app names', () => {
  test('names that mean something at NAME.<domain> are refused, saying why and what to do', () => {
    refused('mta-sts', /app name 'mta-sts' is reserved: .*MTA-STS.*; pick another name, like 'mta-sts-app'/);
    refused('autoconfig', /mail clients fetch their server settings from autoconfig\.petri\.example\.net/);
    refused('autodiscover', /mail clients fetch their server settings/);
    refused('wpad', /ask wpad\.petri\.example\.net for a proxy/);
    refused('isatap', /proxy or a tunnel/);
    refused('localhost', /proxy or a tunnel/);
    refused('openpgpkey', /WKD/);
    for (const name of ['www', 'api', 'petri', 'status', 'login', 'admin', 'administrator', 'dashboard']) {
      refused(name, /is reserved: /);
    }
    for (const name of ['mail', 'smtp', 'imap', 'pop', 'mx', 'ns', 'webmail']) {
      refused(name, /a mail, DNS or file server/);
    }
    // Mailbox names are the mail relay's (an app so named mails as NAME.app@): as hosts they
    // mean nothing.
    for (const name of ['postmaster', 'hostmaster', 'abuse', 'noreply']) {
      assert.equal(validateNewAppName(name, where), name);
    }
  });

  test('the numbered ones too (ns1, mx2, www2, pop3, smtp01), not names that only start the same', () => {
    for (const name of ['ns1', 'ns2', 'ns10', 'mx2', 'www2', 'pop3', 'smtp01', 'mail2', 'imap4']) {
      refused(name, /is reserved: /);
    }
    for (const name of ['nsfw-quiz', 'mailer', 'www-quiz', 'status-board', 'api-demo', 'mta-sts2x', 'shop']) {
      assert.equal(validateNewAppName(name, where), name);
    }
  });

  test('other spellings of a reserved name are no name at all: upper case, a trailing dot, punycode, a host', () => {
    // App names are lower-case ASCII letters, digits and single hyphens, nothing folded: no
    // spelling of 'wpad' other than itself becomes a host.
    for (const name of [
      'WPAD',
      'Mta-Sts',
      'wpad.',
      'xn--wpad-',
      'xn--mta-sts',
      'wpad.petri.example.net',
      'www-',
      '_acme-challenge',
      'ｗｐａｄ',
      'wpаd',
    ]) {
      refused(name, /app name must match|must not end with '-' or contain '--'/);
    }
  });

  test("the API's host under the domain is refused, whatever its first label", () => {
    const under = { domain: 'example.net', apiHost: 'paas.example.net', domains: {} };
    refused('paas', /paas\.example\.net is the Petri API's host/, under);
    assert.equal(reservedAppName('paas', where), undefined);
    // Above the domain or beside it, no app name reaches it.
    assert.equal(reservedAppName('paas', { ...under, apiHost: 'paas.example.org' }), undefined);
  });

  test('the operator adds names (domains.reservedAppNames); a name not in lower case is refused at start', () => {
    const config = loadConfig({ dataDir: '/tmp/x', domains: { reservedAppNames: ['vpn', 'intranet'] } });
    const at = { ...config, domain: 'corp.example' };
    refused('vpn', /app name 'vpn' is reserved: the operator reserved it \(domains\.reservedAppNames\)/, at);
    refused('intranet', /the operator reserved it/, at);
    assert.equal(validateNewAppName('vpn-quiz', at), 'vpn-quiz');
    assert.throws(
      () => loadConfig({ dataDir: '/tmp/x', domains: { reservedAppNames: ['VPN'] } }),
      /configuration 'domains\.reservedAppNames' must be app names like \['vpn', 'intranet'\] \(lower case\), got "VPN"/,
    );
    assert.throws(
      () => loadConfig({ dataDir: '/tmp/x', domains: { reservedAppNames: 'vpn' } }),
      /a list of strings/,
    );
  });
});

describe('reserved app names through the API, and apps that had one', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};
  const create = (name: string) =>
    api.inject({
      method: 'POST',
      url: '/v1/apps',
      payload: { name },
      headers: { authorization: `Bearer ${tokens.ana}` },
    });

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-app-names-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(db, [['ana', 'member']], tokens, ids);
    api = await buildTestApi(dir, db, {
      domain: 'apps.example.net',
      apiHost: 'api.apps.example.net',
      domains: { reservedAppNames: ['intranet'] },
    });
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('creating one answers 400 with why, and makes no app', async () => {
    for (const [name, why] of [
      ['mta-sts', /MTA-STS/],
      ['wpad', /wpad\.apps\.example\.net/],
      ['ns1', /DNS/],
      ['intranet', /the operator reserved it/],
      ['api', /api\.apps\.example\.net is the Petri API's host/],
    ] as const) {
      const res = await create(name);
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.json().error.message, why);
    }
    const made = await db.selectFrom('apps').select('name').execute();
    assert.deepEqual(made, []);
    assert.equal((await create('shop')).statusCode, 201);
  });

  test('an app that took such a name before keeps working', async () => {
    const ana = await db.selectFrom('users').selectAll().where('id', '=', ids.ana!).executeTakeFirstOrThrow();
    await createApp(db, ana, 'www', { memoryMiB: 64, cpus: 1, pids: 32 });
    const res = await api.inject({
      method: 'GET',
      url: '/v1/apps/www',
      headers: { authorization: `Bearer ${tokens.ana}` },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().name, 'www');
  });

  test("an app on the API's host (made before) is left off the router; the others keep their routes", async () => {
    const ana = await db.selectFrom('users').selectAll().where('id', '=', ids.ana!).executeTakeFirstOrThrow();
    await createApp(db, ana, 'api', { memoryMiB: 64, cpus: 1, pids: 32 });
    const paths = new DataPaths(dir);
    const logs = new LogStore({ dir: paths.logs });
    const router = new FakeRouter();
    const config = loadConfig({ dataDir: dir, domain: 'apps.example.net', apiHost: 'api.apps.example.net' });
    const reconciler = new InstanceReconciler({
      db,
      driver: new FakeDriver({ output: logs }),
      router,
      paths,
      config,
      secrets: SecretBox.withKey(Buffer.alloc(32, 1)),
      logs,
      deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
      logger: createLogger('fatal', new Writable({ write: (_c, _e, done) => done() })),
    });
    try {
      await reconciler.reconcileNow();
      const routes = router.applied.at(-1) ?? [];
      assert.deepEqual(routes.map((r) => r.host).sort(), ['shop.apps.example.net', 'www.apps.example.net']);
      // What the HAProxy router checks first: with the API's host among them, every route
      // change was refused.
      assert.doesNotThrow(() => groupRoutes(routes, config.apiHost));
      assert.throws(
        () => groupRoutes([...routes, { ...routes[0]!, app: 'api', host: config.apiHost }], config.apiHost),
        /already routed to the Petri API/,
      );
    } finally {
      await reconciler.stop();
    }
  });
});
