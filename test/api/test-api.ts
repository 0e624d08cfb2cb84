// The API as the unit tests build it: the real routes over a store in a temp dir, with the
// parts of the context a route test never reaches (one-offs, add-ons) failing loudly.
import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../../src/api/context.js';
import { buildApi } from '../../src/api/server.js';
import { createUser, issueToken } from '../../src/domain/auth.js';
import { Identity } from '../../src/identity/index.js';
import { loadConfig } from '../../src/lib/config.js';
import { createLogger } from '../../src/lib/log.js';
import { DataPaths } from '../../src/lib/paths.js';
import { SecretBox } from '../../src/lib/secrets.js';
import { DeployLogs } from '../../src/logs/deploy-log.js';
import { LogStore } from '../../src/logs/log-store.js';
import type { Store } from '../../src/store/db.js';
import type { User } from '../../src/store/schema.js';
import { unusedAddons } from './unused.js';

/** The secret box every test API seals with (a fixed key: tests read what they sealed). */
export const testSecrets = (): SecretBox => SecretBox.withKey(Buffer.alloc(32, 7));

/** Builds the API for the data dir `dir` and its store `db`; `flags` as `petri server` takes
 * them; `context` replaces parts of the context a test watches (its nudge, say). */
export async function buildTestApi(
  dir: string,
  db: Store,
  flags: Record<string, unknown> = {},
  context: Partial<ApiContext> = {},
): Promise<FastifyInstance> {
  const paths = new DataPaths(dir);
  const config = loadConfig({ dataDir: dir, ...flags });
  const secrets = testSecrets();
  const log = createLogger('silent');
  return buildApi(
    {
      db,
      config,
      secrets,
      paths,
      logs: new LogStore({ dir: paths.logs }),
      deployLogs: new DeployLogs((a, d) => paths.deployLog(a, d)),
      nudge: () => {},
      usage: async () => new Map(),
      runOneOff: async () => {
        throw new Error('not in this test');
      },
      flushEgress: async () => {},
      addons: unusedAddons(),
      // Sign-ins as the server makes them (identity in flags configures LDAP or OIDC).
      identity: new Identity({ db, config, secrets, log }),
      ...context,
    },
    log,
  );
}

/** Makes each user (e-mail NAME@example.org) with a token, recorded by name in `tokens` and `ids`. */
export async function addUsers(
  db: Store,
  people: ReadonlyArray<readonly [string, User['role']]>,
  tokens: Record<string, string>,
  ids: Record<string, number>,
): Promise<void> {
  for (const [name, role] of people) {
    const user = await createUser(db, name, role, { email: `${name}@example.org` });
    ids[name] = user.id;
    tokens[name] = await issueToken(db, user.id, 'test');
  }
}
