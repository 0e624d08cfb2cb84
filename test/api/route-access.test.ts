// Authorization on every route: each `METHOD path` of the OpenAPI document is called by
// every kind of caller (anonymous, a disabled user, viewer, member and admin of another
// team, viewer, member and admin of the app's team, an auditor, a platform admin) and the
// answer is checked against the level its row in route-access.ts names. A route without a
// row, or a row naming no route, fails. Then the cases a table cannot say: an app of
// another team is indistinguishable from a missing one, a viewer may fetch but not push,
// auditors read but never see secrets, a route without a level stops the server starting,
// and a sign-in session is re-checked with its provider.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import WebSocket from 'ws';
import { registerAccess } from '../../src/api/auth.js';
import type { ApiContext } from '../../src/api/context.js';
import { type Access, decide, requireTeamRole } from '../../src/domain/access.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { UserError } from '../../src/lib/errors.js';
import { DataPaths } from '../../src/lib/paths.js';
import { now, openStore, type Store } from '../../src/store/db.js';
import type { PlatformRole, TeamRole, Token, User } from '../../src/store/schema.js';
import { ROUTE_ACCESS } from './route-access.js';
import { buildTestApi } from './test-api.js';

type Who =
  | 'anonymous'
  | 'disabled'
  | 'other-viewer'
  | 'other-member'
  | 'other-admin'
  | 'viewer'
  | 'member'
  | 'team-admin'
  | 'auditor'
  | 'admin';
const EVERYONE: Who[] = [
  'anonymous',
  'disabled',
  'other-viewer',
  'other-member',
  'other-admin',
  'viewer',
  'member',
  'team-admin',
  'auditor',
  'admin',
];

type Expect = 'ok' | 401 | 403 | 404;

/** The design's table, by hand: what each caller gets at each level ('ok': not refused). */
const outsider = { 'other-viewer': 404, 'other-member': 404, 'other-admin': 404 } as const;
const noOne = { anonymous: 401, disabled: 401 } as const;
const MEANING: Record<Access, Record<Who, Expect>> = {
  public: Object.fromEntries(EVERYONE.map((w) => [w, 'ok'])) as Record<Who, Expect>,
  'signed-in': {
    ...noOne,
    'other-viewer': 'ok',
    'other-member': 'ok',
    'other-admin': 'ok',
    viewer: 'ok',
    member: 'ok',
    'team-admin': 'ok',
    auditor: 'ok',
    admin: 'ok',
  },
  'app.read': {
    ...noOne,
    ...outsider,
    viewer: 'ok',
    member: 'ok',
    'team-admin': 'ok',
    auditor: 'ok',
    admin: 'ok',
  },
  'app.write': {
    ...noOne,
    ...outsider,
    viewer: 403,
    member: 'ok',
    'team-admin': 'ok',
    auditor: 403,
    admin: 'ok',
  },
  'app.secrets': {
    ...noOne,
    ...outsider,
    viewer: 403,
    member: 'ok',
    'team-admin': 'ok',
    auditor: 403,
    admin: 'ok',
  },
  'app.admin': {
    ...noOne,
    ...outsider,
    viewer: 403,
    member: 403,
    'team-admin': 'ok',
    auditor: 403,
    admin: 'ok',
  },
  'team.read': {
    ...noOne,
    ...outsider,
    viewer: 'ok',
    member: 'ok',
    'team-admin': 'ok',
    auditor: 'ok',
    admin: 'ok',
  },
  'team.admin': {
    ...noOne,
    ...outsider,
    viewer: 403,
    member: 403,
    'team-admin': 'ok',
    auditor: 403,
    admin: 'ok',
  },
  'platform.read': {
    ...noOne,
    'other-viewer': 403,
    'other-member': 403,
    'other-admin': 403,
    viewer: 403,
    member: 403,
    'team-admin': 403,
    auditor: 'ok',
    admin: 'ok',
  },
  'platform.admin': {
    ...noOne,
    'other-viewer': 403,
    'other-member': 403,
    'other-admin': 403,
    viewer: 403,
    member: 403,
    'team-admin': 403,
    auditor: 403,
    admin: 'ok',
  },
};

const APP = 'lab-app';
const TEAM = 'lab';
const MISSING_APP = 'no-such-app';
const MISSING_TEAM = 'no-such-team';
/** Values for the parameters that are neither the app nor the team: they name nothing. */
const NOTHING: Record<string, string> = { email: 'nobody@example.org', addon: 'nothing', backup: 'b999999' };

/** Where each caller stands: platform role, and role in `lab` (the app's team) or `other`. */
const PEOPLE: Array<{
  who: Exclude<Who, 'anonymous'>;
  role: PlatformRole;
  lab?: TeamRole;
  other?: TeamRole;
}> = [
  { who: 'disabled', role: 'member', lab: 'admin' },
  { who: 'other-viewer', role: 'member', other: 'viewer' },
  { who: 'other-member', role: 'member', other: 'member' },
  { who: 'other-admin', role: 'member', other: 'admin' },
  { who: 'viewer', role: 'member', lab: 'viewer' },
  { who: 'member', role: 'member', lab: 'member' },
  { who: 'team-admin', role: 'member', lab: 'admin' },
  { who: 'auditor', role: 'auditor' },
  { who: 'admin', role: 'admin' },
];

describe('who may call each route', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens = new Map<Who, string>();
  const users = new Map<Who, User>();
  let rechecks: Array<{ user: string; token: number }> = [];
  let recheckAnswer: 'ok' | 'gone' = 'ok';

  const headers = (who: Who) => {
    const token = tokens.get(who);
    return token ? { authorization: `Bearer ${token}` } : {};
  };

  /** The shared team `name`, its members and (if given) its app: made, or put back as they
   * were if a route changed them. */
  async function ensureTeam(name: string, key: 'lab' | 'other', app?: string): Promise<void> {
    let team = await db.selectFrom('teams').select('id').where('name', '=', name).executeTakeFirst();
    team ??= await db
      .insertInto('teams')
      .values({ name, personal_of: null, created_at: now() })
      .returning('id')
      .executeTakeFirstOrThrow();
    for (const p of PEOPLE) {
      const role = p[key];
      if (!role) continue;
      await db
        .insertInto('team_members')
        .values({ team_id: team.id, user_id: users.get(p.who)!.id, role, created_at: now() })
        .onConflict((oc) => oc.columns(['team_id', 'user_id']).doUpdateSet({ role }))
        .execute();
    }
    if (!app) return;
    const row = await db
      .selectFrom('apps')
      .select(['id', 'team_id'])
      .where('name', '=', app)
      .executeTakeFirst();
    if (row && row.team_id === team.id) return;
    if (row) {
      await db.updateTable('apps').set({ team_id: team.id }).where('id', '=', row.id).execute();
      return;
    }
    const created = await db
      .insertInto('apps')
      .values({
        name: app,
        owner_id: users.get('admin')!.id,
        team_id: team.id,
        created_at: now(),
        memory_mib: 256,
        disk_mib: 1024,
        cpus: 1,
        pids: 256,
        desired_release_id: null,
        serving_release_id: null,
        boot_timeout_ms: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db.insertInto('formations').values({ app_id: created.id, type: 'web', quantity: 1 }).execute();
  }

  async function ensureFixture(): Promise<void> {
    await ensureTeam(TEAM, 'lab', APP);
    await ensureTeam('other', 'other', 'other-app');
    for (const p of PEOPLE) {
      await db
        .updateTable('users')
        .set({ role: p.role, disabled_at: p.who === 'disabled' ? now() : null })
        .where('id', '=', users.get(p.who)!.id)
        .execute();
    }
  }

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-access-'));
    db = await openStore(new DataPaths(dir).store);
    for (const p of PEOPLE) {
      const user = await createUser(db, `${p.who}@example.org`, p.role, { email: `${p.who}@example.org` });
      users.set(p.who, user);
      tokens.set(p.who, await issueToken(db, user.id, 'test'));
    }
    await ensureFixture();
    const identity = {
      recheck: async (user: User, token: Token) => {
        rechecks.push({ user: user.name, token: token.id });
        if (recheckAnswer === 'gone')
          throw new UserError('unauthorized', 'your sign-in provider says you are gone');
        await db.updateTable('users').set({ checked_at: now() }).where('id', '=', user.id).execute();
        return user;
      },
    };
    api = await buildTestApi(
      dir,
      db,
      {},
      {
        // Add-ons are never reached with a name that exists: each call answers like a missing one.
        addons: new Proxy({} as ApiContext['addons'], {
          get: (_target, name) =>
            name === 'types'
              ? []
              : () => {
                  throw new UserError('not_found', `add-on not found (addons.${String(name)} in this test)`);
                },
        }),
        ...({ identity } as unknown as Partial<ApiContext>),
      },
    );
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The request a row stands for, with the app or team replaced by `app`/`team`. */
  function requestFor(row: string, who: Who, names: { app: string; team: string }) {
    const [method, target] = row.split(' ') as [string, string];
    const [pathPart, query] = target.split('?') as [string, string | undefined];
    const url = pathPart.replace(/\{(\w+)\}/g, (_m, param: string) =>
      param === 'name' ? names.app : param === 'team' ? names.team : (NOTHING[param] ?? '999999'),
    );
    const withBody = method !== 'GET' && method !== 'HEAD';
    return api.inject({
      method: method as 'GET',
      url: query ? `${url}?${query}` : url,
      headers: headers(who),
      // Stops an allowed caller at validation where the route takes a body.
      ...(withBody ? { payload: { probeOfRouteAccess: true } } : {}),
    });
  }

  test('every route of the OpenAPI document has a row in route-access.ts, and every row a route', async () => {
    const doc = (await api.inject({ method: 'GET', url: '/v1/openapi.json' })).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const rowRoutes = new Set(ROUTE_ACCESS.map(([row]) => row.split('?')[0]));
    const missing = routes.filter((r) => !rowRoutes.has(r));
    assert.deepEqual(missing, [], `routes without a row in test/api/route-access.ts: ${missing.join(', ')}`);
    const stray = [...rowRoutes].filter((r) => !routes.includes(r!));
    assert.deepEqual(stray, [], `rows of test/api/route-access.ts that name no route: ${stray.join(', ')}`);
    const twice = ROUTE_ACCESS.map(([row]) => row).filter((row, i, all) => all.indexOf(row) !== i);
    assert.deepEqual(twice, [], `rows given twice: ${twice.join(', ')}`);
  });

  test('each route answers each caller as its level says', async () => {
    const wrong: string[] = [];
    for (const [row, level] of ROUTE_ACCESS) {
      for (const who of EVERYONE) {
        await ensureFixture();
        const expected = MEANING[level][who];
        const res = await requestFor(row, who, { app: APP, team: TEAM });
        const body = safeJson(res);
        if (expected === 'ok') {
          const refused =
            res.statusCode === 401 ||
            (res.statusCode === 403 && body?.error?.code === 'forbidden') ||
            (res.statusCode === 404 && isTargetNotFound(body));
          if (refused)
            wrong.push(`${row} as ${who}: ${res.statusCode} ${res.body.slice(0, 160)}, expected allowed`);
          continue;
        }
        if (res.statusCode !== expected) {
          wrong.push(`${row} as ${who}: ${res.statusCode} ${res.body.slice(0, 160)}, expected ${expected}`);
          continue;
        }
        if (expected === 404) {
          // Exactly what the same caller gets for an app or team that does not exist.
          const gone = await requestFor(row, who, { app: MISSING_APP, team: MISSING_TEAM });
          const same = gone.body.replaceAll(MISSING_APP, APP).replaceAll(MISSING_TEAM, TEAM);
          if (gone.statusCode !== 404 || same !== res.body) {
            wrong.push(
              `${row} as ${who}: 404 ${res.body} differs from a missing one's ${gone.statusCode} ${gone.body}`,
            );
          }
        } else {
          const code = expected === 401 ? 'unauthorized' : 'forbidden';
          if (body?.error?.code !== code) wrong.push(`${row} as ${who}: ${res.body}, expected code ${code}`);
        }
      }
    }
    assert.deepEqual(wrong, []);
  });

  test("another team's app answers exactly as a missing app: GET, PATCH config, DELETE, git info/refs", async () => {
    await ensureFixture();
    const hidden = 'hidden-app';
    await ensureTeam('other', 'other', hidden);
    const basic = `Basic ${Buffer.from(`git:${tokens.get('member')}`).toString('base64')}`;
    const calls = [
      { method: 'GET', url: `/v1/apps/${hidden}` },
      { method: 'PATCH', url: `/v1/apps/${hidden}/config`, payload: { set: { A: '1' } } },
      { method: 'DELETE', url: `/v1/apps/${hidden}?confirm=${hidden}` },
      { method: 'GET', url: `/v1/apps/${hidden}/git/info/refs?service=git-upload-pack`, basic: true },
      { method: 'GET', url: `/v1/apps/${hidden}/git/info/refs?service=git-receive-pack`, basic: true },
    ] as const;
    const send = (c: (typeof calls)[number]) =>
      api.inject({
        method: c.method,
        url: c.url,
        headers: 'basic' in c ? { authorization: basic } : headers('member'),
        ...('payload' in c ? { payload: c.payload } : {}),
      });
    const seen: LightMyRequestResponse[] = [];
    for (const c of calls) seen.push(await send(c));
    // Now it is gone for real: the member gets the very same answers.
    await db
      .deleteFrom('formations')
      .where('app_id', 'in', db.selectFrom('apps').select('id').where('name', '=', hidden))
      .execute();
    await db.deleteFrom('apps').where('name', '=', hidden).execute();
    for (const [i, c] of calls.entries()) {
      const gone = await send(c);
      const was = seen[i]!;
      assert.equal(was.statusCode, 404, `${c.method} ${c.url}: ${was.body}`);
      assert.equal(was.body, gone.body, `${c.method} ${c.url}`);
      assert.deepEqual(
        [was.headers['content-type'], was.headers['content-length'], was.headers['www-authenticate']],
        [gone.headers['content-type'], gone.headers['content-length'], gone.headers['www-authenticate']],
      );
    }
    assert.deepEqual(JSON.parse(seen[0]!.body), {
      error: { code: 'not_found', message: "app 'hidden-app' not found; list your apps with 'petri apps'" },
    });
  });

  test('a viewer may fetch with git but not push; a member may push', async () => {
    await ensureFixture();
    const basic = (who: Who) => ({
      authorization: `Basic ${Buffer.from(`git:${tokens.get(who)}`).toString('base64')}`,
    });
    const refs = (who: Who, service: string) =>
      api.inject({
        method: 'GET',
        url: `/v1/apps/${APP}/git/info/refs?service=${service}`,
        headers: basic(who),
      });
    const fetchRefs = await refs('viewer', 'git-upload-pack');
    assert.equal(fetchRefs.statusCode, 200, fetchRefs.body);
    assert.ok(fetchRefs.body.startsWith('001e# service=git-upload-pack\n'));
    const pushRefs = await refs('viewer', 'git-receive-pack');
    assert.equal(pushRefs.statusCode, 403);
    assert.match(
      pushRefs.json().error.message,
      /needs the member role in the team of app 'lab-app'; you are a viewer/,
    );
    const push = await api.inject({
      method: 'POST',
      url: `/v1/apps/${APP}/git/git-receive-pack`,
      headers: { ...basic('viewer'), 'content-type': 'application/x-git-receive-pack-request' },
      payload: Buffer.from('0000'),
    });
    assert.equal(push.statusCode, 403);
    assert.equal((await refs('member', 'git-receive-pack')).statusCode, 200);
    // A query that is not exactly a fetch's needs the push's level.
    for (const query of [
      'service=git-receive-pack&service=git-receive-pack',
      'service=git-upload-pack&service=git-receive-pack',
      'service=GIT-UPLOAD-PACK',
      '',
    ]) {
      const odd = await api.inject({
        method: 'GET',
        url: `/v1/apps/${APP}/git/info/refs?${query}`,
        headers: basic('viewer'),
      });
      assert.equal(odd.statusCode, 403, `${query}: ${odd.body}`);
    }
    // git's 401 still asks for credentials; a 403 does not (git would prompt again in vain).
    const anonymous = await api.inject({
      method: 'GET',
      url: `/v1/apps/${APP}/git/info/refs?service=git-upload-pack`,
    });
    assert.equal(anonymous.statusCode, 401);
    assert.equal(anonymous.headers['www-authenticate'], 'Basic realm="Petri"');
    assert.equal(pushRefs.headers['www-authenticate'], undefined);
  });

  test('who you are is answered before what you sent: a viewer with a bad body gets 403, not 400', async () => {
    await ensureFixture();
    const res = await api.inject({
      method: 'PATCH',
      url: `/v1/apps/${APP}/config`,
      headers: headers('viewer'),
      payload: { set: 'not an object' },
    });
    assert.equal(res.statusCode, 403);
    // Not even parsed: malformed JSON, or an upload, is refused as the viewer's.
    const malformed = await api.inject({
      method: 'PATCH',
      url: `/v1/apps/${APP}/config`,
      headers: { ...headers('viewer'), 'content-type': 'application/json' },
      payload: '{"set": ',
    });
    assert.equal(malformed.statusCode, 403);
    const upload = await api.inject({
      method: 'POST',
      url: `/v1/apps/${APP}/deploys`,
      headers: { ...headers('viewer'), 'content-type': 'application/gzip' },
      payload: Buffer.from('not a tarball'),
    });
    assert.equal(upload.statusCode, 403);
    const hidden = await api.inject({
      method: 'PATCH',
      url: `/v1/apps/${APP}/config`,
      headers: { ...headers('other-member'), 'content-type': 'application/json' },
      payload: '{"set": ',
    });
    assert.equal(hidden.statusCode, 404);
    const member = await api.inject({
      method: 'PATCH',
      url: `/v1/apps/${APP}/config`,
      headers: headers('member'),
      payload: { set: 'not an object' },
    });
    assert.equal(member.statusCode, 400);
  });

  test('petri run: the WebSocket upgrade is refused before it happens (viewer 403, outsider 404); a member gets one', async () => {
    await ensureFixture();
    await api.listen({ port: 0, host: '127.0.0.1' });
    const { port } = api.server.address() as AddressInfo;
    const connect = (who: Who) =>
      new Promise<number>((resolve, reject) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}/v1/apps/${APP}/run`, { headers: headers(who) });
        socket.on('unexpected-response', (_req, res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        socket.on('open', () => {
          socket.close();
          resolve(101);
        });
        socket.on('error', reject);
      });
    assert.equal(await connect('viewer'), 403);
    assert.equal(await connect('auditor'), 403);
    assert.equal(await connect('other-admin'), 404);
    assert.equal(await connect('anonymous'), 401);
    assert.equal(await connect('member'), 101);
  });

  test('HEAD of an app of another team answers as HEAD of a missing one', async () => {
    await ensureFixture();
    const head = (name: string) =>
      api.inject({ method: 'HEAD', url: `/v1/apps/${name}`, headers: headers('other-member') });
    const hidden = await head(APP);
    const missing = await head(MISSING_APP);
    assert.equal(hidden.statusCode, 404);
    assert.equal(missing.statusCode, 404);
    assert.equal(
      hidden.headers['content-length'],
      String(Number(missing.headers['content-length']) + APP.length - MISSING_APP.length),
    );
    const seen = await api.inject({ method: 'HEAD', url: `/v1/apps/${APP}`, headers: headers('viewer') });
    assert.equal(seen.statusCode, 200);
  });

  test('auditors read everything but secrets: the egress report and backup list yes, config and dumps no', async () => {
    await ensureFixture();
    const get = (url: string) => api.inject({ method: 'GET', url, headers: headers('auditor') });
    assert.equal((await get('/v1/egress/report')).statusCode, 200);
    assert.equal((await get('/v1/addon-backups')).statusCode, 200);
    assert.equal((await get(`/v1/apps/${APP}`)).statusCode, 200);
    const config = await get(`/v1/apps/${APP}/config`);
    assert.equal(config.statusCode, 403);
    assert.match(config.json().error.message, /auditors read but do not change or see secrets/);
    assert.equal((await get('/v1/addon-backups/b1/download')).statusCode, 403);
    assert.equal((await get(`/v1/apps/${APP}/addons/db/backups/b1/download`)).statusCode, 403);
  });

  test('petri apps lists the apps of your teams; admins and auditors see all', async () => {
    await ensureFixture();
    const names = async (who: Who) =>
      (
        (await api.inject({ method: 'GET', url: '/v1/apps', headers: headers(who) })).json() as {
          apps: Array<{ name: string }>;
        }
      ).apps.map((a) => a.name);
    assert.deepEqual(await names('viewer'), [APP]);
    assert.deepEqual(await names('other-member'), ['other-app']);
    assert.deepEqual(await names('auditor'), [APP, 'other-app']);
    assert.deepEqual(await names('admin'), [APP, 'other-app']);
  });

  test('a person who signs in with LDAP or OIDC is re-checked, whichever token they use, once recheckSeconds have passed', async () => {
    await ensureFixture();
    const member = users.get('member')!;
    const session = await issueToken(db, member.id, 'sign-in', { kind: 'session' });
    const call = (token = session) =>
      api.inject({ method: 'GET', url: '/v1/apps', headers: { authorization: `Bearer ${token}` } });
    const age = new Date(Date.now() - 901_000).toISOString();
    const checkedAt = (at: string | null) =>
      db.updateTable('users').set({ checked_at: at }).where('id', '=', member.id).execute();
    rechecks = [];
    try {
      // A local account has no provider to ask (its state is read on every request).
      assert.equal((await call()).statusCode, 200);
      assert.deepEqual(rechecks, [], 'a local account is not re-checked');
      await db.updateTable('users').set({ provider: 'ldap' }).where('id', '=', member.id).execute();
      await checkedAt(now());
      assert.equal((await call()).statusCode, 200);
      assert.deepEqual(rechecks, [], 'a person checked just now is not re-checked at once');
      await checkedAt(age);
      assert.equal((await call()).statusCode, 200);
      assert.equal(rechecks.length, 1);
      assert.equal((await call()).statusCode, 200);
      assert.equal(rechecks.length, 1, 'the re-check stamped the person: no second one');
      // The person is re-checked, not the token: an API token of theirs too.
      await checkedAt(age);
      assert.equal((await call(tokens.get('member'))).statusCode, 200);
      assert.equal(rechecks.length, 2, 'an API token of an LDAP person is re-checked');
      await checkedAt(age);
      recheckAnswer = 'gone';
      const res = await call(tokens.get('member'));
      assert.equal(res.statusCode, 401);
      assert.match(res.json().error.message, /provider says you are gone/);
    } finally {
      recheckAnswer = 'ok';
      await db
        .updateTable('users')
        .set({ provider: 'local', checked_at: null })
        .where('id', '=', member.id)
        .execute();
    }
  });

  test('a route that declares no access level stops the server from starting', async () => {
    const bare = Fastify();
    registerAccess(bare, {} as ApiContext);
    assert.throws(
      () => bare.get('/v1/forgotten', async () => 'open to all'),
      /route GET \/v1\/forgotten declares no access level/,
    );
    assert.throws(
      () => bare.get('/v1/typo', { config: { access: 'app.reed' as Access } }, async () => 'x'),
      /declares no access level/,
    );
    await bare.close();
  });
});

describe('the decision', () => {
  const member = { role: 'member', disabled_at: null } as const;
  const auditor = { role: 'auditor', disabled_at: null } as const;
  const admin = { role: 'admin', disabled_at: null } as const;

  test('a disabled admin is refused everything but public routes', () => {
    const disabled = { role: 'admin', disabled_at: '2027-01-01T00:00:00Z' } as const;
    assert.equal(decide(disabled, 'app.read', 'admin'), 'unauthorized');
    assert.equal(decide(disabled, 'public'), 'ok');
  });

  test('an auditor in a team has their team role there too', () => {
    assert.equal(decide(auditor, 'app.write', 'member'), 'ok');
    assert.equal(decide(auditor, 'app.write', 'viewer'), 'forbidden');
    assert.equal(decide(auditor, 'app.read', null), 'ok');
  });

  test('requireTeamRole: outsiders get the missing team, members below the role 403, admins pass', () => {
    const code = (fn: () => void) => {
      try {
        fn();
        return 'ok';
      } catch (err) {
        return (err as UserError).code;
      }
    };
    assert.equal(
      code(() => requireTeamRole(member, null, 'member', 'labs')),
      'not_found',
    );
    assert.equal(
      code(() => requireTeamRole(member, 'viewer', 'member', 'labs')),
      'forbidden',
    );
    assert.equal(
      code(() => requireTeamRole(member, 'member', 'member', 'labs')),
      'ok',
    );
    assert.equal(
      code(() => requireTeamRole(member, 'member', 'admin', 'labs')),
      'forbidden',
    );
    assert.equal(
      code(() => requireTeamRole(admin, null, 'admin', 'labs')),
      'ok',
    );
    assert.equal(
      code(() => requireTeamRole(auditor, null, 'member', 'labs')),
      'forbidden',
    );
    assert.equal(
      code(() => requireTeamRole(null, 'admin', 'viewer', 'labs')),
      'unauthorized',
    );
    assert.throws(() => requireTeamRole(member, null, 'viewer', 'labs'), /team 'labs' not found/);
  });
});

function safeJson(res: LightMyRequestResponse): { error?: { code?: string; message?: string } } | undefined {
  try {
    return res.json();
  } catch {
    return undefined;
  }
}

/** The access hook's 404: the app or team of the route is not there (for this caller). */
function isTargetNotFound(body: ReturnType<typeof safeJson>): boolean {
  return body?.error?.code === 'not_found' && /^(app|team) '[^']*' not found/.test(body.error.message ?? '');
}
