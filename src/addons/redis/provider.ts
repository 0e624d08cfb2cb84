// Redis add-ons: add-on r is the key prefix `r:` (and channels under it) on a shared server,
// reached through two ACL logins r_a and r_b (the rotation slots) that may touch nothing else.
// The backup file's format is backup-file.ts.
import { open, rename, rm } from 'node:fs/promises';
import { type ChainableCommander, Redis } from 'ioredis';
import { checkEnvVar, checkResource, randomPassword } from '../names.js';
import {
  type AddonCredentials,
  type AddonProvider,
  type AddonUsage,
  type Endpoint,
  EngineUnavailableError,
  type LoginSlot,
} from '../provider.js';
import { backupHeader, checkBackup, encodeCommand, readBackup } from './backup-file.js';

const SLOTS: readonly LoginSlot[] = ['a', 'b'];
/** A refused or black-holed server should fail a request in seconds, not hang a reconciler. */
const CONNECT_TIMEOUT_MS = 3000;
/** Generous: one command may be a pipeline of RESTOREs of large values. */
const COMMAND_TIMEOUT_MS = 30_000;
const SCAN_COUNT = 1000;
/** Commands per pipeline when restoring, and the payload bytes that also end a pipeline. */
const RESTORE_BATCH = 256;
const RESTORE_BATCH_BYTES = 8 * 1024 * 1024;

export function createRedisProvider(adminUrl: string): AddonProvider {
  return new RedisProvider(parseAdminUrl(adminUrl));
}

/** What an add-on's login may do, as ACL SETUSER rules: every ordinary data command on its
 * own keys and channels; nothing that reads or changes other keys, other databases, server
 * state or configuration, other connections or users. Denials also name commands that
 * @dangerous/@admin hold today, because category contents move between Redis versions.
 * `setinfo`: the server knows CLIENT SETINFO (Redis 7.2 and later), which clients send at
 * connect; naming it on an older server would make ACL SETUSER fail. */
export function loginRules(resource: string, password: string, setinfo = false): string[] {
  const prefix = keyPrefix(resource);
  return [
    'reset',
    'on',
    `>${password}`,
    `~${prefix}*`,
    'resetchannels',
    `&${prefix}*`,
    '+@all',
    '-@dangerous',
    '-@admin',
    // These list or count the whole keyspace: they ignore key patterns.
    '-keys',
    '-scan',
    '-randomkey',
    '-dbsize',
    // Other databases hold keys that backup, usage and deprovision never see (COPY for its DB option).
    '-select',
    '-swapdb',
    '-move',
    '-copy',
    // The dataset, persistence, replication and the server itself.
    '-flushdb',
    '-flushall',
    '-config',
    '-debug',
    '-monitor',
    '-shutdown',
    '-module',
    '-migrate',
    '-wait',
    '-cluster',
    // RESTORE of a crafted payload can crash a server that does not sanitise dumps.
    '-restore',
    '-memory',
    '+memory|usage',
    // Other connections: CLIENT LIST/KILL/PAUSE/UNBLOCK, and TRACKING, whose BCAST prefixes
    // Redis 7.0 does not check against key patterns (it would report others' key names).
    '-client',
    '+client|id',
    '+client|info',
    '+client|getname',
    '+client|setname',
    ...(setinfo ? ['+client|setinfo'] : []),
    '-acl',
    '+acl|whoami',
    // PUBSUB CHANNELS/NUMSUB name other add-ons' channels.
    '-pubsub',
    // Functions and the script cache are one namespace for the whole server; SCRIPT DEBUG
    // SYNC blocks it. EVAL stays: Redis 7 checks each redis.call against the key patterns.
    '-function',
    '-script|flush',
    '-script|kill',
    '-script|debug',
    // Redis 7 refuses SORT's BY and GET patterns to a user without access to every key.
    '+sort',
    '+sort_ro',
    // INFO is what clients ask at connect (ioredis's ready check, BullMQ's version and
    // eviction policy check, RQ's version). Every section holds only totals for the whole
    // server (keys per database, clients, memory, calls per command), never a key, value,
    // user, address or connection name; ACL cannot allow INFO without its sections.
    '+info',
  ];
}

function keyPrefix(resource: string): string {
  return `${resource}:`;
}

function loginName(resource: string, slot: LoginSlot): string {
  return `${resource}_${slot}`;
}

interface AdminTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

function parseAdminUrl(adminUrl: string): AdminTarget {
  let url: URL;
  try {
    url = new URL(adminUrl);
  } catch {
    throw new Error('redis admin URL must look like redis://[user:password@]host:port');
  }
  if (url.protocol !== 'redis:' || url.hostname === '') {
    throw new Error(
      `redis admin URL must look like redis://[user:password@]host:port, got ${url.protocol}//${url.host}`,
    );
  }
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port === '' ? 6379 : Number(url.port),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
  };
}

class RedisProvider implements AddonProvider {
  readonly type = 'redis' as const;
  private readonly where: string;
  private client: Redis | undefined;
  private connecting: Promise<Redis> | undefined;
  /** The last error the connection reported: connect() itself only says "Connection is closed". */
  private lastError: unknown;
  /** Whether the server keeps its users in an aclfile (managed servers do), learnt once. */
  private aclFile: boolean | undefined;
  /** Whether the server has CLIENT SETINFO, learnt once. */
  private setinfo: boolean | undefined;

  constructor(private readonly target: AdminTarget) {
    this.where = `${target.host}:${target.port}`;
  }

  async ping(): Promise<void> {
    await this.run((admin) => admin.ping());
  }

  async provision(resource: string): Promise<AddonCredentials> {
    const r = checkResource(resource, 'redis');
    return this.run(async (admin) => {
      for (const slot of SLOTS) {
        const user = loginName(r, slot);
        if ((await admin.call('ACL', 'GETUSER', user)) !== null) {
          throw new Error(
            `redis user '${user}' already exists on ${this.where}, so add-on '${r}' is not new: ` +
              'deprovision it first, or remove the user if it is not Petri’s',
          );
        }
      }
      const creds = await this.setLogin(admin, r, 'a');
      try {
        await this.saveAcl(admin);
      } catch (err) {
        throw await undoing(err, () => this.dropLogins(admin, [creds.user]));
      }
      return creds;
    });
  }

  async createLogin(resource: string, slot: LoginSlot): Promise<AddonCredentials> {
    const r = checkResource(resource, 'redis');
    return this.run(async (admin) => {
      const creds = await this.setLogin(admin, r, slot);
      await this.saveAcl(admin);
      return creds;
    });
  }

  async revokeLogin(resource: string, slot: LoginSlot): Promise<void> {
    const r = checkResource(resource, 'redis');
    // DELUSER rather than `off`: it also closes the user's open connections.
    await this.run((admin) => this.dropLogins(admin, [loginName(r, slot)]));
  }

  async deprovision(resource: string): Promise<void> {
    const r = checkResource(resource, 'redis');
    await this.run(async (admin) => {
      // Users first, so no session adds keys while they are being deleted.
      await this.dropLogins(
        admin,
        SLOTS.map((slot) => loginName(r, slot)),
      );
      await deleteKeys(admin, keyPrefix(r));
    });
  }

  /** The file is `redis-cli --pipe` input: the header ECHO, then for every key
   * `RESTORE <key> <ttl> <DUMP payload> REPLACE`, each an array of bulk strings. The TTL is
   * the milliseconds the key had left at backup time (0: none), counted again from restore. */
  async backup(resource: string, file: string): Promise<void> {
    const prefix = keyPrefix(checkResource(resource, 'redis'));
    const partial = `${file}.partial`;
    const out = await open(partial, 'w', 0o600);
    try {
      await out.write(backupHeader(prefix));
      await this.run(async (admin) => {
        for await (const keys of scanKeys(admin, prefix)) await out.write(await dumpKeys(admin, keys));
      });
      await out.sync();
      await out.close();
      await rename(partial, file);
    } catch (err) {
      await out.close().catch(() => {}); // already closed when the rename failed
      await rm(partial, { force: true });
      throw err;
    }
  }

  async restore(resource: string, file: string): Promise<void> {
    const prefix = Buffer.from(keyPrefix(checkResource(resource, 'redis')));
    // Read the whole file once before deleting anything: a damaged dump must not cost the data.
    await checkBackup(file);
    await this.run(async (admin) => {
      await deleteKeys(admin, prefix.toString());
      let batch = new RestoreBatch(admin);
      for await (const entry of readBackup(file)) {
        batch.add(Buffer.concat([prefix, entry.suffix]), entry.ttl, entry.payload);
        if (batch.full()) {
          await batch.send();
          batch = new RestoreBatch(admin);
        }
      }
      await batch.send();
    });
  }

  async usage(resource: string): Promise<AddonUsage> {
    const r = checkResource(resource, 'redis');
    return this.run(async (admin) => {
      let bytes = 0;
      for await (const keys of scanKeys(admin, keyPrefix(r))) {
        const pipeline = admin.pipeline();
        for (const key of keys) pipeline.call('MEMORY', 'USAGE', key);
        // A key deleted since the scan answers null.
        for (const n of await execPipeline(pipeline)) bytes += typeof n === 'number' ? n : 0;
      }
      const users = new Set(SLOTS.map((slot) => loginName(r, slot)));
      const list = await admin.call('CLIENT', 'LIST');
      return { bytes, connections: clientsOf(String(list), users) };
    });
  }

  url(credentials: AddonCredentials, at: Endpoint): string {
    const host = at.host.includes(':') ? `[${at.host}]` : at.host;
    const user = encodeURIComponent(credentials.user);
    return `redis://${user}:${encodeURIComponent(credentials.password)}@${host}:${at.port}`;
  }

  shellCommand(envVar: string): string[] {
    checkEnvVar(envVar);
    // The URL stays in the environment, out of argv (which other users of the host can read).
    return ['/bin/sh', '-c', `exec redis-cli --no-auth-warning -u "$${envVar}"`];
  }

  /** Nothing to take back: a new login can reach nothing but what it is granted. Logins
   * made by an older Petri, before clients' connect-time commands were allowed (INFO, CLIENT
   * SETINFO), get them now, so their apps' clients stop warning without a rotation. */
  async secureServer(): Promise<string | undefined> {
    await this.run(async (admin) => {
      const setinfo = await this.knowsSetinfo(admin);
      let changed = false;
      for (const user of (await admin.call('ACL', 'USERS')) as string[]) {
        const resource = /^([a-z][a-z0-9_]{0,40})_[ab]$/.exec(user)?.[1];
        if (resource === undefined || !(await isAddonLogin(admin, user, resource))) continue;
        const rules: string[] = [];
        if (!(await mayRun(admin, user, ['INFO']))) rules.push('+info');
        if (setinfo && !(await mayRun(admin, user, ['CLIENT', 'SETINFO', 'LIB-NAME', 'x'])))
          rules.push('+client|setinfo');
        if (rules.length === 0) continue;
        await admin.call('ACL', 'SETUSER', user, ...rules);
        changed = true;
      }
      if (changed) await this.saveAcl(admin);
    });
    return undefined;
  }

  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client === undefined) return;
    // QUIT fails on a connection that is already gone; then there is nothing left to close.
    await client.quit().catch(() => client.disconnect());
  }

  private async setLogin(admin: Redis, resource: string, slot: LoginSlot): Promise<AddonCredentials> {
    const user = loginName(resource, slot);
    const password = randomPassword();
    const rules = loginRules(resource, password, await this.knowsSetinfo(admin));
    await admin.call('ACL', 'SETUSER', user, ...rules);
    return { user, password, database: keyPrefix(resource) };
  }

  /** Whether the server has CLIENT SETINFO (Redis 7.2 and later), learnt once. */
  private async knowsSetinfo(admin: Redis): Promise<boolean> {
    if (this.setinfo === undefined) {
      const reply = await admin.call('COMMAND', 'INFO', 'client|setinfo');
      this.setinfo = Array.isArray(reply) && reply[0] != null;
    }
    return this.setinfo;
  }

  private async dropLogins(admin: Redis, users: string[]): Promise<void> {
    await admin.call('ACL', 'DELUSER', ...users);
    await this.saveAcl(admin);
  }

  /** A server with an aclfile (managed servers) reloads its users from that file on restart,
   * so every change is saved there. A server without one keeps runtime users in memory only:
   * writing its redis.conf (CONFIG REWRITE) is its operator's business, not Petri's. */
  private async saveAcl(admin: Redis): Promise<void> {
    if (this.aclFile === undefined) {
      const reply = await admin.call('CONFIG', 'GET', 'aclfile');
      this.aclFile = Array.isArray(reply) && typeof reply[1] === 'string' && reply[1] !== '';
    }
    if (this.aclFile) await admin.call('ACL', 'SAVE');
  }

  /** Runs `fn` with the admin connection; a lost connection becomes EngineUnavailableError. */
  private async run<T>(fn: (admin: Redis) => Promise<T>): Promise<T> {
    const admin = await this.admin();
    try {
      return await fn(admin);
    } catch (err) {
      // A server's error reply, or our own, is the caller's to see as it is.
      const lost = !isReplyError(err) && (admin.status !== 'ready' || isConnectionError(err));
      if (!lost) throw err;
      throw new EngineUnavailableError('redis', this.where, err);
    }
  }

  private admin(): Promise<Redis> {
    if (this.client?.status === 'ready') return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async connect(): Promise<Redis> {
    this.client?.disconnect();
    this.client = undefined;
    this.lastError = undefined;
    const client = new Redis({
      host: this.target.host,
      port: this.target.port,
      username: this.target.username,
      password: this.target.password,
      protocol: 2,
      lazyConnect: true,
      connectTimeout: CONNECT_TIMEOUT_MS,
      commandTimeout: COMMAND_TIMEOUT_MS,
      // Fail now rather than queue or reconnect forever: the caller is a reconciler that
      // will try again, and the next call makes a fresh connection.
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      connectionName: 'petri-admin',
    });
    client.on('error', (err: unknown) => {
      this.lastError = err;
    });
    // connectTimeout covers only the TCP handshake: a server that accepts and never answers
    // would hold connect() for a command timeout per handshake command.
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS} ms`)),
        CONNECT_TIMEOUT_MS,
      );
    });
    try {
      await Promise.race([client.connect(), deadline]);
    } catch (err) {
      client.disconnect();
      throw new EngineUnavailableError('redis', this.where, this.lastError ?? err);
    } finally {
      clearTimeout(timer);
    }
    this.client = client;
    return client;
  }
}

/** Throws `err`, after running `undo`; if that fails too, the message says what was left. */
async function undoing(err: unknown, undo: () => Promise<void>): Promise<unknown> {
  try {
    await undo();
    return err;
  } catch (undoErr) {
    const why = (e: unknown) => (e instanceof Error ? e.message : String(e));
    return new Error(`${why(err)}; removing what was made failed as well: ${why(undoErr)}`);
  }
}

/** A login Petri made for add-on `resource`: its only key pattern is the add-on's prefix. */
async function isAddonLogin(admin: Redis, user: string, resource: string): Promise<boolean> {
  const info = await admin.call('ACL', 'GETUSER', user);
  if (!Array.isArray(info)) return false;
  return info[info.indexOf('keys') + 1] === `~${keyPrefix(resource)}*`;
}

/** Whether `user` may run `command` (the server's ACL DRYRUN, which runs nothing). */
async function mayRun(admin: Redis, user: string, command: string[]): Promise<boolean> {
  return (await admin.call('ACL', 'DRYRUN', user, ...command)) === 'OK';
}

function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

function isConnectionError(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /Command timed out|Connection is closed|Stream isn't writeable/.test(err.message)
  );
}

/** Counts CLIENT LIST lines whose `user=` field is one of `users`. Fields are separated by
 * single spaces and no value may contain one (CLIENT SETNAME refuses spaces). */
function clientsOf(clientList: string, users: ReadonlySet<string>): number {
  let n = 0;
  for (const line of clientList.split('\n')) {
    const user = line
      .trim()
      .split(' ')
      .find((field) => field.startsWith('user='));
    if (user !== undefined && users.has(user.slice('user='.length))) n++;
  }
  return n;
}

/** The key names under `prefix`, a batch per SCAN step. SCAN may repeat a key while the
 * table is resized: UNLINK and RESTORE ... REPLACE do not mind, and usage is an estimate. */
async function* scanKeys(admin: Redis, prefix: string): AsyncGenerator<Buffer[]> {
  const match = `${escapeGlob(prefix)}*`;
  let cursor = '0';
  do {
    const [next, keys] = await admin.scanBuffer(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
    cursor = next.toString();
    if (keys.length > 0) yield keys;
  } while (cursor !== '0');
}

/** Resource names cannot hold glob characters, but the MATCH pattern should not depend on it. */
function escapeGlob(text: string): string {
  return text.replace(/[\\*?[\]^]/g, '\\$&');
}

async function deleteKeys(admin: Redis, prefix: string): Promise<void> {
  for await (const keys of scanKeys(admin, prefix)) await admin.unlink(...keys);
}

async function dumpKeys(admin: Redis, keys: Buffer[]): Promise<Buffer> {
  const pipeline = admin.pipeline();
  for (const key of keys) pipeline.dumpBuffer(key).pttl(key);
  const replies = await execPipeline(pipeline);
  const commands: Buffer[] = [];
  keys.forEach((key, i) => {
    const payload = replies[2 * i];
    const pttl = replies[2 * i + 1];
    // null / -2: the key expired or was deleted since the scan.
    if (!Buffer.isBuffer(payload) || typeof pttl !== 'number' || pttl === -2) return;
    commands.push(encodeCommand(['RESTORE', key, String(Math.max(pttl, 0)), payload, 'REPLACE']));
  });
  return Buffer.concat(commands);
}

async function execPipeline(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = await pipeline.exec();
  if (results === null) throw new Error('redis pipeline was discarded');
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

class RestoreBatch {
  private readonly pipeline: ChainableCommander;
  private count = 0;
  private bytes = 0;

  constructor(admin: Redis) {
    this.pipeline = admin.pipeline();
  }

  add(key: Buffer, ttl: string, payload: Buffer): void {
    this.pipeline.call('RESTORE', key, ttl, payload, 'REPLACE');
    this.count++;
    this.bytes += payload.length;
  }

  full(): boolean {
    return this.count >= RESTORE_BATCH || this.bytes >= RESTORE_BATCH_BYTES;
  }

  async send(): Promise<void> {
    if (this.count > 0) await execPipeline(this.pipeline);
  }
}
