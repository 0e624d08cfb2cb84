// /v1/auth/oidc/* and /v1/auth/device/*: signing in with the organisation's OIDC provider,
// in a browser (the CLI's loopback listener gets the redirect) or with a code typed on
// another device. Public: these routes are how a token is had in the first place.
import {
  DevicePoll,
  DevicePollBody,
  DeviceStart,
  DeviceStartBody,
  errorResponses,
  OidcFinishBody,
  OidcStart,
  OidcStartBody,
  SignedIn,
} from '../../contract/index.js';
import type { OidcProvider } from '../../identity/oidc.js';
import { UserError } from '../../lib/errors.js';
import type { Api, ApiContext } from '../context.js';

export function authOidcRoutes(api: Api, ctx: ApiContext): void {
  const provider = (): OidcProvider => {
    const oidc = ctx.identity?.oidc;
    if (!oidc)
      throw new UserError(
        'not_found',
        "this Petri has no single sign-on configured (identity.oidc); sign in with 'petri login --ldap USER', " +
          "'petri login --email EMAIL' or 'petri login --url URL --token TOKEN'",
      );
    return oidc;
  };

  api.post(
    '/v1/auth/oidc/start',
    {
      config: { access: 'public' },
      schema: {
        summary: "Starts a browser sign-in: the provider's page to open, and the flow to finish",
        security: [],
        body: OidcStartBody,
        response: { 200: OidcStart, ...errorResponses },
      },
    },
    async (req) => provider().startBrowser(req.body, req.ip),
  );

  api.post(
    '/v1/auth/oidc/finish',
    {
      config: { access: 'public' },
      schema: {
        summary: "Finishes a browser sign-in with the provider's redirect: a session token",
        security: [],
        body: OidcFinishBody,
        response: { 200: SignedIn, ...errorResponses },
      },
    },
    async (req) => provider().finishBrowser(req.body, req.ip),
  );

  api.post(
    '/v1/auth/device/start',
    {
      config: { access: 'public' },
      schema: {
        summary: 'Starts a device sign-in: a code to type on the provider’s page from any device',
        security: [],
        body: DeviceStartBody,
        response: { 200: DeviceStart, ...errorResponses },
      },
      // The body is optional (no secretHash: the answer carries a secret to poll with).
      preValidation: async (req) => {
        req.body ??= {};
      },
    },
    async (req) => provider().startDevice(req.body, req.ip),
  );

  api.post(
    '/v1/auth/device/poll',
    {
      config: { access: 'public' },
      schema: {
        summary:
          'Asks whether a device sign-in is done: pending (poll again after interval s) or a session token',
        security: [],
        body: DevicePollBody,
        response: { 200: DevicePoll, ...errorResponses },
      },
    },
    async (req) => provider().pollDevice(req.body, req.ip),
  );
}
