// Signing in against an LDAP directory: Petri binds as its service account, finds the one
// entry the user filter matches for the name typed (escaped: a name never changes the
// filter), binds as that entry with the password, and reads its e-mail and groups. Its
// person is re-checked: the entry must still exist and still match the filter, and its
// groups are read again (for the sign-in policy and the admin groups).
import { randomUUID } from 'node:crypto';
import type { Client } from 'ldapts';
import type { Logger } from 'pino';
import type { LdapConfig } from '../lib/config.js';
import { errorMessage, UserError } from '../lib/errors.js';
import { FailedAttempt } from './rate-limit.js';

// ldapts (some 6 MiB resident) loads with the first connection to the directory, not with
// the server; every error it throws comes after that connection, so its classes are here.
let ldapts: typeof import('ldapts') | undefined;
function ldap(): typeof import('ldapts') {
  if (!ldapts) throw new Error('ldapts is used before the first connection loaded it');
  return ldapts;
}

/** What the directory says about the person who just proved their password. */
export interface LdapPerson {
  dn: string;
  /** The name typed, as the filter matched it. */
  username: string;
  /** entryUUID when the directory has it (stable across renames), else the DN. */
  subject: string;
  email: string;
  name?: string;
  /** The cn and the DN of every group the entry is in (under groupBase). */
  groups: string[];
}

/** What the directory says of a signed-in person now, at a re-check. */
export interface LdapEntryNow {
  dn: string;
  /** The entry's mail ('' when it has none). */
  email: string;
  groups: string[];
}

/** What re-checking a person needs: sealed onto their account at each sign-in. */
export interface LdapRecheck {
  provider: 'ldap';
  dn: string;
  username: string;
}

/** How long one operation (and a connection) may take: a directory that hangs must not
 * hold a sign-in, or a request re-checking its session, for longer. */
const OPERATION_MS = 10_000;
const CONNECT_MS = 5_000;
export const MAX_USERNAME_LENGTH = 256;

const INVALID = 'invalid user name or password';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class LdapDirectory {
  constructor(
    readonly config: LdapConfig,
    private readonly log: Logger,
  ) {}

  /** The person whose name and password these are; a FailedAttempt (401) for an empty
   * password, an unknown name or a wrong password, each with its reason for the audit. */
  async authenticate(rawUsername: string, password: string): Promise<LdapPerson> {
    const username = checkUsername(rawUsername);
    // An empty password would make the bind below an unauthenticated bind, which LDAP
    // servers answer with success: it must never get that far.
    if (password.length === 0)
      throw new FailedAttempt('the password is empty; type your LDAP password', 'empty password');
    return this.withServiceBind(async (client) => {
      const entry = await this.findEntry(client, username, password);
      await this.bindAs(entry.dn, password);
      const email = first(entry.mail);
      if (!email) {
        throw new UserError(
          'forbidden',
          `your LDAP entry (${entry.dn}) has no 'mail' attribute; Petri names people by e-mail: ask the directory's operator to add one`,
        );
      }
      const uid = first(entry.uid) ?? username;
      return {
        dn: entry.dn,
        username,
        subject: first(entry.entryUUID) ?? entry.dn,
        email,
        name: first(entry.displayName) ?? first(entry.cn),
        groups: await this.groupsOf(client, entry.dn, uid),
      };
    });
  }

  /** The entry the person signed in as, with their groups, as the directory has it now;
   * undefined when it is gone or no longer matches the user filter (a person deleted, or
   * disabled by an attribute the filter tests). Throws 'unavailable' when the directory
   * cannot be asked. */
  async lookup(recheck: LdapRecheck): Promise<LdapEntryNow | undefined> {
    return this.withServiceBind(async (client) => {
      const entry = await this.entryAt(client, recheck.dn, this.userFilter(recheck.username));
      if (!entry) return undefined;
      return {
        dn: entry.dn,
        email: first(entry.mail) ?? '',
        groups: await this.groupsOf(client, entry.dn, first(entry.uid) ?? recheck.username),
      };
    });
  }

  /** As lookup, for an account without a sign-in's re-check data: its entry found by the
   * account's subject (entryUUID, or the DN where the directory has none), then tested
   * against the user filter with the entry's uid as the name. */
  async lookupBySubject(subject: string): Promise<LdapEntryNow | undefined> {
    const found = await this.withServiceBind(async (client) => {
      if (!UUID.test(subject)) return this.entryAt(client, subject, '(objectClass=*)');
      try {
        const { searchEntries } = await client.search(this.config.userBase, {
          scope: 'sub',
          filter: `(entryUUID=${escapeFilterValue(subject)})`,
          attributes: ['uid'],
          sizeLimit: 2,
        });
        return searchEntries.length === 1 ? searchEntries[0] : undefined;
      } catch (err) {
        if (err instanceof ldap().NoSuchObjectError) return undefined;
        throw this.unavailable('search by entryUUID', err);
      }
    });
    const uid = found && first(found.uid);
    return uid ? this.lookup({ provider: 'ldap', dn: found.dn, username: uid }) : undefined;
  }

  /** The entry at `dn` if it matches `filter`; undefined when it does not or is gone. */
  private async entryAt(client: Client, dn: string, filter: string) {
    try {
      const { searchEntries } = await client.search(dn, {
        scope: 'base',
        filter,
        attributes: ['mail', 'uid'],
        sizeLimit: 2,
      });
      return searchEntries.length === 1 ? searchEntries[0] : undefined;
    } catch (err) {
      if (err instanceof ldap().NoSuchObjectError) return undefined;
      throw this.unavailable('search', err);
    }
  }

  /** The configured filter with {username} replaced by the escaped name (RFC 4515): a name
   * like `*)(uid=*` is a name to look for, not filter syntax. */
  userFilter(username: string): string {
    const value = escapeFilterValue(username);
    return this.config.userFilter.replaceAll('{username}', () => value);
  }

  private async findEntry(client: Client, username: string, password: string) {
    let entries: Awaited<ReturnType<Client['search']>>['searchEntries'];
    try {
      ({ searchEntries: entries } = await client.search(this.config.userBase, {
        scope: 'sub',
        filter: this.userFilter(username),
        attributes: ['mail', 'uid', 'cn', 'displayName', 'entryUUID'],
        sizeLimit: 2,
      }));
    } catch (err) {
      if (err instanceof ldap().SizeLimitExceededError) entries = [{ dn: '' }, { dn: '' }];
      else if (err instanceof ldap().NoSuchObjectError)
        throw this.unavailable('search (userBase does not exist)', err);
      else throw this.unavailable('search', err);
    }
    if (entries.length === 0) {
      // As slow as a wrong password (a bind the directory refuses), so the time an answer
      // takes does not tell which names exist.
      await this.bindAs(`cn=${randomUUID()},${this.config.userBase}`, password).catch(() => {});
      throw new FailedAttempt(INVALID, 'unknown user');
    }
    if (entries.length > 1) {
      this.log.warn(
        { filter: this.userFilter(username) },
        'LDAP user filter matches more than one entry; refusing the sign-in: make identity.ldap.userFilter match one entry per name',
      );
      throw new FailedAttempt(
        `the directory has more than one entry for '${username}'; ask the operator to fix identity.ldap.userFilter`,
        'ambiguous user name',
      );
    }
    return entries[0] as (typeof entries)[number];
  }

  /** Binds as the person on a connection of its own (the service connection stays the
   * service account's for the group search). */
  private async bindAs(dn: string, password: string): Promise<void> {
    const client = await this.connect();
    try {
      await client.bind(dn, password);
    } catch (err) {
      if (err instanceof ldap().InvalidCredentialsError) throw new FailedAttempt(INVALID, 'wrong password');
      throw this.unavailable('bind as the user', err);
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  private async groupsOf(client: Client, dn: string, uid: string): Promise<string[]> {
    if (!this.config.groupBase) return [];
    const d = escapeFilterValue(dn);
    const u = escapeFilterValue(uid);
    const filter =
      `(|(&(objectClass=groupOfNames)(member=${d}))` +
      `(&(objectClass=groupOfUniqueNames)(uniqueMember=${d}))` +
      `(&(objectClass=posixGroup)(memberUid=${u})))`;
    try {
      const { searchEntries } = await client.search(this.config.groupBase, {
        scope: 'sub',
        filter,
        attributes: ['cn'],
        sizeLimit: 1000,
      });
      return searchEntries.flatMap((g) => [...all(g.cn), g.dn]);
    } catch (err) {
      throw this.unavailable('search groups', err);
    }
  }

  private async connect(): Promise<Client> {
    ldapts ??= await import('ldapts');
    const client = new ldapts.Client({
      url: this.config.url,
      timeout: OPERATION_MS,
      connectTimeout: CONNECT_MS,
    });
    if (this.config.startTls) {
      try {
        await client.startTLS({ servername: new URL(this.config.url).hostname });
      } catch (err) {
        await client.unbind().catch(() => {});
        throw this.unavailable('StartTLS', err);
      }
    }
    return client;
  }

  private async withServiceBind<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connect();
    try {
      try {
        await client.bind(this.config.bindDn, this.config.bindPassword);
      } catch (err) {
        throw this.unavailable('bind as identity.ldap.bindDn', err);
      }
      return await work(client);
    } finally {
      await client.unbind().catch(() => {});
    }
  }

  /** The directory failed Petri (down, misconfigured): 503 to the user, the cause in the log
   * (never the bind password: it is in no error ldapts makes). */
  private unavailable(step: string, err: unknown): UserError {
    if (err instanceof UserError) return err;
    this.log.error({ url: this.config.url, step, err: errorMessage(err) }, 'LDAP directory failed');
    return new UserError(
      'unavailable',
      `the LDAP directory could not be asked (${step} failed); try again in a minute, or tell the operator if it persists`,
    );
  }
}

/** RFC 4515 value escaping: the filter's special characters, NUL and every other control
 * character as \XX. */
export function escapeFilterValue(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    out +=
      ch === '*' || ch === '(' || ch === ')' || ch === '\\' || code < 0x20 || code === 0x7f
        ? `\\${code.toString(16).padStart(2, '0')}`
        : ch;
  }
  return out;
}

/** A user name as typed, refused when it cannot be one (empty, too long, control characters). */
function checkUsername(raw: string): string {
  const username = raw.trim();
  if (username === '')
    throw new FailedAttempt('the user name is empty; type your LDAP user name', 'empty user name');
  if (username.length > MAX_USERNAME_LENGTH || /\p{Cc}/u.test(username)) {
    throw new FailedAttempt(INVALID, 'malformed user name');
  }
  return username;
}

function all(value: Buffer | Buffer[] | string[] | string | undefined): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((v) => (Buffer.isBuffer(v) ? v.toString('utf8') : v)).filter((v) => v !== '');
}

function first(value: Buffer | Buffer[] | string[] | string | undefined): string | undefined {
  return all(value)[0];
}
