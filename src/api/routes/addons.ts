// /v1/apps/:name/addons: databases for an app (PostgreSQL, MariaDB, Redis), their backups,
// rotation and removal; /v1/addon-backups: every backup, for admins (final backups of
// destroyed add-ons and apps included).
import { createReadStream } from 'node:fs';
import type { FastifyReply } from 'fastify';
import {
  type AddonBackup as AddonBackupView,
  AddonChange,
  AddonDestroyed,
  AddonDetail,
  AddonList,
  AddonParams,
  AddonRestore,
  type AddonUsage,
  type Addon as AddonView,
  AnyBackupParams,
  AppNameParams,
  BackupEnvelope,
  BackupList,
  BackupParams,
  Binary,
  CreateAddonBody,
  DestroyAddonQuery,
  ErrorBody,
  errorResponses,
  type Release as ReleaseView,
  RestoreBody,
} from '../../contract/index.js';
import { backupLabel, listAllBackups, parseBackupId } from '../../domain/addon-backups.js';
import { getAddon, listAddons } from '../../domain/addons.js';
import { UserError } from '../../lib/errors.js';
import type { Store } from '../../store/db.js';
import type { Addon, AddonBackup, App } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { presentRelease } from './releases.js';

export function addonRoutes(api: Api, ctx: ApiContext): void {
  const { db, addons } = ctx;
  const withConflict = { ...errorResponses, 409: ErrorBody, 503: ErrorBody };
  const present = async (addon: Addon) => presentAddon(addon, await addons.usage(addon));

  api.get(
    '/v1/apps/:name/addons',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The app's add-ons with their size and open connections",
        params: AppNameParams,
        response: { 200: AddonList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const list = await listAddons(db, app);
      return { addons: await Promise.all(list.map(present)), available: addons.types };
    },
  );

  api.post(
    '/v1/apps/:name/addons',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          'Provision a database of its own for the app and attach it: its URL arrives in a new release',
        params: AppNameParams,
        body: CreateAddonBody,
        response: { 201: AddonChange, ...withConflict },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const { addon, release } = await addons.create(req.user, app, req.body, req.ip);
      return reply
        .code(201)
        .send({ addon: await present(addon), release: await maybeRelease(db, app, release) });
    },
  );

  api.get(
    '/v1/apps/:name/addons/:addon',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'One add-on, its last backup, and the client command `petri addons shell` runs',
        params: AddonParams,
        response: { 200: AddonDetail, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const addon = await getAddon(db, app, req.params.addon);
      const backups = await addons.backups(app, addon.name);
      const last = backups.find((b) => b.status === 'succeeded');
      return {
        addon: await present(addon),
        backups: backups.length,
        lastBackup: last ? presentBackup(last, addon) : null,
        shell: addon.status === 'ready' ? await addons.shellCommand(addon) : [],
      };
    },
  );

  api.delete(
    '/v1/apps/:name/addons/:addon',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Destroy an add-on: a final backup first (kept for the retention period), then its data',
        params: AddonParams,
        querystring: DestroyAddonQuery,
        response: { 200: AddonDestroyed, ...withConflict },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const { addon: name } = req.params;
      const addon = await getAddon(db, app, name);
      if (req.query.confirm !== addon.name) {
        throw new UserError(
          'bad_request',
          `destroying add-on '${name}' needs confirm=${name} (petri addons destroy ${name} --confirm ${name})`,
        );
      }
      const { backup, release } = await addons.destroy(req.user, app, name, req.ip);
      return { backup: presentBackup(backup, addon), release: await maybeRelease(db, app, release) };
    },
  );

  api.post(
    '/v1/apps/:name/addons/:addon/rotate',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'New password in a new release; the old one is revoked once the new release serves',
        params: AddonParams,
        response: { 200: AddonChange, ...withConflict },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const { addon, release } = await addons.rotate(req.user, app, req.params.addon, req.ip);
      return { addon: await present(addon), release: await maybeRelease(db, app, release) };
    },
  );

  api.post(
    '/v1/apps/:name/addons/:addon/backups',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Back up the add-on now (kept while the add-on lives)',
        params: AddonParams,
        response: { 201: BackupEnvelope, ...withConflict },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const addon = await getAddon(db, app, req.params.addon);
      const backup = await addons.backup(req.user, app, addon.name, req.ip);
      return reply.code(201).send({ backup: presentBackup(backup, addon) });
    },
  );

  api.get(
    '/v1/apps/:name/addons/:addon/backups',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The add-on's backups, newest first",
        params: AddonParams,
        response: { 200: BackupList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const addon = await getAddon(db, app, req.params.addon);
      return { backups: (await addons.backups(app, addon.name)).map((b) => presentBackup(b, addon)) };
    },
  );

  api.post(
    '/v1/apps/:name/addons/:addon/restore',
    {
      config: { access: 'app.secrets' },
      schema: {
        summary:
          "Replace the add-on's data with a backup (its own, or for admins any backup of the same engine); the data before is backed up first",
        params: AddonParams,
        body: RestoreBody,
        response: { 200: AddonRestore, ...withConflict },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const addon = await getAddon(db, app, req.params.addon);
      const id = parseBackupId(req.body.backup);
      const { restored, safety } = await addons.restore(req.user, app, addon.name, id, req.ip);
      return { restored: backupLabel(restored.id), safetyBackup: presentBackup(safety, addon) };
    },
  );

  api.get(
    '/v1/apps/:name/addons/:addon/backups/:backup/download',
    {
      config: { access: 'app.secrets' },
      schema: {
        summary:
          "A backup's dump: pg_dump custom format, mysqldump SQL, or RESTORE commands for redis-cli --pipe",
        params: BackupParams,
        response: { 200: Binary('the dump', 'application/octet-stream'), ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const { addon, backup } = req.params;
      const found = await addons.backupFile(req.user, app, addon, parseBackupId(backup));
      return sendDump(reply, found.file, found.backup, found.source, app);
    },
  );

  api.get(
    '/v1/addon-backups',
    {
      config: { access: 'platform.read' },
      schema: {
        summary:
          'Every add-on backup, with the app and add-on it came from, destroyed ones included (admins and auditors)',
        response: { 200: BackupList, ...errorResponses },
      },
    },
    async () => {
      const rows = await listAllBackups(db);
      return {
        backups: rows.map((r) =>
          presentBackup(r, { app_name: r.app_name, name: r.addon_name, type: r.type }),
        ),
      };
    },
  );

  api.get(
    '/v1/addon-backups/:backup/download',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: "Any backup's dump (admins), e.g. the final backup of a destroyed app",
        params: AnyBackupParams,
        response: { 200: Binary('the dump', 'application/octet-stream'), ...errorResponses },
      },
    },
    async (req, reply) => {
      const found = await addons.backupFile(req.user, undefined, undefined, parseBackupId(req.params.backup));
      return sendDump(reply, found.file, found.backup, found.source);
    },
  );
}

function sendDump(reply: FastifyReply, file: string, backup: AddonBackup, source: Addon, app?: App) {
  const ext = source.type === 'postgres' ? 'pgdump' : source.type === 'mysql' ? 'sql' : 'redis';
  const filename = `${app?.name ?? source.app_name}-${source.name}-${backupLabel(backup.id)}.${ext}`;
  reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${filename}"`);
  if (backup.size_bytes !== null) reply.header('content-length', String(backup.size_bytes));
  return reply.send(createReadStream(file));
}

async function maybeRelease(
  db: Store,
  app: App,
  release: Parameters<typeof presentRelease>[2] | null,
): Promise<ReleaseView | null> {
  return release ? presentRelease(db, app, release) : null;
}

function presentAddon(addon: Addon, usage: AddonUsage): AddonView {
  return {
    name: addon.name,
    app: addon.app_name,
    type: addon.type,
    envVar: addon.env_var,
    mode: addon.mode,
    status: addon.status,
    rotating: addon.retiring_slot !== null,
    createdAt: addon.created_at,
    usage,
  };
}

function presentBackup(b: AddonBackup, addon: Pick<Addon, 'app_name' | 'name' | 'type'>): AddonBackupView {
  return {
    id: backupLabel(b.id),
    app: addon.app_name,
    addon: addon.name,
    type: addon.type,
    kind: b.kind,
    status: b.status,
    sizeBytes: b.size_bytes,
    createdBy: b.created_by,
    createdAt: b.created_at,
    finishedAt: b.finished_at,
    expiresAt: b.expires_at,
    error: b.error,
  };
}
