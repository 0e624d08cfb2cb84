// What the API shows of the model: the JSON shapes of App and Deploy, as the contract
// (src/contract) defines them.
import { appListingRows, appUrl, idleTimeoutMs } from '../domain/apps.js';
import { awaitsReview } from '../domain/experiments.js';
import { releaseVersion } from '../domain/releases.js';
import { teamNames } from '../domain/teams.js';
import type { PetriConfig } from '../lib/config.js';
import type { Store } from '../store/db.js';
import type { App, Deploy } from '../store/schema.js';

export async function presentApp(db: Store, config: PetriConfig, app: App) {
  const [presented] = await presentApps(db, config, [app]);
  return presented!;
}

/** Many apps in a handful of queries (one per table, not one per app): `petri apps` lists
 * hundreds of experiments. */
export async function presentApps(db: Store, config: PetriConfig, apps: App[]) {
  if (apps.length === 0) return [];
  const { instances, owners, releases, pending, formations } = await appListingRows(db, apps);
  const teamOf = await teamNames(
    db,
    apps.map((a) => a.team_id),
  );
  const byApp = <T extends { app_id: number }>(rows: T[]) => {
    const map = new Map<number, T[]>();
    for (const row of rows) {
      const list = map.get(row.app_id);
      if (list) list.push(row);
      else map.set(row.app_id, [row]);
    }
    return map;
  };
  const instancesOf = byApp(instances);
  const releasesOf = byApp(releases);
  const deploying = new Set(pending.map((d) => d.app_id));
  const webOf = new Map(formations.filter((f) => f.type === 'web').map((f) => [f.app_id, f.quantity]));
  const ownerName = new Map(owners.map((u) => [u.id, u.name]));
  return apps.map((app) => {
    const appInstances = instancesOf.get(app.id) ?? [];
    const appReleases = releasesOf.get(app.id) ?? [];
    const serving = appReleases.find((r) => r.id === app.serving_release_id);
    const web = webOf.get(app.id) ?? 0;
    const servingWeb = appInstances.filter(
      (i) => i.release_id === app.serving_release_id && i.type === 'web',
    );
    let status: 'new' | 'deploying' | 'running' | 'crashed' | 'down' | 'sleeping';
    if (deploying.has(app.id)) status = 'deploying';
    else if (app.sleeping_since !== null) status = 'sleeping';
    else if (!serving) status = appReleases.length === 0 ? 'new' : 'down';
    else if (servingWeb.some((i) => i.state === 'up') || web === 0) status = 'running';
    else if (servingWeb.some((i) => i.state === 'crashed')) status = 'crashed';
    else status = 'down';
    const idleMs = idleTimeoutMs(app, config.idleTimeoutMs);
    return {
      name: app.name,
      url: appUrl(config, app.name),
      owner: ownerName.get(app.owner_id) ?? 'unknown',
      team: teamOf.get(app.team_id) ?? 'unknown',
      createdAt: app.created_at,
      status,
      sleepingSince: app.sleeping_since,
      release: serving ? `v${serving.version}` : null,
      limits: { memoryMiB: app.memory_mib, cpus: app.cpus, pids: app.pids, diskMiB: app.disk_mib },
      settings: {
        bootTimeoutSeconds: Math.round((app.boot_timeout_ms ?? config.bootTimeoutMs) / 1000),
        idleTimeoutSeconds: idleMs === undefined ? null : Math.round(idleMs / 1000),
      },
      processes: appInstances
        .filter((i) => i.release_id === app.serving_release_id || i.state === 'starting')
        .map((i) => ({
          name: `${i.type}.${i.idx}`,
          release: `v${appReleases.find((r) => r.id === i.release_id)?.version ?? '?'}`,
          state: i.state,
          port: i.port,
          startedAt: i.started_at,
          restarts: i.restarts,
          lastExit: i.exit_reason,
        })),
      experiment: presentExperiment(app),
    };
  });
}

/** The experiment side of an app: description, data class, stage and expiry. */
export function presentExperiment(app: App) {
  return {
    description: app.description,
    dataClass: app.data_class,
    privacyNote: app.privacy_note,
    retentionDays: app.retention_days,
    approvedClass: app.approved_class,
    awaitsReview: awaitsReview(app),
    stage: app.stage,
    expiresAt: app.expires_at,
    expiredAt: app.expired_at,
    archivedAt: app.archived_at,
    redirectUrl: app.redirect_url,
  };
}

export async function presentDeploy(db: Store, config: PetriConfig, app: App, deploy: Deploy) {
  const version = deploy.release_id === null ? undefined : await releaseVersion(db, deploy.release_id);
  const finished = deploy.finished_at ? Date.parse(deploy.finished_at) : undefined;
  return {
    id: deploy.id,
    app: app.name,
    status: deploy.status,
    release: version === undefined ? null : `v${version}`,
    error: deploy.error,
    createdAt: deploy.created_at,
    finishedAt: deploy.finished_at,
    durationMs: finished === undefined ? null : finished - Date.parse(deploy.created_at),
    url: appUrl(config, app.name),
  };
}
