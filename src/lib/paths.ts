// Where things live under the data directory. Every path Petri writes is made here, from
// ids it generated itself, never from user input.
import { readdir } from 'node:fs/promises';
import path from 'node:path';

export class DataPaths {
  constructor(readonly root: string) {}

  get store(): string {
    return path.join(this.root, 'petri.db');
  }
  get adminToken(): string {
    return path.join(this.root, 'admin.token');
  }
  /** The key that seals secrets at rest (mode 0600). */
  get secretKey(): string {
    return path.join(this.root, 'secret.key');
  }
  get router(): string {
    return path.join(this.root, 'router');
  }
  /** Touched every 10 s while the control plane runs: its mtime is its last sign of life. */
  get heartbeat(): string {
    return path.join(this.root, 'heartbeat');
  }
  get runtime(): string {
    return path.join(this.root, 'runtime');
  }
  get logs(): string {
    return path.join(this.root, 'logs');
  }
  app(appId: number): string {
    return path.join(this.root, 'apps', String(appId));
  }
  deploySource(appId: number, deployId: string): string {
    return path.join(this.app(appId), 'deploys', deployId, 'src');
  }
  deployDir(appId: number, deployId: string): string {
    return path.join(this.app(appId), 'deploys', deployId);
  }
  slug(appId: number, deployId: string): string {
    return path.join(this.app(appId), 'slugs', deployId);
  }
  /** The build's own disk (its /app) while it runs; removed after it. */
  buildWork(appId: number, deployId: string): string {
    return path.join(this.deployDir(appId, deployId), 'build');
  }
  /** The app's build cache: an image and its mount point (see BuildDisksSpec). */
  buildCache(appId: number): string {
    return path.join(this.app(appId), 'build-cache');
  }
  /** Where the build cache was a plain directory, before builds had disks of their own. */
  legacyBuildCache(appId: number): string {
    return path.join(this.app(appId), 'cache');
  }
  deployLog(appId: number, deployId: string): string {
    return path.join(this.deployDir(appId, deployId), 'build.log');
  }
  /** Ids of the apps that have a directory (some may have been destroyed). */
  async appIds(): Promise<number[]> {
    const names = await readdir(path.join(this.root, 'apps')).catch(() => [] as string[]);
    return names.filter((n) => /^[0-9]+$/.test(n)).map(Number);
  }
  /** Managed add-on servers, one directory per engine. */
  get addonServers(): string {
    return path.join(this.root, 'addons');
  }
  /** A backup of an add-on (mode 0600; it holds the app's data). */
  addonBackup(addonId: number, backupId: number): string {
    return path.join(this.root, 'backups', String(addonId), `b${backupId}.dump`);
  }
  /** A random id of this installation, so add-on names on a shared server never collide. */
  get installId(): string {
    return path.join(this.root, 'install.id');
  }
  instance(appId: number, instanceId: string): string {
    return path.join(this.app(appId), 'instances', instanceId);
  }
}
