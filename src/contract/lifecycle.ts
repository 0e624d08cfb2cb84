// An experiment's renewal (`petri apps renew NAME [--for 90d]`). The warnings before and after
// expiry travel in the Petri-Warning header of every answer about the app (see README,
// Expiry and archiving).
import { type Static, Type } from '@sinclair/typebox';
import { App } from './apps.js';
import { StringEnum } from './common.js';

/** The header the API sets on answers about an app that expires within the first warning's
 * period, has expired or was archived; the CLI prints it on stderr. */
export const WARNING_HEADER = 'petri-warning';

export const RenewBody = Type.Object(
  {
    for: Type.Optional(
      Type.String({
        maxLength: 40,
        description:
          'how long from now: 90d, 2w, 12h, 30m (default lifecycle.defaultDays); beyond lifecycle.maxDays only for admins',
      }),
    ),
  },
  { additionalProperties: false },
);
export type RenewBody = Static<typeof RenewBody>;

export const Renewal = Type.Object({
  app: App,
  expiresAt: Type.String({ description: 'the new expiry' }),
  period: Type.String({ description: 'the period given, e.g. 90 days' }),
  was: StringEnum(['live', 'expired', 'archived'], {
    description:
      'what it was: live, expired (it starts again, with its data) or archived (a new, empty experiment)',
  }),
});
export type Renewal = Static<typeof Renewal>;
