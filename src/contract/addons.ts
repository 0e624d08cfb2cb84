// Databases of an app's own (PostgreSQL, MariaDB, Redis): the add-on, its usage and
// backups, and the answers of creating, rotating, destroying and restoring one.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';
import { Release } from './releases.js';

export const AddonParams = Type.Object({ name: Type.String(), addon: Type.String() });
export const BackupParams = Type.Object({ name: Type.String(), addon: Type.String(), backup: Type.String() });
export const AnyBackupParams = Type.Object({ backup: Type.String({ description: 'b12' }) });

/** What an add-on holds now; null figures when they could not be read (see `error`). */
export const AddonUsage = Type.Object({
  bytes: Nullable(Type.Integer(), { description: 'on disk (Redis: in memory)' }),
  connections: Nullable(Type.Integer()),
  error: Type.Optional(Type.String({ description: 'why the figures are missing' })),
});
export type AddonUsage = Static<typeof AddonUsage>;

export const AddonStatus = StringEnum(['provisioning', 'ready', 'destroying', 'destroyed'], {
  description: 'destroyed: seen only by a request that raced its destruction',
});
export type AddonStatus = Static<typeof AddonStatus>;

/** A database of the app's own, attached as a config var. */
export const Addon = Type.Object(
  {
    name: Type.String({ description: 'e.g. postgres, or cache for one created as CACHE' }),
    app: Type.String(),
    type: Type.String({ description: 'postgres, mysql or redis' }),
    envVar: Type.String({ description: 'the config var the app gets the URL in, e.g. DATABASE_URL' }),
    mode: StringEnum(['managed', 'external'], {
      description: 'managed: Petri runs the server; external: an operator gave an admin URL',
    }),
    status: AddonStatus,
    rotating: Type.Boolean({ description: 'an old password is still valid until the new release serves' }),
    createdAt: Type.String(),
    usage: AddonUsage,
  },
  { $id: 'Addon' },
);
export type Addon = Static<typeof Addon>;

export const AddonBackupKind = StringEnum(['manual', 'scheduled', 'final'], {
  description: 'final: taken when the add-on was destroyed',
});
export type AddonBackupKind = Static<typeof AddonBackupKind>;

export const AddonBackupStatus = StringEnum(['running', 'succeeded', 'failed']);
export type AddonBackupStatus = Static<typeof AddonBackupStatus>;

export const AddonBackup = Type.Object(
  {
    id: Type.String({ description: 'b1, b2 ...' }),
    app: Type.String(),
    addon: Type.String(),
    type: Type.String(),
    kind: AddonBackupKind,
    status: AddonBackupStatus,
    sizeBytes: Nullable(Type.Integer()),
    createdBy: Type.String(),
    createdAt: Type.String(),
    finishedAt: Nullable(Type.String()),
    expiresAt: Nullable(Type.String(), { description: 'null: kept while the add-on lives' }),
    error: Nullable(Type.String()),
  },
  { $id: 'AddonBackup' },
);
export type AddonBackup = Static<typeof AddonBackup>;

export const AddonList = Type.Object({
  addons: Type.Array(Addon),
  available: Type.Array(Type.String(), { description: 'the types this server can create' }),
});
export type AddonList = Static<typeof AddonList>;

export const CreateAddonBody = Type.Object(
  {
    type: Type.String({ description: 'postgres, mysql or redis' }),
    as: Type.Optional(Type.String({ description: 'NAME: the URL goes in NAME_URL instead of the default' })),
  },
  { additionalProperties: false },
);
export type CreateAddonBody = Static<typeof CreateAddonBody>;

export const AddonDetail = Type.Object({
  addon: Addon,
  backups: Type.Integer({ description: 'how many backups it has' }),
  lastBackup: Nullable(AddonBackup, { description: 'the newest backup that succeeded' }),
  shell: Type.Array(Type.String(), {
    description: 'the engine client as the app (what `petri addons shell` runs); empty until ready',
  }),
});
export type AddonDetail = Static<typeof AddonDetail>;

/** An add-on created or rotated: its config var arrives in `release`. */
export const AddonChange = Type.Object({
  addon: Addon,
  release: Nullable(Release, { description: 'null when the app has no release yet' }),
});
export type AddonChange = Static<typeof AddonChange>;

export const DestroyAddonQuery = Type.Object({
  confirm: Type.Optional(Type.String({ description: 'must equal the add-on name' })),
});

export const AddonDestroyed = Type.Object({
  /** The final backup, kept for the retention period. */
  backup: AddonBackup,
  release: Nullable(Release, {
    description: "the release without the add-on's config var; null when the app has none",
  }),
});
export type AddonDestroyed = Static<typeof AddonDestroyed>;

export const BackupEnvelope = Type.Object({ backup: AddonBackup });
export const BackupList = Type.Object({ backups: Type.Array(AddonBackup) });

export const RestoreBody = Type.Object(
  { backup: Type.String({ description: 'b12' }) },
  { additionalProperties: false },
);
export type RestoreBody = Static<typeof RestoreBody>;

export const AddonRestore = Type.Object({
  restored: Type.String({ description: 'the backup restored, e.g. b12' }),
  safetyBackup: AddonBackup,
});
export type AddonRestore = Static<typeof AddonRestore>;
