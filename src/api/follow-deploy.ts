// Following a deploy as it runs: its log lines as they are written, then the deploy as it
// ended. The one loop behind the deploy stream (`petri deploy`) and the git hook's stream
// (`git push petri`), so the two cannot drift apart.
import { getDeploy } from '../domain/deploys.js';
import type { DataPaths } from '../lib/paths.js';
import { sleep } from '../lib/until.js';
import { type DeployLogLine, readDeployLog } from '../logs/deploy-log.js';
import type { Store } from '../store/db.js';
import type { App, Deploy } from '../store/schema.js';

export type DeployProgress = ({ type: 'log' } & DeployLogLine) | { type: 'end'; deploy: Deploy };

/** Yields the deploy's log lines, then its end once it succeeded or failed; stops early
 * (without an end) when `closed` aborts. */
export async function* followDeploy(
  deps: { db: Store; paths: DataPaths },
  app: App,
  id: string,
  closed: AbortSignal,
  intervalMs = 50,
): AsyncGenerator<DeployProgress> {
  const file = deps.paths.deployLog(app.id, id);
  let offset = 0;
  while (!closed.aborted) {
    // Read the status before the log: when it says finished, the log is complete.
    const deploy = await getDeploy(deps.db, app, id);
    const read = readDeployLog(file, offset);
    offset = read.offset;
    for (const line of read.lines) yield { type: 'log', ...line };
    if (read.more) continue; // a big log is read in windows, without waiting between them
    if (deploy.status === 'succeeded' || deploy.status === 'failed') {
      yield { type: 'end', deploy };
      return;
    }
    await sleep(intervalMs);
  }
}
