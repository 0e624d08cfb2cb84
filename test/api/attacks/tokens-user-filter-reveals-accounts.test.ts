// Attack: learn who has an account, as a plain member, without a trace. `petri users` (the
// list of people) is for admins and auditors only, and a sign-in answers an unknown e-mail
// exactly like a wrong password "so nobody learns which e-mails have accounts". But
// GET /v1/tokens?user=EMAIL looks the user up BEFORE checking that the caller may name
// another user: an existing account answers 403 ("only admins and auditors see other users'
// tokens"), a missing one 404 ("no user ..."). Reads are not audited, so a member can walk
// a list of addresses (and bot names) silently. POST /v1/tokens {"bot": NAME} likewise.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createUser, issueToken } from '../../../src/domain/auth.js';
import { DataPaths } from '../../../src/lib/paths.js';
import { openStore, type Store } from '../../../src/store/db.js';
import { buildTestApi } from '../test-api.js';

describe("a member naming another user's tokens", () => {
  let dir: string;
  let db: Store;
  let api: FastifyInstance;
  let member: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'petri-attack-tokens-user-'));
    db = await openStore(new DataPaths(dir).store);
    const mal = await createUser(db, 'mal', 'member', { email: 'mal@example.org' });
    member = await issueToken(db, mal.id, 'test');
    await createUser(db, 'ceo', 'member', { email: 'ceo@example.org' });
    await createUser(db, 'deploy-bot', 'member', { kind: 'bot', provider: 'bot' });
    api = await buildTestApi(dir, db);
  });
  after(async () => {
    await api?.close();
    await db?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const ask = (method: 'GET' | 'POST', url: string, payload?: object) =>
    api.inject({ method, url, payload, headers: { authorization: `Bearer ${member}` } });

  test('GET /v1/tokens?user= answers an existing account and a missing one alike', async () => {
    const existing = await ask('GET', '/v1/tokens?user=ceo@example.org');
    const missing = await ask('GET', '/v1/tokens?user=nobody@example.org');
    assert.deepEqual(
      [existing.statusCode, existing.json().error.message],
      [missing.statusCode, missing.json().error.message.replace('nobody@example.org', 'ceo@example.org')],
      `an account exists: ${existing.statusCode} ${existing.body}; none: ${missing.statusCode} ${missing.body}`,
    );
  });

  test('POST /v1/tokens {bot} answers an existing bot and a missing one alike', async () => {
    const existing = await ask('POST', '/v1/tokens', { name: 'x', bot: 'deploy-bot' });
    const missing = await ask('POST', '/v1/tokens', { name: 'x', bot: 'no-such-bot' });
    assert.equal(
      existing.statusCode,
      missing.statusCode,
      `a bot exists: ${existing.statusCode} ${existing.body}; none: ${missing.statusCode} ${missing.body}`,
    );
  });
});
