// /v1/apps/:name/domains: an app's custom domains (issue 20). Reads are the team's
// (app.read), claims and removals its members' (app.write), each audited (domain/domains.ts).
// A claim routes once controllers/domains.ts has verified it; a removal stops routing at the
// reconciler's next pass, which the API nudges.
import {
  type AppDomain,
  AppDomainList,
  AppNameParams,
  DomainAdd,
  DomainAdded,
  DomainParams,
  type DomainSetup,
  type DomainStatus,
  errorResponses,
  NoContent,
} from '../../contract/index.js';
import { certificateStates } from '../../domain/certificates.js';
import {
  addDomain,
  challengeName,
  customDomainHttps,
  type DomainView,
  listDomains,
  platformAddresses,
  removeDomain,
  verificationUrl,
} from '../../domain/domains.js';
import type { Store } from '../../store/db.js';
import type { App } from '../../store/schema.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function domainRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  const setup = (app: App): DomainSetup => ({
    cname: `${app.name}.${config.domain}`,
    addresses: platformAddresses(config),
  });

  // With HTTPS on, a verified domain is active once its certificate is in, if it gets one.
  const https = config.httpsPort !== 0;
  const custom = customDomainHttps(config);

  const present = async (domains: DomainView[]): Promise<AppDomain[]> => {
    const certificates = await certificatesOf(
      db,
      domains.map((d) => d.host),
    );
    return domains.map((d) => {
      const certificate = certificates.get(d.host) ?? null;
      return {
        host: d.host,
        unicode: d.unicode,
        state: d.state,
        status: statusOf(d, certificate, https, custom?.certified ?? true),
        reason: d.reason,
        createdAt: d.createdAt,
        verifiedAt: d.verifiedAt,
        lastCheckAt: d.lastCheckAt,
        nextCheckAt: d.nextCheckAt,
        verification: {
          url: verificationUrl(d.host, d.id, config.domains.verifyPort),
          token: d.token,
          txt: challengeName(d.host),
        },
        certificate,
      };
    });
  };

  api.get(
    '/v1/apps/:name/domains',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The app's custom domains: each one's state and certificate, and what to set up in DNS",
        params: AppNameParams,
        response: { 200: AppDomainList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      return {
        app: app.name,
        domains: await present(await listDomains(db, app)),
        setup: setup(app),
        https: custom?.note ?? null,
      };
    },
  );

  api.post(
    '/v1/apps/:name/domains',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          "Claim a custom domain for the app: it routes once Petri finds the claim's token in the name's TXT record (verification.txt) and sees the name point here",
        params: AppNameParams,
        body: DomainAdd,
        response: { 201: DomainAdded, ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const added = await addDomain(db, req.user, app, req.body.host, config, req.ip);
      const [domain] = await present([added]);
      return reply.code(201).send({ domain: domain!, setup: setup(app), https: custom?.note ?? null });
    },
  );

  api.delete(
    '/v1/apps/:name/domains/:host',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Remove a custom domain: the app stops answering for it',
        params: DomainParams,
        response: { 204: NoContent, ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      await removeDomain(db, req.user, app, req.params.host, config, req.ip);
      ctx.nudge();
      return reply.code(204).send(null);
    },
  );
}

type Certificate = AppDomain['certificate'];

function statusOf(d: DomainView, certificate: Certificate, https: boolean, certified: boolean): DomainStatus {
  if (d.state === 'failing') return 'failing';
  if (d.state === 'pending') return 'pending verification';
  if (!https) return 'active';
  if (!certified) return 'no certificate';
  return certificate !== null && Date.parse(certificate.notAfter) > Date.now() ? 'active' : 'issuing';
}

/** Each host's certificate the router serves (a host with none yet is left out). */
async function certificatesOf(db: Store, hosts: string[]): Promise<Map<string, NonNullable<Certificate>>> {
  const found = new Map<string, NonNullable<Certificate>>();
  for (const [host, c] of await certificateStates(db, hosts)) {
    if (c.not_after !== null) found.set(host, { notAfter: c.not_after, issuer: c.issuer });
  }
  return found;
}
