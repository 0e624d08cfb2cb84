// Attack: grow the audit trail without bound after an admin did everything there is to do.
// Anonymous refusals are budgeted (at most 61 events per 10 minutes), but a request with a
// REVOKED or EXPIRED token, or a DISABLED user's, is "a known user's" and recorded one by
// one, forever (until the token row is pruned, 30 days later). The rationale in
// domain/audit-refusals.ts ("they have a name, and a token to revoke") does not hold: the
// token is revoked already and the account disabled; nothing an admin can do stops the flood.
// A fired employee (or whoever holds a leaked token that was revoked) writes as many rows as
// they send requests, each in the victim's name.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { flushSuppressedRefusals, pendingDeadTokenRefusals, verifyAudit } from '../../../src/domain/audit.js';
import { createUser, issueToken } from '../../../src/domain/auth.js';
import { DataPaths } from '../../../src/lib/paths.js';
import { until } from '../../../src/lib/until.js';
import { openStore, type Store } from '../../../src/store/db.js';
import { buildTestApi } from '../test-api.js';

/** What an anonymous flood may write per window: 60 one by one, and the summary. */
const ANONYMOUS_BUDGET = 61;

describe('the audit trail against a flood from a dead token', () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let adminToken: string;
  let malToken: string;
  let malId: number;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-audit-flood-'));
    db = await openStore(new DataPaths(dir).store);
    const admin = await createUser(db, 'admin', 'admin', { email: 'admin@example.org' });
    adminToken = await issueToken(db, admin.id, 'test');
    const mal = await createUser(db, 'mal', 'member', { email: 'mal@example.org' });
    malToken = await issueToken(db, mal.id, 'test');
    malId = mal.id;
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const events = async () =>
    Number(
      (
        await db
          .selectFrom('audit_events')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  test('a disabled user with a revoked token writes one audit row per request, without bound', async () => {
    const off = await api.inject({
      method: 'POST',
      url: '/v1/users/mal@example.org/disable',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    assert.equal(off.statusCode, 200, off.body);
    const before = await events();
    const flood = 400;
    for (let i = 0; i < flood; i += 50) {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          api.inject({
            method: 'POST',
            url: '/v1/teams',
            headers: { authorization: `Bearer ${malToken}` },
            payload: { name: `t${i + j}-${'x'.repeat(20)}` },
          }),
        ),
      );
      for (const a of answers) assert.equal(a.statusCode, 401);
    }
    // The last answers' events are recorded after the answer is sent: wait until each
    // refusal is either written or counted.
    let written = 0;
    await until(
      async () => {
        written = (await events()) - before;
        return written + pendingDeadTokenRefusals() >= flood;
      },
      { timeout: 5000, message: `${flood} refusals written or counted` },
    );
    assert.ok(
      written <= ANONYMOUS_BUDGET,
      `${flood} refused requests of a disabled account with a revoked token wrote ${written} audit events (an anonymous flood is held to ${ANONYMOUS_BUDGET} per 10 minutes)`,
    );
    // The first ones are on the record in mal's name, the rest counted; the count is written
    // as one audit.suppressed event naming mal (here at shutdown, otherwise after the window).
    const first = await db
      .selectFrom('audit_events')
      .select(['actor', 'token_id', 'outcome'])
      .where('action', '=', 'POST /v1/teams')
      .executeTakeFirstOrThrow();
    assert.deepEqual([first.actor, first.outcome], ['mal', 'denied']);
    assert.notEqual(first.token_id, null);
    await flushSuppressedRefusals(db);
    const summary = await db
      .selectFrom('audit_events')
      .select(['target', 'detail'])
      .where('action', '=', 'audit.suppressed')
      .executeTakeFirstOrThrow();
    const detail = JSON.parse(summary.detail) as { count: number; busiestUsers: Record<string, number> };
    assert.equal(detail.count, flood - written);
    assert.deepEqual(Object.keys(detail.busiestUsers), [`mal (user ${malId})`]);
    assert.equal((await verifyAudit(db)).ok, true);
  });
});
