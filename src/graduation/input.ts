// What the service gathers for a graduating app's handoff bundle (from the store and the
// slug), as plain data: the renderers of src/graduation/ turn it into the bundle's files.
import type { Dependencies } from './dependencies.js';

/** The port the image listens on: Petri chose one per instance and set PORT; here it is fixed. */
export const CONTAINER_PORT = 8080;
/** The unprivileged user the image runs as (Petri ran each app as a user of its own). */
export const APP_UID = 10001;
/** Where the slug goes in the image: Petri mounted it at /app too. */
export const APP_DIR = '/app';

export type DataClass = 'none' | 'anonymous' | 'personal' | 'sensitive';

export interface BundleAddon {
  /** The attachment's name (postgres, cache ...). */
  name: string;
  type: 'postgres' | 'mysql' | 'redis';
  /** The config var holding its URL. */
  envVar: string;
  /** The config vars the add-on owns (its URL, a Redis add-on's key prefix). */
  vars: string[];
  backup: BundleBackup | null;
  /** Why there is no fresh backup (or none at all): the engine's message. */
  backupError?: string;
}

export interface BundleBackup {
  /** b12 */
  label: string;
  /** Path inside the bundle, e.g. backups/postgres-b12.pgdump. */
  path: string;
  sizeBytes: number;
  takenAt: string;
  /** Taken for this bundle (else the latest one Petri had). */
  fresh: boolean;
}

export interface ObservedEgress {
  host: string;
  port: number;
  allowed: boolean;
  count: number;
  lastSeen: string;
}

export interface BundleInput {
  app: {
    name: string;
    description: string;
    owner: string;
    team: string;
    dataClass: DataClass;
    privacyNote: string | null;
    retentionDays: number | null;
    /** The class an admin approved, with who and when; null when none was. */
    approval: { dataClass: string; by: string; at: string } | null;
    createdAt: string;
    /** Where Petri served it. */
    url: string;
  };
  release: {
    version: number;
    createdAt: string;
    /** Process type -> shell command, as Petri runs it in /app. */
    processTypes: Record<string, string>;
    /** The build's environment (PATH, NODE_ENV ...): below the config vars. */
    runtimeEnv: Record<string, string>;
    releaseCommand: string | null;
    healthPath: string | null;
    /** The egress patterns of petri.toml. */
    egress: string[];
  };
  stack: Stack;
  /** Process type -> instances. */
  formation: Record<string, number>;
  limits: { memoryMiB: number; cpus: number; pids: number; diskMiB: number; bootTimeoutMs: number };
  /** Petri put an idle app to sleep after this long without a request (0: never). */
  idleTimeoutMs: number;
  /** Names only: a bundle never holds a config var's value. */
  configVarNames: string[];
  addons: BundleAddon[];
  /** How often Petri backed each add-on up. */
  backupIntervalHours: number;
  observedEgress: ObservedEgress[];
  traffic: Traffic;
  dependencies: Dependencies;
  slug: { files: number; bytes: number; leftOut: string[] };
  generatedAt: string;
  /** Who asked for the bundle. */
  generatedBy: string;
}

/** What the app runs on, for the Dockerfile's base image. */
export interface Stack {
  kind: 'node' | 'python' | 'other';
  /** Node.js or Python version Petri ran it on; null when unknown. */
  version: string | null;
  /** The host's distribution, whose packages Petri's sandboxes saw (/usr is the host's). */
  os: { id: 'debian' | 'ubuntu'; codename: string } | null;
  /** Python: the requirements the image's pip installs into the virtualenv, since Petri's
   * host provided them (the virtualenv sees the host's packages). */
  pipInstall: string[];
}

/** What Petri measured of the app's traffic; absent figures were not recorded. */
export interface Traffic {
  /** The last request, deploy or wake Petri saw. */
  lastActiveAt: string | null;
  requests7d?: number;
  errorRate?: number;
  availability?: number;
}

export interface BundleFile {
  /** Relative to the bundle's top directory. */
  path: string;
  text: string;
}
