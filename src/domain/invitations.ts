// Invitations: how someone new gets in while sign-up is invite-only. An admin invites an
// e-mail (with a platform role, and a team and a role there); the link holds a secret that
// is stored only as its sha256, works once, and expires after 7 days. A sign-in (OIDC,
// LDAP, a local password set through the link) with that e-mail consumes it.
import { randomBytes } from 'node:crypto';
import { UserError } from '../lib/errors.js';
import { now, type Store } from '../store/db.js';
import type { Invitation, PlatformRole, TeamRole, User } from '../store/schema.js';
import { actorOf } from './apps.js';
import { recordAudit } from './audit.js';
import { hashToken } from './auth.js';
import { refusePersonal } from './teams.js';
import { normalizeEmail, userLabel } from './users.js';

export const INVITATION_DAYS = 7;

const ROLE_RANK: Record<PlatformRole, number> = { member: 0, auditor: 1, admin: 2 };

/** Where the API answers for people (the router serves apiHost on the HTTP port); the
 * links Petri hands out (invitations) start with it. */
export function apiPublicUrl(config: { apiHost: string; httpPort: number }): string {
  const port = config.httpPort === 80 ? '' : `:${config.httpPort}`;
  return `http://${config.apiHost}${port}`;
}

/** The link of an invitation: `petri login --invite LINK`, or opened in a browser. */
export function invitationLink(config: { apiHost: string; httpPort: number }, secret: string): string {
  return `${apiPublicUrl(config)}/invite/${secret}`;
}

export interface InvitationInput {
  email: string;
  role: PlatformRole;
  /** A team to join on sign-up, by name, with teamRole (default member). */
  team?: string;
  teamRole?: TeamRole;
}

/** Makes an invitation for an e-mail and answers its secret, the only time it exists in
 * clear. Inviting an e-mail again replaces its open invitation (the older link stops). */
export async function createInvitation(
  db: Store,
  actor: User,
  input: InvitationInput,
  ip?: string,
): Promise<{ invitation: Invitation; secret: string }> {
  const email = normalizeEmail(input.email);
  if (input.teamRole !== undefined && input.team === undefined)
    throw new UserError('bad_request', 'a team role needs a team: add --team TEAM');
  return db.transaction().execute(async (tx) => {
    const existing = await tx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst();
    if (existing)
      throw new UserError(
        'conflict',
        `${email} has an account already; change their role with 'petri users role ${email} ROLE' or add them to a team with 'petri teams add TEAM ${email}'`,
      );
    let teamId: number | null = null;
    if (input.team !== undefined) {
      const team = await tx
        .selectFrom('teams')
        .select(['id', 'name', 'personal_of'])
        .where('name', '=', input.team)
        .executeTakeFirst();
      if (!team) throw new UserError('not_found', `no team '${input.team}'; list them with 'petri teams'`);
      // Nobody joins someone's personal team, by invitation either.
      refusePersonal(team);
      teamId = team.id;
    }
    const at = now();
    // An earlier open invitation for the address stops working: one live link per person.
    await tx.deleteFrom('invitations').where('email', '=', email).where('used_at', 'is', null).execute();
    const secret = randomBytes(24).toString('base64url');
    const invitation = await tx
      .insertInto('invitations')
      .values({
        email,
        role: input.role,
        team_id: teamId,
        team_role: teamId === null ? null : (input.teamRole ?? 'member'),
        token_hash: hashToken(secret),
        created_by: actor.id,
        created_at: at,
        expires_at: new Date(Date.parse(at) + INVITATION_DAYS * 86_400_000).toISOString(),
        used_at: null,
        used_by: null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await recordAudit(tx, actorOf(actor, ip), 'user.invite', email, {
      invitation: invitation.id,
      role: input.role,
      team: input.team ?? null,
      teamRole: invitation.team_role,
      expiresAt: invitation.expires_at,
    });
    return { invitation, secret };
  });
}

export interface InvitationView {
  invitation: Invitation;
  team: string | null;
  createdBy: string;
}

/** Invitations not used and not expired, newest first, with their team and inviter's names
 * (`id`: that one only). */
export async function openInvitations(db: Store, id?: number): Promise<InvitationView[]> {
  let query = db
    .selectFrom('invitations')
    .leftJoin('teams', 'teams.id', 'invitations.team_id')
    .leftJoin('users', 'users.id', 'invitations.created_by')
    .selectAll('invitations')
    .select(['teams.name as team_name', 'users.name as creator_name', 'users.email as creator_email'])
    .where('invitations.used_at', 'is', null)
    .where('invitations.expires_at', '>', now());
  if (id !== undefined) query = query.where('invitations.id', '=', id);
  const rows = await query.orderBy('invitations.id', 'desc').execute();
  return rows.map(({ team_name, creator_name, creator_email, ...invitation }) => ({
    invitation,
    team: team_name,
    createdBy: creator_name === null ? '(removed)' : userLabel({ name: creator_name, email: creator_email }),
  }));
}

/** Withdraws an open invitation: its link stops working. */
export async function cancelInvitation(
  db: Store,
  actor: User,
  id: number,
  ip?: string,
): Promise<InvitationView> {
  return db.transaction().execute(async (tx) => {
    const [view] = await openInvitations(tx, id);
    if (!view)
      throw new UserError('not_found', `no open invitation ${id}; list them with 'petri users invitations'`);
    await tx.deleteFrom('invitations').where('id', '=', id).execute();
    await recordAudit(tx, actorOf(actor, ip), 'user.uninvite', view.invitation.email, { invitation: id });
    return view;
  });
}

/** The open invitation for an e-mail (the newest), if any: a sign-in with that address
 * may create the account. */
export async function openInvitationFor(db: Store, email: string): Promise<Invitation | undefined> {
  return db
    .selectFrom('invitations')
    .selectAll()
    .where('email', '=', email.trim().toLowerCase())
    .where('used_at', 'is', null)
    .where('expires_at', '>', now())
    .orderBy('id', 'desc')
    .executeTakeFirst();
}

/** The invitation a link's secret names; refuses an unknown, used or expired one, saying
 * what to do. The lookup is by the secret's sha256, so no comparison leaks the secret. */
export async function invitationBySecret(db: Store, secret: string): Promise<Invitation> {
  const invitation = await db
    .selectFrom('invitations')
    .selectAll()
    .where('token_hash', '=', hashToken(secret.trim()))
    .executeTakeFirst();
  if (!invitation)
    throw new UserError(
      'not_found',
      'this invitation link is not valid (withdrawn, replaced by a newer one, or mistyped); ask an admin for a new one',
    );
  checkUsable(invitation);
  return invitation;
}

function checkUsable(invitation: Invitation): void {
  if (invitation.used_at !== null)
    throw new UserError(
      'forbidden',
      `this invitation was used on ${invitation.used_at.slice(0, 10)}; an invitation works once: sign in with 'petri login'`,
    );
  if (Date.parse(invitation.expires_at) <= Date.now())
    throw new UserError(
      'forbidden',
      `this invitation expired on ${invitation.expires_at.slice(0, 10)}; ask an admin for a new one ('petri users invite ${invitation.email}')`,
    );
}

/** Marks the invitation used by `userId` and gives the user what it grants: its platform
 * role, and its team with its team role. Call it inside the sign-in's transaction: it
 * refuses (and so rolls the sign-in back) when the invitation was used or expired
 * meanwhile, so it is consumed exactly once. */
export async function consumeInvitation(tx: Store, invitation: Invitation, userId: number): Promise<void> {
  checkUsable(invitation);
  // An invitation is for one address: it never lets in an account with another.
  const user = await tx
    .selectFrom('users')
    .select(['role', 'email'])
    .where('id', '=', userId)
    .executeTakeFirstOrThrow();
  if (user.email !== invitation.email)
    throw new UserError(
      'forbidden',
      `this invitation is for ${invitation.email}; sign in with that address, or ask an admin to invite ${user.email ?? 'you'}`,
    );
  const at = now();
  const result = await tx
    .updateTable('invitations')
    .set({ used_at: at, used_by: userId })
    .where('id', '=', invitation.id)
    .where('used_at', 'is', null)
    .where('expires_at', '>', at)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1)
    throw new UserError(
      'forbidden',
      "this invitation was used already; an invitation works once: sign in with 'petri login'",
    );
  // The invitation's role, unless the user has a higher one already (never a demotion).
  if (ROLE_RANK[invitation.role] > ROLE_RANK[user.role])
    await tx.updateTable('users').set({ role: invitation.role }).where('id', '=', userId).execute();
  if (invitation.team_id !== null) {
    await tx
      .insertInto('team_members')
      .values({
        team_id: invitation.team_id,
        user_id: userId,
        role: invitation.team_role ?? 'member',
        created_at: at,
      })
      .onConflict((oc) => oc.columns(['team_id', 'user_id']).doNothing()) // a membership they have stays
      .execute();
  }
}
