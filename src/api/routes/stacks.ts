// /v1/stacks: the Node.js runtimes of this Petri's cache and which of the caller's apps run on each.
import { errorResponses, Stacks } from '../../contract/index.js';
import { listApps } from '../../domain/app-access.js';
import { appsByNodeVersion } from '../../domain/stacks.js';
import { compareVersions, installedNodeVersions, runtimesDir } from '../../lib/runtime-cache.js';
import type { Api, ApiContext } from '../context.js';

export function stackRoutes(api: Api, ctx: ApiContext): void {
  const { db, config, paths } = ctx;

  api.get(
    '/v1/stacks',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'Installed runtimes (Node.js versions) and which of your apps run on each',
        response: { 200: Stacks, ...errorResponses },
      },
    },
    async (req) => {
      // Only the apps the caller may see: another team's app is not named, not even here.
      const apps = await listApps(db, req.user);
      const using = await appsByNodeVersion(db, apps);
      const installed = new Set(await installedNodeVersions(runtimesDir(config, paths.root)));
      const versions = [...new Set([...installed, ...using.keys()])].sort(compareVersions);
      return {
        runtimes: versions.map((version) => ({
          stack: 'node' as const,
          version,
          apps: using.get(version) ?? [],
          installed: installed.has(version),
        })),
      };
    },
  );
}
