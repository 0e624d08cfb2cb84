// What the API shows of the model: the JSON shapes of App and Deploy, documented in the
// OpenAPI schemas of schemas.ts.
import { idleTimeoutMs } from '../domain/apps.js';
import { formationOf, instancesOfApp } from '../domain/instances.js';
import type { PetriConfig } from '../lib/config.js';
import type { Store } from '../store/db.js';
import type { App, Deploy } from '../store/schema.js';

export function appUrl(config: PetriConfig, name: string): string {
  const port = config.httpPort === 80 ? '' : `:${config.httpPort}`;
  return `http://${name}.${config.domain}${port}`;
}

export async function presentApp(db: Store, config: PetriConfig, app: App) {
  const [instances, owner, releases, pending] = await Promise.all([
    instancesOfApp(db, app.id),
    db.selectFrom('users').select('name').where('id', '=', app.owner_id).executeTakeFirst(),
    db.selectFrom('releases').select(['id', 'version']).where('app_id', '=', app.id).execute(),
    db
      .selectFrom('deploys')
      .select('id')
      .where('app_id', '=', app.id)
      .where('status', 'in', ['queued', 'building', 'releasing'])
      .executeTakeFirst(),
  ]);
  const serving = releases.find((r) => r.id === app.serving_release_id);
  const web = (await formationOf(db, app.id)).get('web') ?? 0;
  const servingWeb = instances.filter((i) => i.release_id === app.serving_release_id && i.type === 'web');
  let status: 'new' | 'deploying' | 'running' | 'crashed' | 'down' | 'sleeping';
  if (pending) status = 'deploying';
  else if (app.sleeping_since !== null) status = 'sleeping';
  else if (!serving) status = releases.length === 0 ? 'new' : 'down';
  else if (servingWeb.some((i) => i.state === 'up') || web === 0) status = 'running';
  else if (servingWeb.some((i) => i.state === 'crashed')) status = 'crashed';
  else status = 'down';
  return {
    name: app.name,
    url: appUrl(config, app.name),
    owner: owner?.name ?? 'unknown',
    createdAt: app.created_at,
    status,
    sleepingSince: app.sleeping_since,
    release: serving ? `v${serving.version}` : null,
    limits: { memoryMiB: app.memory_mib, cpus: app.cpus, pids: app.pids, diskMiB: app.disk_mib },
    settings: {
      bootTimeoutSeconds: Math.round((app.boot_timeout_ms ?? config.bootTimeoutMs) / 1000),
      idleTimeoutSeconds: (() => {
        const ms = idleTimeoutMs(app, config.idleTimeoutMs);
        return ms === undefined ? null : Math.round(ms / 1000);
      })(),
    },
    processes: instances
      .filter((i) => i.release_id === app.serving_release_id || i.state === 'starting')
      .map((i) => ({
        name: `${i.type}.${i.idx}`,
        release: `v${releases.find((r) => r.id === i.release_id)?.version ?? '?'}`,
        state: i.state,
        port: i.port,
        startedAt: i.started_at,
        restarts: i.restarts,
        lastExit: i.exit_reason,
      })),
  };
}

export async function presentDeploy(db: Store, config: PetriConfig, app: App, deploy: Deploy) {
  const release =
    deploy.release_id === null
      ? undefined
      : await db
          .selectFrom('releases')
          .select('version')
          .where('id', '=', deploy.release_id)
          .executeTakeFirst();
  const finished = deploy.finished_at ? Date.parse(deploy.finished_at) : undefined;
  return {
    id: deploy.id,
    app: app.name,
    status: deploy.status,
    release: release ? `v${release.version}` : null,
    error: deploy.error,
    createdAt: deploy.created_at,
    finishedAt: deploy.finished_at,
    durationMs: finished === undefined ? null : finished - Date.parse(deploy.created_at),
    url: appUrl(config, app.name),
  };
}
