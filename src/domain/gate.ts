// What the audience gate (src/api/routes/gate.ts, pages in src/gate/) reads about the
// app a visitor is at: the app whose host the request came to, its owner and its team.
import type { Store } from '../store/db.js';
import type { App, User } from '../store/schema.js';
import { hashLinkSecret, isInvited } from './audiences.js';
import { appNameOfDomain } from './domains.js';
import { awaitsReview } from './experiments.js';

export interface GateApp {
  app: App;
  owner: { name: string; email: string | null };
  team: string;
}

/** The app served at this Host header (`NAME.DOMAIN` or a verified custom domain of the
 * app, any port), with its owner and team; undefined for any other host: an unknown one, and
 * the API's even when it is under the domain (the router sends that host to the API, never
 * to an app of that name). */
export async function gateAppOf(
  db: Store,
  where: { domain: string; apiHost: string },
  host: string | undefined,
): Promise<GateApp | undefined> {
  const bare = host?.split(':')[0]?.toLowerCase();
  const suffix = `.${where.domain.toLowerCase()}`;
  if (bare === where.apiHost.toLowerCase()) return undefined;
  if (!bare?.endsWith(suffix)) {
    const name = await appNameOfDomain(db, bare);
    return name === undefined ? undefined : gateAppNamed(db, name);
  }
  return gateAppNamed(db, bare.slice(0, -suffix.length));
}

/** The app of this name with its owner and team (the API host's /gate/sso names it). */
export async function gateAppNamed(db: Store, name: string): Promise<GateApp | undefined> {
  if (!/^[a-z0-9][a-z0-9-]{0,62}$/.test(name)) return undefined;
  const app = await db.selectFrom('apps').selectAll().where('name', '=', name).executeTakeFirst();
  if (!app) return undefined;
  const [owner, team] = await Promise.all([
    db.selectFrom('users').select(['name', 'email']).where('id', '=', app.owner_id).executeTakeFirst(),
    db.selectFrom('teams').select('name').where('id', '=', app.team_id).executeTakeFirst(),
  ]);
  return {
    app,
    owner: { name: owner?.name ?? 'unknown', email: owner?.email ?? null },
    team: team?.name ?? 'unknown',
  };
}

/** The app's invite link with this secret while it still lets people in (not revoked,
 * expired or used up), without taking a use: opening a link only shows the notice, and its
 * use is taken (spendLink) when the visitor consents. A personal link names its invitee. */
export async function usableLink(
  db: Store,
  appId: number,
  secret: string,
  nowMs = Date.now(),
): Promise<{ id: number; email: string | null } | undefined> {
  const link = await db
    .selectFrom('audience_links')
    .select(['id', 'uses_left', 'expires_at', 'revoked_at', 'email'])
    .where('app_id', '=', appId)
    .where('token_hash', '=', hashLinkSecret(secret))
    .executeTakeFirst();
  if (!link || link.revoked_at !== null || link.uses_left <= 0) return undefined;
  return Date.parse(link.expires_at) > nowMs ? { id: link.id, email: link.email } : undefined;
}

/** Who a link lets in, as the gate cookie and the app name them: the invitee of a personal
 * link, or invite:<link id> for anyone with a shared one. */
export function linkVisitor(link: { id: number; email: string | null }): string {
  return link.email ?? `invite:${link.id}`;
}

/** Why an app's gate does not let this signed-in person in, or 'ok': staff lets in any
 * person who may sign in; invite the people on its list and the app's own team; an app that
 * awaits an admin's review only its team, whatever its audience. */
export async function gateAdmission(
  db: Store,
  app: App,
  user: User,
): Promise<'ok' | 'awaits_review' | 'not_a_person' | 'not_invited'> {
  const member = await db
    .selectFrom('team_members')
    .select('role')
    .where('team_id', '=', app.team_id)
    .where('user_id', '=', user.id)
    .executeTakeFirst();
  if (awaitsReview(app)) return member ? 'ok' : 'awaits_review';
  if (user.kind !== 'person') return 'not_a_person';
  if (app.audience !== 'invite' || member) return 'ok';
  return user.email && (await isInvited(db, app.id, user.email)) ? 'ok' : 'not_invited';
}

/** The key version an invite link's way back (petri_gate_return) is signed under: always the
 * same, because the app's own version is raised whenever anyone is locked out (a person
 * disabled, taken off the team, or leaving) and a link's visitors would lose their way back
 * each time. wayBackHolds decides instead. */
export const RETURN_KV = 0;

/** Whether a link visitor's way back still lets them in: a shared link's (invite:ID) while
 * the link is not revoked, a personal link's invitee while they are on the list (and not a
 * disabled account's e-mail). */
export async function wayBackHolds(db: Store, appId: number, sub: string): Promise<boolean> {
  const shared = /^invite:(\d{1,15})$/.exec(sub);
  if (!shared) {
    // An invitee who also has an account, disabled since: not let back in.
    const disabled = await db
      .selectFrom('users')
      .select('id')
      .where('email', '=', sub.toLowerCase())
      .where('disabled_at', 'is not', null)
      .executeTakeFirst();
    return disabled === undefined && (await isInvited(db, appId, sub));
  }
  const link = await db
    .selectFrom('audience_links')
    .select('revoked_at')
    .where('app_id', '=', appId)
    .where('id', '=', Number(shared[1]))
    .executeTakeFirst();
  return link !== undefined && link.revoked_at === null;
}
