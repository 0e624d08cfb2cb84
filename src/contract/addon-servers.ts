// The database servers behind add-ons as operators see them (GET /v1/addon-servers, the
// dashboard's Add-on servers page): each engine's server, who runs it, and whether it answers.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable, StringEnum } from './common.js';

export const AddonServerState = StringEnum(['up', 'starting', 'down', 'idle'], {
  description:
    'up: it answers; starting: a managed server on its way up; down: it does not answer, or failed to start (see error); idle: a managed server not started yet (no add-on of its engine since the control plane started)',
});
export type AddonServerState = Static<typeof AddonServerState>;

export const AddonServer = Type.Object({
  type: Type.String({ description: 'postgres, mysql or redis' }),
  mode: StringEnum(['managed', 'external'], {
    description: 'managed: Petri runs the server; external: an operator gave an admin URL',
  }),
  address: Type.String({ description: 'host:port where the control plane reaches it' }),
  state: AddonServerState,
  error: Nullable(Type.String({ description: 'why it is down, when known' })),
  addons: Type.Integer({ description: "live add-ons on it (every app's)" }),
});
export type AddonServer = Static<typeof AddonServer>;

export const AddonServerList = Type.Object({ servers: Type.Array(AddonServer) });
export type AddonServerList = Static<typeof AddonServerList>;
