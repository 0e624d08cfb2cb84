// Custom domains of an app (issue 20): each one's verification and certificate state, and
// what to set up in DNS for it.
import { type Static, Type } from '@sinclair/typebox';
import { Nullable } from './common.js';

export const DomainStatus = Type.Union(
  [
    Type.Literal('pending verification'),
    Type.Literal('issuing'),
    Type.Literal('active'),
    Type.Literal('no certificate'),
    Type.Literal('failing'),
  ],
  {
    description:
      "pending verification: not seen at the platform yet; issuing: verified and routed, its certificate not in yet; active: routed (with its certificate when HTTPS is on); no certificate: verified and routed, but the server's TLS settings get it no certificate (see https); failing: the last checks failed (see reason)",
  },
);
export type DomainStatus = Static<typeof DomainStatus>;

export const AppDomain = Type.Object({
  host: Type.String({ description: 'ASCII (IDNA) form, what DNS and certificates use' }),
  unicode: Type.String({ description: 'the same name as people write it' }),
  state: Type.Union([Type.Literal('pending'), Type.Literal('verified'), Type.Literal('failing')]),
  status: DomainStatus,
  reason: Nullable(Type.String({ description: 'why the last check failed' })),
  createdAt: Type.String(),
  verifiedAt: Nullable(Type.String()),
  lastCheckAt: Nullable(Type.String()),
  nextCheckAt: Type.String(),
  verification: Type.Object({
    url: Type.String({ description: 'where Petri checks the domain; the router answers it with the token' }),
    token: Type.String(),
    txt: Type.String({
      description:
        'the name (_petri-challenge.HOST) whose TXT record must hold the token: the proof the name is yours',
    }),
  }),
  certificate: Nullable(
    Type.Object({
      notAfter: Type.String(),
      issuer: Nullable(Type.String()),
    }),
  ),
});
export type AppDomain = Static<typeof AppDomain>;

export const DomainSetup = Type.Object({
  cname: Type.String({ description: "a CNAME to this name (the app's own host)" }),
  addresses: Type.Array(Type.String(), { description: 'or A/AAAA records to these addresses' }),
});
export type DomainSetup = Static<typeof DomainSetup>;

/** What HTTPS custom domains get on this server when browsers would not trust it. */
const HttpsNote = Nullable(
  Type.String({
    description:
      "what HTTPS the server's custom domains get, when it is not a certificate every browser trusts (the operator sets tls.acme for that); null when it is",
  }),
);

export const AppDomainList = Type.Object({
  app: Type.String(),
  domains: Type.Array(AppDomain),
  setup: DomainSetup,
  https: HttpsNote,
});
export type AppDomainList = Static<typeof AppDomainList>;

export const DomainAdd = Type.Object(
  { host: Type.String({ maxLength: 1024, description: 'e.g. www.example.org (Unicode names too)' }) },
  { additionalProperties: false },
);
export type DomainAdd = Static<typeof DomainAdd>;

export const DomainAdded = Type.Object({ domain: AppDomain, setup: DomainSetup, https: HttpsNote });
export type DomainAdded = Static<typeof DomainAdded>;

export const DomainParams = Type.Object({
  name: Type.String({ description: 'app name' }),
  host: Type.String({ maxLength: 1024 }),
});
