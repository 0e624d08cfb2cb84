// The access level every route of the API must have: one row per `METHOD /path` of
// /v1/openapi.json, hand-written (never generated from the routes: it is what they are
// checked against, by route-access.test.ts).
//
// To add your route: append a row `['METHOD /v1/path/{param}', 'level'],` with the path as
// the OpenAPI document writes it ({name}, not :name). Levels: 'public', 'signed-in',
// 'app.read', 'app.write', 'app.secrets', 'app.admin', 'team.read', 'team.admin',
// 'platform.read', 'platform.admin' (what each means: src/domain/access.ts). An app level
// needs {name} in the path, a team level {team}.
// A row may carry a query string (`GET /v1/x?service=y`) where the level depends on it; the
// test sends it. How the test reaches each route: {name} is an app of team {team}; any other
// parameter names nothing (an e-mail nobody has, id 999999), and bodies are {} plus an
// unknown field, so an allowed caller stops at validation or at a 404 of the thing named,
// and nothing of the fixture changes.
import type { Access } from '../../src/domain/access.js';

export const ROUTE_ACCESS: ReadonlyArray<readonly [string, Access]> = [
  ['GET /v1/apps', 'signed-in'],
  ['POST /v1/apps', 'signed-in'],
  ['GET /v1/apps/{name}', 'app.read'],
  ['PATCH /v1/apps/{name}', 'app.write'],
  ['DELETE /v1/apps/{name}', 'app.admin'],
  ['POST /v1/apps/{name}/sleep', 'app.write'],
  ['POST /v1/apps/{name}/wake', 'app.write'],
  ['POST /v1/apps/{name}/deploys', 'app.write'],
  ['GET /v1/apps/{name}/deploys', 'app.read'],
  ['GET /v1/apps/{name}/deploys/{id}', 'app.read'],
  ['GET /v1/apps/{name}/deploys/{id}/stream', 'app.read'],
  ['GET /v1/apps/{name}/logs', 'app.read'],
  ['GET /v1/apps/{name}/config', 'app.secrets'],
  ['PATCH /v1/apps/{name}/config', 'app.write'],
  ['GET /v1/apps/{name}/releases', 'app.read'],
  ['GET /v1/apps/{name}/releases/{version}', 'app.read'],
  ['POST /v1/apps/{name}/rollback', 'app.write'],
  ['GET /v1/apps/{name}/ps', 'app.read'],
  ['PATCH /v1/apps/{name}/formation', 'app.write'],
  ['POST /v1/apps/{name}/restart', 'app.write'],
  ['GET /v1/apps/{name}/egress', 'app.read'],
  ['GET /v1/egress/report', 'platform.read'],
  ['GET /v1/apps/{name}/domains', 'app.read'],
  ['POST /v1/apps/{name}/domains', 'app.write'],
  ['DELETE /v1/apps/{name}/domains/{host}', 'app.write'],
  ['GET /v1/certs', 'platform.read'],
  ['GET /v1/apps/{name}/mail', 'app.read'],
  ['GET /v1/apps/{name}/mail/{id}', 'app.secrets'],
  ['POST /v1/apps/{name}/mail/rotate', 'app.write'],
  ['PATCH /v1/apps/{name}/mail/limits', 'platform.admin'],
  ['GET /v1/mail/report', 'platform.read'],
  ['GET /v1/mail/dns', 'platform.read'],
  ['GET /v1/apps/{name}/run', 'app.write'],
  ['GET /v1/apps/{name}/git/info/refs?service=git-upload-pack', 'app.read'],
  ['GET /v1/apps/{name}/git/info/refs?service=git-receive-pack', 'app.write'],
  ['POST /v1/apps/{name}/git/git-upload-pack', 'app.read'],
  ['POST /v1/apps/{name}/git/git-receive-pack', 'app.write'],
  ['GET /v1/apps/{name}/addons', 'app.read'],
  ['POST /v1/apps/{name}/addons', 'app.write'],
  ['GET /v1/apps/{name}/addons/{addon}', 'app.read'],
  ['DELETE /v1/apps/{name}/addons/{addon}', 'app.write'],
  ['POST /v1/apps/{name}/addons/{addon}/rotate', 'app.write'],
  ['POST /v1/apps/{name}/addons/{addon}/backups', 'app.write'],
  ['GET /v1/apps/{name}/addons/{addon}/backups', 'app.read'],
  ['POST /v1/apps/{name}/addons/{addon}/restore', 'app.secrets'],
  ['GET /v1/apps/{name}/addons/{addon}/backups/{backup}/download', 'app.secrets'],
  ['GET /v1/addon-backups', 'platform.read'],
  ['GET /v1/addon-servers', 'platform.read'],
  ['GET /v1/addon-backups/{backup}/download', 'platform.admin'],
  // C: who you are, your tokens, users and invitations.
  ['GET /v1/whoami', 'signed-in'],
  ['GET /v1/tokens', 'signed-in'],
  ['POST /v1/tokens', 'signed-in'],
  ['DELETE /v1/tokens/{id}', 'signed-in'],
  ['GET /v1/users', 'platform.read'],
  ['PATCH /v1/users/{email}', 'platform.admin'],
  ['POST /v1/users/{email}/disable', 'platform.admin'],
  ['POST /v1/users/{email}/enable', 'platform.admin'],
  ['POST /v1/users/bots', 'platform.admin'],
  ['GET /v1/users/invitations', 'platform.read'],
  ['POST /v1/users/invitations', 'platform.admin'],
  ['DELETE /v1/users/invitations/{id}', 'platform.admin'],
  // D: the audit trail.
  ['GET /v1/audit', 'signed-in'],
  ['GET /v1/audit/verify', 'platform.read'],
  // A2: teams, members, quotas, moving an app to another team.
  ['GET /v1/teams', 'signed-in'],
  ['POST /v1/teams', 'signed-in'],
  ['GET /v1/teams/{team}', 'team.read'],
  ['PUT /v1/teams/{team}/members/{email}', 'team.admin'],
  // team.admin for someone else's e-mail (the row's); leaving a team yourself is team.read.
  ['DELETE /v1/teams/{team}/members/{email}', 'team.admin'],
  ['GET /v1/teams/{team}/quotas', 'team.read'],
  ['PATCH /v1/teams/{team}/quotas', 'platform.admin'],
  ['POST /v1/apps/{name}/transfer', 'app.admin'],
  // B1: single sign-on (OIDC) in a browser or with a device code: how a token is had.
  ['POST /v1/auth/oidc/start', 'public'],
  ['POST /v1/auth/oidc/finish', 'public'],
  ['POST /v1/auth/device/start', 'public'],
  ['POST /v1/auth/device/poll', 'public'],
  // B2: LDAP and local passwords, invitations accepted with a password, the providers offered.
  ['GET /v1/auth/providers', 'public'],
  ['POST /v1/auth/ldap', 'public'],
  ['POST /v1/auth/password', 'public'],
  ['POST /v1/auth/invitations/accept', 'public'],
  ['POST /v1/auth/password/change', 'signed-in'],
  // Issue 16: the installed runtimes, with the caller's own apps on each.
  ['GET /v1/stacks', 'signed-in'],
  // Issue 14, L1: describing an experiment, an admin's approval, the inventory and the report.
  ['PATCH /v1/apps/{name}/experiment', 'app.write'],
  ['POST /v1/apps/{name}/approve', 'platform.admin'],
  ['GET /v1/inventory', 'signed-in'],
  ['GET /v1/report', 'platform.admin'],
  // Issue 14, L2: renewing an experiment (its team up to lifecycle.maxDays, admins any period).
  ['POST /v1/apps/{name}/renew', 'app.write'],
  // Issue 14, L3: the handoff bundle, which moves the app to graduating (team admins).
  ['POST /v1/apps/{name}/graduate', 'app.admin'],
  // Issue 15, P1: audiences, invitees, invite links and visitors.
  ['GET /v1/apps/{name}/audience', 'app.read'],
  ['PUT /v1/apps/{name}/audience', 'app.write'],
  ['POST /v1/apps/{name}/audience/invitees', 'app.write'],
  ['DELETE /v1/apps/{name}/audience/invitees/{email}', 'app.write'],
  ['GET /v1/apps/{name}/audience/links', 'app.read'],
  ['POST /v1/apps/{name}/audience/links', 'app.write'],
  ['DELETE /v1/apps/{name}/audience/links/{id}', 'app.write'],
  ['GET /v1/apps/{name}/audience/visitors', 'app.read'],
  // Issue 15 and 19 (B): signing in on the web (pages on the API host), the session, the gate's SSO.
  ['GET /login', 'public'],
  ['POST /login/password', 'public'],
  ['GET /login/oidc', 'public'],
  ['GET /login/oidc/callback', 'public'],
  ['POST /logout', 'public'],
  ['GET /gate/sso', 'public'],
  ['GET /v1/session', 'signed-in'],
  // E: metrics, the status page.
  ['GET /metrics', 'platform.read'],
  ['GET /v1/apps/{name}/metrics', 'app.read'],
  ['GET /v1/status', 'public'],
];
