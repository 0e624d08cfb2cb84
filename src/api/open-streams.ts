// Long-lived requests, and the end of them when the caller's access ends.
//
// The access hook (auth.ts) decides once, when a request begins. Most requests end within a
// second; these may last hours: a log follow (`petri logs -f`), a deploy stream, a `petri
// run` session and a git push (with its hook's deploy stream). Each registers here with who
// it runs for (user, token), its app (by id) and its level, and a function that ends it,
// telling the client why. An open stream is decided again (domain/stream-access.ts) in two
// ways, both needed:
// - at once, when an API route ends someone's access (user disable or role change, token
//   revoke, team member removal or role change, app destroy or transfer) and tells this
//   registry: the admin who disables an account sees every stream of it end before their
//   answer arrives, with nothing for the stream to read or run in between;
// - every RECHECK_MS, all of them at once (two small queries however many are open), for
//   what no route tells: a token that expires, an account disabled or a token revoked by
//   the sign-in re-check with the organisation's provider, a change made by another process
//   over the same store (the CLI on the host, an upgrade's migration), and any route that
//   forgets to tell. It bounds how long a missed change lasts to a few seconds.
import { type GrantCheck, recheckGrants, type StreamGrant } from '../domain/stream-access.js';
import { UserError } from '../lib/errors.js';
import type { Store } from '../store/db.js';
import type { Api } from './context.js';

/** How often every open stream is decided again. */
export const RECHECK_MS = 5000;

export interface OpenStream extends StreamGrant {
  /** Ends the stream, telling the client `reason`; called at most once. */
  end(reason: UserError): void;
}

/** Which open streams a change of access may concern; any field that matches selects a
 * stream (none given: all of them). */
export interface AccessScope {
  userId?: number;
  tokenId?: number;
  appId?: number;
  /** Streams of apps of this team (a member taken out, a role changed). */
  teamId?: number;
}

interface Entry {
  stream: OpenStream;
  /** The team of the stream's app, as of the last decision. */
  teamId: number | null;
  ended: boolean;
}

export class OpenStreams {
  private readonly open = new Set<Entry>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;

  constructor(
    private readonly db: Store,
    private readonly log: { error(obj: object, msg: string): void },
    private readonly everyMs = RECHECK_MS,
  ) {}

  /** How many streams are open. */
  get size(): number {
    return this.open.size;
  }

  /** Registers a stream that began with access (the access hook let it in); answers the
   * function to call when it ends by itself. `teamId`: its app's team now. */
  add(stream: OpenStream, teamId: number | null): () => void {
    const entry: Entry = { stream, teamId, ended: false };
    this.open.add(entry);
    // Only while something is open: an idle API runs no timer (and a test's ends).
    if (!this.timer) {
      this.timer = setInterval(() => void this.tick(), this.everyMs);
      this.timer.unref();
    }
    return () => this.remove(entry);
  }

  /** Access changed (see AccessScope): the streams concerned are decided again now; those
   * that may not go on are ended before this resolves. */
  async accessChanged(scope: AccessScope = {}): Promise<void> {
    const all = Object.values(scope).every((v) => v === undefined);
    const concerned = [...this.open].filter(
      ({ stream, teamId }) =>
        all ||
        stream.userId === scope.userId ||
        (stream.tokenId !== null && stream.tokenId === scope.tokenId) ||
        stream.appId === scope.appId ||
        (teamId !== null && teamId === scope.teamId),
    );
    await this.recheck(concerned);
  }

  /** Ends every open stream (the server is stopping). */
  endAll(reason: UserError): void {
    for (const entry of [...this.open]) this.end(entry, reason);
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.recheck([...this.open]);
    } catch (err) {
      this.log.error({ err }, 'deciding open streams again failed');
    } finally {
      this.ticking = false;
    }
  }

  private async recheck(entries: Entry[]): Promise<void> {
    if (entries.length === 0) return;
    let checks: GrantCheck[];
    try {
      checks = await recheckGrants(
        this.db,
        entries.map((e) => e.stream),
      );
    } catch (err) {
      // The store failing is no reason to cut everyone off; the next tick asks again.
      this.log.error({ err }, 'deciding open streams again failed');
      return;
    }
    entries.forEach((entry, i) => {
      const check = checks[i]!;
      if (check.ok) entry.teamId = check.teamId;
      else this.end(entry, check.reason);
    });
  }

  private end(entry: Entry, reason: UserError): void {
    if (entry.ended) return;
    this.remove(entry);
    entry.ended = true;
    try {
      entry.stream.end(reason);
    } catch (err) {
      this.log.error({ err }, 'ending an open stream failed');
    }
  }

  private remove(entry: Entry): void {
    this.open.delete(entry);
    if (this.open.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

const registries = new WeakMap<Api, OpenStreams>();

/** The API's registry of open streams, made on first use by any route module (the streaming
 * routes register in it, the routes that end access tell it); a stopping API ends them. */
export function openStreams(api: Api, ctx: { db: Store }): OpenStreams {
  let streams = registries.get(api);
  if (!streams) {
    const made = new OpenStreams(ctx.db, api.log);
    registries.set(api, made);
    api.addHook('preClose', async () =>
      made.endAll(new UserError('unavailable', 'the server is stopping; try again in a moment')),
    );
    streams = made;
  }
  return streams;
}
