// The platform's messages about a release ("starting web.1", "v3 serves at ...") in the app's
// log (source "petri") and in the log of the deploy that made the release, which its
// followers read until the deploy's last line.
import type { DeployLogs } from '../logs/deploy-log.js';
import type { LogStore } from '../logs/log-store.js';
import type { App, Release } from '../store/schema.js';

export class ReleaseNotes {
  /** Deploy ids of releases, filled from every release a pass sees. */
  private readonly deployOf = new Map<number, string | null>();

  constructor(private readonly deps: { logs: LogStore; deployLogs: DeployLogs }) {}

  /** Remembers which deploy a release came from (called with every release a pass sees). */
  remember(release: Release): void {
    this.deployOf.set(release.id, release.deploy_id);
  }

  /** A platform message in the app's log and in the release's deploy output. */
  note(app: App, releaseId: number, text: string): void {
    this.deps.logs.append(app.name, 'petri', `${text}\n`);
    const deployId = this.deployOf.get(releaseId);
    if (deployId) this.deps.deployLogs.append(app.id, deployId, 'petri', `${text}\n`);
  }

  /** The release command's output, in the deploy output only (the app's log has its own). */
  releaseOutput(app: App, release: Release, lines: string[]): void {
    const deployId = this.deployOf.get(release.id);
    if (deployId && lines.length > 0)
      this.deps.deployLogs.append(app.id, deployId, 'release', `${lines.join('\n')}\n`);
  }

  /** The release serves or failed: its deploy's followers get their last line. */
  close(releaseId: number): void {
    const deployId = this.deployOf.get(releaseId);
    if (deployId) this.deps.deployLogs.close(deployId);
  }
}
