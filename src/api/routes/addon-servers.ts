// /v1/addon-servers: the database servers behind add-ons (admins and auditors), each with
// its mode, address, whether it answers now and how many add-ons live on it; what the
// dashboard's Add-on servers page shows. Reading it changes nothing.
import { AddonServerList, ErrorBody, errorResponses } from '../../contract/index.js';
import { listLiveAddons } from '../../domain/addons.js';
import type { Api, ApiContext } from '../context.js';

export function addonServerRoutes(api: Api, ctx: ApiContext): void {
  api.get(
    '/v1/addon-servers',
    {
      config: { access: 'platform.read' },
      schema: {
        summary:
          "Each add-on engine's server: managed or external, its address, whether it answers, its add-ons",
        response: { 200: AddonServerList, 403: ErrorBody, ...errorResponses },
      },
    },
    async () => {
      const [servers, live] = await Promise.all([ctx.addons.servers(), listLiveAddons(ctx.db)]);
      const count = (type: string) => live.filter((a) => a.type === type).length;
      return { servers: servers.map((s) => ({ ...s, addons: count(s.type) })) };
    },
  );
}
