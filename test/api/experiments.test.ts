// Experiments through the API as people use them: describing one at creation and later
// (petri apps create/set), the data class rules (personal needs a privacy note and a
// retention; sensitive awaits an admin's approval, which a change of class takes back),
// stages and redirects (admins, team admins), the inventory (who sees which rows, filters,
// CSV) and the report's figures. Each refusal is checked with the field it names, and
// each change with its audit event.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.js';
import { describeFromManifest } from '../../src/domain/experiments.js';
import { emptyCounters, recordMinutes, unixMinute } from '../../src/domain/metrics.js';
import { DataPaths } from '../../src/lib/paths.js';
import { now, openStore, type Store } from '../../src/store/db.js';
import { addUsers, buildTestApi } from './test-api.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

describe('experiments', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  const tokens: Record<string, string> = {};
  const ids: Record<string, number> = {};

  const call = (who: string, method: Method, url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${tokens[who]}` } });
  const message = (res: { json: () => { error: { message: string } } }) => res.json().error.message;
  const set = (who: string, app: string, body: object) =>
    call(who, 'PATCH', `/v1/apps/${app}/experiment`, body);
  const events = (action: string, target: string) =>
    db
      .selectFrom('audit_events')
      .select(['actor', 'detail', 'app'])
      .where('action', '=', action)
      .where('target', '=', target)
      .orderBy('id')
      .execute();
  const row = (name: string) =>
    db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirstOrThrow();

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-experiments-'));
    db = await openStore(new DataPaths(dir).store);
    await addUsers(
      db,
      [
        ['root', 'admin'],
        ['ana', 'member'],
        ['bob', 'member'],
        ['vic', 'member'],
        ['aud', 'auditor'],
      ],
      tokens,
      ids,
    );
    // Apps here have no add-on: destroying one has none to back up.
    const addons = { destroyAllOf: async () => {} } as unknown as ApiContext['addons'];
    api = await buildTestApi(dir, db, { lifecycle: { defaultDays: 30 } }, { addons });
    // ana's team "labs": bob a member, vic a viewer.
    assert.equal((await call('ana', 'POST', '/v1/teams', { name: 'labs' })).statusCode, 201);
    assert.equal(
      (await call('ana', 'PUT', '/v1/teams/labs/members/bob@example.org', { role: 'member' })).statusCode,
      200,
    );
    assert.equal(
      (await call('ana', 'PUT', '/v1/teams/labs/members/vic@example.org', { role: 'viewer' })).statusCode,
      200,
    );
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('petri apps create takes a description and a data class; the class defaults to none', async () => {
    const plain = await call('ana', 'POST', '/v1/apps', { name: 'plain', team: 'labs' });
    assert.equal(plain.statusCode, 201, plain.body);
    const e = plain.json().experiment;
    assert.equal(e.dataClass, 'none');
    assert.equal(e.stage, 'experiment');
    assert.equal(e.description, '');
    // A new experiment lives lifecycle.defaultDays (30 here) from its creation.
    const days = (Date.parse(e.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, String(days));

    const res = await call('ana', 'POST', '/v1/apps', {
      name: 'survey',
      team: 'labs',
      description: 'Asks testers\nwhat they think',
      data: 'Personal',
      privacy: 'e-mail addresses, to ask follow-up questions',
      retention: '12w',
    });
    assert.equal(res.statusCode, 201, res.body);
    const survey = res.json().experiment;
    assert.equal(survey.description, 'Asks testers what they think');
    assert.equal(survey.dataClass, 'personal');
    assert.equal(survey.retentionDays, 84);
    assert.equal(survey.awaitsReview, false);
    const [created] = await events('app.create', 'survey');
    assert.deepEqual(JSON.parse(created!.detail), { data: 'personal' });
  });

  test('bad input at creation names the field and makes no app', async () => {
    const cases: [object, RegExp][] = [
      [{ data: 'secret' }, /^data must be one of none, anonymous, personal, sensitive, got 'secret'$/],
      [
        { data: 'personal', privacy: 'names', retention: 'soon' },
        /^retention must be a duration in days .* got 'soon'$/,
      ],
      [{ data: 'personal', privacy: 'names', retention: '0d' }, /^retention must be/],
      [{ data: 'personal', privacy: 'names', retention: '99999y' }, /^retention must be/],
      [
        { data: 'personal' },
        /^data=personal needs a privacy note and a retention \(privacy and retention missing\); petri apps create doomed --data personal --privacy/,
      ],
      [{ data: 'sensitive', privacy: 'health data' }, /\(retention missing\)/],
      [{ description: 'x'.repeat(501) }, /^description is 501 characters; keep it to 500$/],
      [{ description: 'bell \u0007 here' }, /^description must be plain text without control characters$/],
      [{ description: 'flip \u202e txt' }, /^description must be plain text/],
    ];
    for (const [body, expected] of cases) {
      const res = await call('ana', 'POST', '/v1/apps', { name: 'doomed', ...body });
      assert.equal(res.statusCode, 400, JSON.stringify(body));
      assert.match(message(res), expected, JSON.stringify(body));
    }
    assert.equal(
      await db.selectFrom('apps').select('id').where('name', '=', 'doomed').executeTakeFirst(),
      undefined,
    );
  });

  test('petri apps set describes the experiment, each change audited as app.describe', async () => {
    const res = await set('bob', 'plain', { description: 'A price test', data: 'anonymous' });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.json().experiment.description, 'A price test');
    assert.equal(res.json().experiment.dataClass, 'anonymous');
    const [event] = await events('app.describe', 'plain');
    assert.equal(event!.actor, 'bob');
    assert.equal(event!.app, 'plain');
    assert.deepEqual(JSON.parse(event!.detail), {
      description: 'A price test',
      data: 'anonymous',
      dataWas: 'none',
    });

    // Changing a running app's class follows the same rules: personal needs both.
    const personal = await set('bob', 'plain', { data: 'personal' });
    assert.equal(personal.statusCode, 400);
    assert.match(
      message(personal),
      /^data=personal needs a privacy note and a retention \(privacy and retention missing\); petri apps set plain data=personal privacy='what is collected, why' retention=30d$/,
    );
    assert.equal((await row('plain')).data_class, 'anonymous');
    const ok = await set('bob', 'plain', { data: 'personal', privacy: 'names', retention: '30' });
    assert.equal(ok.statusCode, 200, ok.body);
    // A privacy note cannot be taken away while the data is personal.
    const removed = await set('bob', 'plain', { privacy: '' });
    assert.equal(removed.statusCode, 400);
    assert.match(message(removed), /\(privacy missing\)/);
    const back = await set('bob', 'plain', { data: 'none', privacy: '', retention: '' });
    assert.equal(back.statusCode, 200, back.body);
    assert.equal(back.json().experiment.privacyNote, null);

    for (const [body, expected] of [
      [{ data: 'top-secret' }, /^data must be one of/],
      [{ retention: 'a while' }, /^retention must be a duration/],
      [{ expires: 'tomorrow' }, /^expires must be a date or time/],
      [{ stage: 'archived' }, /^stage must be graduated or experiment/],
      [{ redirect: 'javascript:alert(1)' }, /^redirect must be an http:\/\/ or https:\/\/ URL/],
      [{ redirect: 'ftp://files.example.org/' }, /^redirect must be an http:\/\/ or https:\/\/ URL/],
    ] as const) {
      const bad = await set('root', 'plain', body);
      assert.equal(bad.statusCode, 400, JSON.stringify(body));
      assert.match(message(bad), expected, JSON.stringify(body));
    }
    // The API refuses keys it does not know.
    assert.equal((await set('bob', 'plain', { colour: 'red' })).statusCode, 400);
  });

  test('who may set what: viewers nothing, members the description, admins expiry and stage', async () => {
    const viewer = await set('vic', 'plain', { description: 'mine now' });
    assert.equal(viewer.statusCode, 403);
    const outsider = await set('root', 'plain', {});
    assert.equal(outsider.statusCode, 200);
    const stranger = await call('aud', 'PATCH', '/v1/apps/plain/experiment', { description: 'x' });
    assert.equal(stranger.statusCode, 403);

    const expires = await set('bob', 'plain', { expires: '2030-01-01' });
    assert.equal(expires.statusCode, 403);
    assert.match(
      message(expires),
      /^expires is set by admins; to extend 'plain', run 'petri apps renew plain'$/,
    );
    const stage = await set('ana', 'plain', { stage: 'graduated' });
    assert.equal(stage.statusCode, 403);
    assert.match(message(stage), /^stage is set by admins/);

    const exact = await set('root', 'plain', { expires: '2030-01-01T00:00:00Z' });
    assert.equal(exact.statusCode, 200, exact.body);
    assert.equal(exact.json().experiment.expiresAt, '2030-01-01T00:00:00.000Z');
    const [event] = await events('app.expires', 'plain');
    assert.equal(JSON.parse(event!.detail).to, '2030-01-01T00:00:00.000Z');
  });

  test('stages: graduated (no expiry, may redirect), and back to experiment with a new lifetime', async () => {
    await call('ana', 'POST', '/v1/apps', { name: 'tool', team: 'labs' });
    const early = await set('ana', 'tool', { redirect: 'https://tool.example.org/' });
    assert.equal(early.statusCode, 409);
    assert.match(message(early), /^redirect is for graduated apps; 'tool' is experiment/);

    const graduated = await set('root', 'tool', { stage: 'graduated' });
    assert.equal(graduated.statusCode, 200, graduated.body);
    assert.equal(graduated.json().experiment.stage, 'graduated');
    assert.equal(graduated.json().experiment.expiresAt, null);
    assert.deepEqual(JSON.parse((await events('app.stage', 'tool'))[0]!.detail), {
      from: 'experiment',
      to: 'graduated',
    });

    // A member may not redirect; the team's admin may; only http(s), no credentials.
    assert.equal((await set('bob', 'tool', { redirect: 'https://tool.example.org/' })).statusCode, 403);
    const creds = await set('ana', 'tool', { redirect: 'https://user:pw@tool.example.org/' });
    assert.equal(creds.statusCode, 400);
    assert.match(message(creds), /^redirect must not carry a user name or password$/);
    const ok = await set('ana', 'tool', { redirect: 'https://tool.example.org/new' });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().experiment.redirectUrl, 'https://tool.example.org/new');
    assert.equal((await events('app.redirect', 'tool')).length, 1);
    const expiresGraduated = await set('root', 'tool', { expires: '2030-01-01' });
    assert.equal(expiresGraduated.statusCode, 409);

    const back = await set('root', 'tool', { stage: 'experiment' });
    assert.equal(back.json().experiment.stage, 'experiment');
    assert.equal(back.json().experiment.redirectUrl, null);
    const days = (Date.parse(back.json().experiment.expiresAt) - Date.now()) / 86_400_000;
    assert.ok(days > 29.9 && days <= 30, String(days));

    await db.updateTable('apps').set({ stage: 'archived' }).where('name', '=', 'tool').execute();
    const archived = await set('root', 'tool', { description: 'again' });
    assert.equal(archived.statusCode, 409);
    assert.match(message(archived), /archived/);
  });

  test('sensitive data awaits an admin approval; a change of class takes the approval back', async () => {
    const res = await call('bob', 'POST', '/v1/apps', {
      name: 'clinic',
      team: 'labs',
      data: 'sensitive',
      privacy: 'symptoms people report',
      retention: '30d',
    });
    assert.equal(res.statusCode, 201, res.body);
    assert.equal(res.json().experiment.awaitsReview, true);

    const member = await call('ana', 'POST', '/v1/apps/clinic/approve');
    assert.equal(member.statusCode, 403);
    const auditor = await call('aud', 'POST', '/v1/apps/clinic/approve');
    assert.equal(auditor.statusCode, 403);
    const missing = await call('root', 'POST', '/v1/apps/nowhere/approve');
    assert.equal(missing.statusCode, 404);
    const none = await call('root', 'POST', '/v1/apps/survey/approve');
    assert.equal(none.statusCode, 200);
    const nothing = await call('root', 'POST', '/v1/apps/tool/approve');
    assert.equal(nothing.statusCode, 409);
    assert.match(message(nothing), /only personal or sensitive data is reviewed/);

    // What the admin reviewed travels with the approval: a different note is refused.
    const stale = await call('root', 'POST', '/v1/apps/clinic/approve', {
      data: 'sensitive',
      privacyNote: 'not what the app says',
    });
    assert.equal(stale.statusCode, 409, stale.body);
    assert.match(message(stale), /changed since you reviewed it \(the privacy note changed\)/);
    const approved = await call('root', 'POST', '/v1/apps/clinic/approve');
    assert.equal(approved.statusCode, 200, approved.body);
    assert.equal(approved.json().experiment.awaitsReview, false);
    assert.equal(approved.json().experiment.approvedClass, 'sensitive');
    const [event] = await events('app.approve', 'clinic');
    assert.equal(event!.actor, 'root');
    assert.equal(JSON.parse(event!.detail).data, 'sensitive');

    // Down to personal and up again: the old approval does not carry over.
    await set('bob', 'clinic', { data: 'personal' });
    const again = await set('bob', 'clinic', { data: 'sensitive' });
    assert.equal(again.json().experiment.awaitsReview, true);
    assert.equal(again.json().experiment.approvedClass, null);
  });

  test("petri.toml's description and data class apply at deploy, by the same rules", async () => {
    const app = await row('survey');
    await describeFromManifest(db, app, { description: 'From the toml', retention: 60 }, ids.bob!);
    const after1 = await row('survey');
    assert.equal(after1.description, 'From the toml');
    assert.equal(after1.retention_days, 60);
    // The admin approved 84 days of retention, not 60: a new review is needed.
    assert.equal(after1.approved_class, null);
    const [event] = (await events('app.describe', 'survey')).slice(-1);
    assert.equal(event!.actor, 'bob');
    assert.equal(JSON.parse(event!.detail).via, 'petri.toml');
    assert.equal(JSON.parse(event!.detail).approvalWithdrawn, 'personal');

    await assert.rejects(
      describeFromManifest(db, after1, { data: 'secret' }, ids.bob!),
      /^UserError: petri.toml: data must be one of none, anonymous, personal, sensitive, got 'secret'$/,
    );
    const plainRow = await row('plain');
    await assert.rejects(
      describeFromManifest(db, plainRow, { data: 'personal' }, ids.bob!),
      /add privacy = "what is collected, why" and retention = "30d" to petri.toml/,
    );
  });

  test('the inventory: members see their teams, admins and auditors everything; filters name their field', async () => {
    await call('vic', 'POST', '/v1/apps', { name: 'vic-own', description: 'solo' });
    const asAna = (await call('ana', 'GET', '/v1/inventory'))
      .json()
      .apps.map((a: { name: string }) => a.name);
    assert.deepEqual(asAna, ['clinic', 'plain', 'survey', 'tool']);
    const asAud = await call('aud', 'GET', '/v1/inventory');
    assert.equal(asAud.statusCode, 200);
    assert.deepEqual(
      asAud.json().apps.map((a: { name: string }) => a.name),
      ['clinic', 'plain', 'survey', 'tool', 'vic-own'],
    );
    const survey = asAud.json().apps.find((a: { name: string }) => a.name === 'survey');
    assert.equal(survey.team, 'labs');
    assert.equal(survey.owner, 'ana');
    assert.equal(survey.dataClass, 'personal');
    assert.equal(survey.approved, false, 'its retention changed after the approval');
    assert.equal(survey.privacyNote, 'e-mail addresses, to ask follow-up questions');
    assert.deepEqual(survey.egressDeclared, []);
    assert.equal(survey.stack, null);
    assert.equal(survey.requests7d, 0, 'no request yet');
    // What the metrics collector recorded: 40 requests two days ago, 2 a minute ago, 9 eight
    // days ago (outside the window).
    const surveyId = (
      await db.selectFrom('apps').select('id').where('name', '=', 'survey').executeTakeFirstOrThrow()
    ).id;
    const counted = (requests: number) => ({ ...emptyCounters(), requests, s2xx: requests });
    const minute = unixMinute(Date.now());
    await recordMinutes(db, [
      { appId: surveyId, minute: minute - 2 * 1440, counters: counted(40) },
      { appId: surveyId, minute: minute - 1, counters: counted(2) },
      { appId: surveyId, minute: minute - 8 * 1440, counters: counted(9) },
    ]);
    const counts = (await call('aud', 'GET', '/v1/inventory')).json().apps;
    assert.equal(counts.find((a: { name: string }) => a.name === 'survey').requests7d, 42);
    assert.equal(counts.find((a: { name: string }) => a.name === 'plain').requests7d, 0);
    // The sparkline's hours: the 2 of a minute ago in the hour it fell in (the last, or the
    // one before it in the first minute of an hour); two days ago is outside.
    const hours = counts.find((a: { name: string }) => a.name === 'survey').requests24h;
    assert.equal(hours.length, 24);
    assert.equal(
      hours.reduce((s: number, n: number) => s + n, 0),
      2,
    );
    assert.ok(hours[23] === 2 || hours[22] === 2, JSON.stringify(hours));
    assert.deepEqual(
      counts.find((a: { name: string }) => a.name === 'plain').requests24h,
      new Array(24).fill(0),
    );
    // Its mail through the relay in the last 30 days: what the relay's queue recorded.
    const mailed = (status: 'sent' | 'refused', i: number) => ({
      id: `m-${status}-${i}`,
      app_id: surveyId,
      created_at: new Date(Date.now() - 86_400_000).toISOString(),
      status,
      recipients: '["zoe@example.org"]',
      subject: 'hello',
      size: 10,
      reason: null,
      raw: null,
    });
    await db
      .insertInto('mail_messages')
      .values([mailed('sent', 1), mailed('sent', 2), mailed('refused', 1)])
      .execute();
    const withMail = (await call('aud', 'GET', '/v1/inventory')).json().apps;
    assert.deepEqual(withMail.find((a: { name: string }) => a.name === 'survey').mail30d, {
      sent: 2,
      bounced: 0,
      refused: 1,
    });
    const csv = await call('aud', 'GET', '/v1/inventory?format=csv');
    assert.match(csv.body.split('\n')[0]!, /,requests_7d,mail_sent_30d,mail_bounced_30d,mail_refused_30d,/);
    assert.match(csv.body, /\nsurvey,(.*),42,2,0,1,/);

    const personal = await call('aud', 'GET', '/v1/inventory?data=personal');
    assert.deepEqual(
      personal.json().apps.map((a: { name: string }) => a.name),
      ['survey'],
    );
    const sensitive = await call('root', 'GET', '/v1/inventory?data=sensitive&team=labs');
    assert.deepEqual(
      sensitive.json().apps.map((a: { name: string }) => a.name),
      ['clinic'],
    );
    const archived = await call('root', 'GET', '/v1/inventory?stage=archived');
    assert.deepEqual(
      archived.json().apps.map((a: { name: string }) => a.name),
      ['tool'],
    );
    await db
      .updateTable('apps')
      .set({ expires_at: new Date(Date.now() + 3 * 86_400_000).toISOString() })
      .where('name', '=', 'clinic')
      .execute();
    const expiring = await call('root', 'GET', '/v1/inventory?expiring=7d');
    assert.deepEqual(
      expiring.json().apps.map((a: { name: string }) => a.name),
      ['clinic'],
    );

    for (const [query, expected] of [
      ['data=secret', /^data must be one of none, anonymous, personal, sensitive, got 'secret'$/],
      ['stage=done', /^stage must be one of experiment, graduating, graduated, archived, got 'done'$/],
      ['expiring=soon', /^expiring must be a duration like 14d, 36h or 2w, got 'soon'$/],
    ] as const) {
      const bad = await call('ana', 'GET', `/v1/inventory?${query}`);
      assert.equal(bad.statusCode, 400, query);
      assert.match(message(bad), expected);
    }
    // A team you are not in reads as missing.
    const other = await call('vic', 'GET', '/v1/inventory?team=ana');
    assert.equal(other.statusCode, 404);
    assert.match(message(other), /^team 'ana' not found/);
    assert.equal((await call('vic', 'GET', '/v1/inventory?team=vic')).statusCode, 200);
  });

  test("the inventory shows add-ons, egress and the serving release's stack; a size the engine cannot give is left out", async () => {
    const survey = await row('survey');
    const at = now();
    const release = await db
      .insertInto('releases')
      .values({
        app_id: survey.id,
        version: 1,
        deploy_id: null,
        slug_dir: '/nonexistent',
        process_types: '{"web":"node server.js"}',
        runtime_env: '{"NODE_ENV":"production"}',
        description: 'test',
        created_by: ids.ana!,
        created_at: at,
        error: null,
        release_command: null,
        health_path: null,
        phase_instance: null,
        phase_started_at: null,
        egress: '["api.example.com:443"]',
        node_version: '22.11.0',
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    await db
      .updateTable('apps')
      .set({ serving_release_id: release.id })
      .where('id', '=', survey.id)
      .execute();
    await db
      .insertInto('addons')
      .values({
        app_id: survey.id,
        app_name: 'survey',
        name: 'db',
        type: 'postgres',
        env_var: 'DATABASE_URL',
        mode: 'managed',
        resource: 'survey_db',
        status: 'ready',
        retiring_slot: null,
        retire_after_release_id: null,
        created_by: ids.ana!,
        created_at: at,
        destroyed_at: null,
        error: null,
      })
      .execute();
    await db
      .insertInto('egress_attempts')
      .values([
        {
          app_id: survey.id,
          host: 'api.example.com',
          port: 443,
          allowed: 1,
          count: 5,
          last_seen: at,
          last_reason: null,
        },
        {
          app_id: survey.id,
          host: 'evil.example',
          port: 80,
          allowed: 0,
          count: 3,
          last_seen: at,
          last_reason: 'not declared',
        },
      ])
      .execute();
    const res = await call('ana', 'GET', '/v1/inventory?data=personal');
    assert.equal(res.statusCode, 200, res.body);
    const [entry] = res.json().apps;
    assert.equal(entry.name, 'survey');
    assert.deepEqual(entry.egressDeclared, ['api.example.com:443']);
    assert.deepEqual(entry.egressReached, ['api.example.com:443']);
    assert.equal(entry.egressRefused, 3);
    // This test's add-on service has no usage(): the size is left out, the row stays.
    assert.deepEqual(entry.addons, [{ name: 'db', type: 'postgres', sizeBytes: null }]);
    assert.equal(entry.stack, 'node 22.11.0');
    assert.equal(entry.processes, 0);
    await db.updateTable('apps').set({ serving_release_id: null }).where('id', '=', survey.id).execute();
    await db.deleteFrom('egress_attempts').where('app_id', '=', survey.id).execute();
  });

  test('the inventory as CSV: a row per app, formulas and quotes defused', async () => {
    await set('bob', 'plain', { description: '=HYPERLINK("http://evil.example/")' });
    const res = await call('aud', 'GET', '/v1/inventory?format=csv');
    assert.equal(res.statusCode, 200);
    assert.match(res.headers['content-type'] as string, /^text\/csv/);
    const lines = res.body.trimEnd().split('\n');
    assert.match(lines[0]!, /^name,team,owner,description,stage,data_class,/);
    assert.equal(lines.length, 6);
    const plain = lines.find((l) => l.startsWith('plain,'))!;
    assert.ok(plain.includes(`"'=HYPERLINK(""http://evil.example/"")"`), plain);
  });

  test('the report counts what happened in the period (admins only)', async () => {
    // A deploy that served, two hours after its app was made.
    const plain = await row('plain');
    const created = Date.parse(plain.created_at);
    await db
      .insertInto('deploys')
      .values({
        id: 'd-plain',
        app_id: plain.id,
        status: 'succeeded',
        error: null,
        release_id: null,
        created_by: ids.ana!,
        created_at: new Date(created + 3_600_000).toISOString(),
        started_at: null,
        finished_at: new Date(created + 7_200_000).toISOString(),
      })
      .execute();
    await db
      .insertInto('egress_attempts')
      .values({
        app_id: plain.id,
        host: 'api.example.com',
        port: 443,
        allowed: 1,
        count: 3,
        last_seen: now(),
        last_reason: null,
      })
      .execute();
    await db
      .updateTable('apps')
      .set({ archived_at: now(), expired_at: now() })
      .where('name', '=', 'tool')
      .execute();
    // One made and destroyed within the period: counted from the audit trail.
    assert.equal((await call('ana', 'POST', '/v1/apps', { name: 'brief' })).statusCode, 201);
    assert.equal((await call('ana', 'DELETE', '/v1/apps/brief?confirm=brief')).statusCode, 204);

    assert.equal((await call('aud', 'GET', '/v1/report')).statusCode, 403);
    assert.equal((await call('ana', 'GET', '/v1/report')).statusCode, 403);
    const res = await call('root', 'GET', '/v1/report?since=30d');
    assert.equal(res.statusCode, 200, res.body);
    const r = res.json();
    assert.equal(r.created, 6, 'plain, survey, tool, clinic, vic-own and the destroyed brief');
    assert.equal(r.deployed, 1);
    assert.equal(r.medianToFirstDeploySeconds, 7200);
    assert.equal(r.active, 1);
    assert.equal(r.archived, 1);
    assert.equal(r.expired, 1);
    assert.equal(r.destroyed, 1);
    assert.equal(r.personalData, 2, 'survey (personal) and clinic (sensitive)');
    assert.equal(r.sensitiveData, 1);
    assert.equal(r.outsideHosts, 1);
    const bad = await call('root', 'GET', '/v1/report?since=a%20while');
    assert.equal(bad.statusCode, 400);
    assert.match(message(bad), /^since must be a duration back from now/);
    const future = (
      await call('root', 'GET', `/v1/report?since=${new Date(Date.now() + 86_400_000).toISOString()}`)
    ).json();
    assert.equal(future.created, 0);
  });
});
