// Signing in with the organisation's OIDC provider: the browser flow (authorization code
// with PKCE, redirected to the CLI's loopback listener) and the device flow. Petri's server
// is the OIDC client; the CLI only carries the answers between the browser and the server,
// and proves with a secret of its own that it is the one that started the flow.
import { type Static, Type } from '@sinclair/typebox';
import { StringEnum, User } from './common.js';

const FlowId = Type.String({ minLength: 1, maxLength: 64, description: 'the flow id answered by its start' });
const SecretHash = Type.String({
  pattern: '^[0-9a-f]{64}$',
  description:
    'sha256 (hex) of a random secret the client keeps; the secret itself is sent only to finish the flow',
});
const Secret = Type.String({
  minLength: 32,
  maxLength: 256,
  description: 'the secret whose sha256 was sent at the start (or the one the start answered)',
});
const GivenSecret = Type.Optional(
  Type.String({
    description:
      'only when the start sent no secretHash: the secret to finish the flow with (keep it as well as the flow)',
  }),
);

export const OidcStartBody = Type.Object(
  {
    redirectUri: Type.String({
      maxLength: 512,
      description: 'the loopback address the browser is sent back to: http://127.0.0.1:PORT/PATH (RFC 8252)',
    }),
    secretHash: Type.Optional(SecretHash),
  },
  { additionalProperties: false },
);
export type OidcStartBody = Static<typeof OidcStartBody>;

export const OidcStart = Type.Object({
  flow: Type.String(),
  authorizeUrl: Type.String({ description: "open it in the user's browser" }),
  secret: GivenSecret,
});
export type OidcStart = Static<typeof OidcStart>;

export const OidcFinishBody = Type.Object(
  {
    flow: FlowId,
    state: Type.String({ maxLength: 512, description: "the redirect's state parameter" }),
    code: Type.String({ minLength: 1, maxLength: 4096, description: "the redirect's code parameter" }),
    iss: Type.Optional(
      Type.String({
        maxLength: 1024,
        description: "the redirect's iss parameter, when the provider sent one",
      }),
    ),
    secret: Secret,
  },
  { additionalProperties: false },
);
export type OidcFinishBody = Static<typeof OidcFinishBody>;

/** A sign-in's result: a session token for the user (shown once). */
export const SignedIn = Type.Object({
  token: Type.String({ description: 'a session token: send it as Authorization: Bearer TOKEN' }),
  user: Type.Composite([User, Type.Object({ email: Type.Union([Type.String(), Type.Null()]) })]),
});
export type SignedIn = Static<typeof SignedIn>;

export const DeviceStartBody = Type.Object(
  { secretHash: Type.Optional(SecretHash) },
  { additionalProperties: false },
);
export type DeviceStartBody = Static<typeof DeviceStartBody>;

export const DeviceStart = Type.Object({
  flow: Type.String(),
  userCode: Type.String({ description: 'the code the user types on the provider’s page' }),
  verificationUri: Type.String({ description: 'the provider’s page where the code is typed' }),
  verificationUriComplete: Type.Union([Type.String(), Type.Null()], {
    description: 'the same page with the code filled in, when the provider offers one',
  }),
  interval: Type.Integer({ description: 'seconds to wait between polls' }),
  expiresIn: Type.Integer({ description: 'seconds until the code expires' }),
  secret: GivenSecret,
});
export type DeviceStart = Static<typeof DeviceStart>;

export const DevicePollBody = Type.Object({ flow: FlowId, secret: Secret }, { additionalProperties: false });
export type DevicePollBody = Static<typeof DevicePollBody>;

export const DevicePoll = Type.Object({
  status: StringEnum(['pending', 'done'], {
    description: 'pending: the user has not typed the code yet; poll again after interval seconds',
  }),
  interval: Type.Optional(Type.Integer({ description: 'pending: seconds to wait before the next poll' })),
  token: Type.Optional(Type.String({ description: 'done: the session token (shown once)' })),
  user: Type.Optional(SignedIn.properties.user),
});
export type DevicePoll = Static<typeof DevicePoll>;
