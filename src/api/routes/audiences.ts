// Audiences (issue 15): GET/PUT /v1/apps/:name/audience, its invitees, invite links and
// visitors. Reads are the team's (app.read), changes its members' (app.write); making an
// app with personal or sensitive data public is a platform admin's approval (the domain
// checks it). The router enforces audiences (enforced: true).
import {
  AppNameParams,
  Audience,
  AudienceInvite,
  AudienceInviteeParams,
  AudienceLink,
  AudienceLinkCreate,
  AudienceLinkCreated,
  AudienceLinkList,
  AudienceLinkParams,
  AudienceSet,
  AudienceVisitorList,
  errorResponses,
} from '../../contract/index.js';
import { appUrl } from '../../domain/apps.js';
import {
  type AudienceView,
  audienceOf,
  createLink,
  inviteToAudience,
  listLinks,
  listVisitors,
  personalLinks,
  removeFromAudience,
  revokeLink,
  setAudience,
} from '../../domain/audiences.js';
import { UserError } from '../../lib/errors.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';
import { gateKeysChanged } from './gate.js';

const present = (
  view: AudienceView,
  added?: string[],
  links?: Array<{ email: string; url: string; expiresAt: string }>,
) => ({
  ...view,
  enforced: true,
  ...(added ? { added } : {}),
  ...(links ? { links } : {}),
});

export function audienceRoutes(api: Api, ctx: ApiContext): void {
  const { db, config } = ctx;

  api.get(
    '/v1/apps/:name/audience',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'Who may reach the app: its audience and the people on its list',
        params: AppNameParams,
        response: { 200: Audience, ...errorResponses },
      },
    },
    async (req) => present(await audienceOf(db, targetApp(req))),
  );

  api.put(
    '/v1/apps/:name/audience',
    {
      config: { access: 'app.write' },
      schema: {
        summary:
          "Set the audience (public, staff, invite); public with personal or sensitive data needs an admin's approve",
        params: AppNameParams,
        body: AudienceSet,
        response: { 200: Audience, ...errorResponses },
      },
    },
    async (req) => {
      const view = await setAudience(db, req.user, targetApp(req), req.body.audience, {
        approve: req.body.approve,
        ip: req.ip,
      });
      await gateKeysChanged(ctx);
      return present(view);
    },
  );

  api.post(
    '/v1/apps/:name/audience/invitees',
    {
      config: { access: 'app.write' },
      schema: {
        summary: "Put people on the app's list by e-mail",
        params: AppNameParams,
        body: AudienceInvite,
        response: { 200: Audience, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const mailer = ctx.mailNotices;
      if (req.body.send && !mailer) {
        throw new UserError(
          'conflict',
          "Petri's mail relay is off (mail.enabled in the server config), so it cannot mail the links: print them with --link and pass them on yourself",
        );
      }
      const { view, added } = await inviteToAudience(db, req.user, app, req.body.emails, req.ip);
      if (!req.body.link && !req.body.send) return present(view, added);
      const links = (await personalLinks(db, req.user, app, req.body.emails, req.ip)).map((l) => ({
        email: l.email,
        url: `${appUrl(config, app.name)}/.petri/join/${l.secret}`,
        expiresAt: l.expiresAt,
      }));
      if (req.body.send && mailer) {
        for (const link of links) {
          await mailer.personalLink({
            appId: app.id,
            app: app.name,
            description: app.description,
            by: req.user.email ?? req.user.name,
            to: link.email,
            url: link.url,
            expiresAt: link.expiresAt,
          });
        }
      }
      return present(view, added, links);
    },
  );

  api.delete(
    '/v1/apps/:name/audience/invitees/:email',
    {
      config: { access: 'app.write' },
      schema: {
        summary: "Take someone off the app's list (every visitor's cookie of the app ends)",
        params: AudienceInviteeParams,
        response: { 200: Audience, ...errorResponses },
      },
    },
    async (req) => {
      const view = await removeFromAudience(db, req.user, targetApp(req), req.params.email, req.ip);
      await gateKeysChanged(ctx);
      return present(view);
    },
  );

  api.get(
    '/v1/apps/:name/audience/links',
    {
      config: { access: 'app.read' },
      schema: {
        summary: "The app's invite links (never their secrets)",
        params: AppNameParams,
        response: { 200: AudienceLinkList, ...errorResponses },
      },
    },
    async (req) => ({ links: await listLinks(db, targetApp(req)) }),
  );

  api.post(
    '/v1/apps/:name/audience/links',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Create an invite link; its URL is answered once',
        params: AppNameParams,
        body: AudienceLinkCreate,
        response: { 201: AudienceLinkCreated, ...errorResponses },
      },
    },
    async (req, reply) => {
      const app = targetApp(req);
      const { link, secret } = await createLink(db, req.user, app, req.body, req.ip);
      return reply.code(201).send({ link, url: `${appUrl(config, app.name)}/.petri/join/${secret}` });
    },
  );

  api.delete(
    '/v1/apps/:name/audience/links/:id',
    {
      config: { access: 'app.write' },
      schema: {
        summary: 'Revoke an invite link (the cookies of those it let in end)',
        params: AudienceLinkParams,
        response: { 200: AudienceLink, ...errorResponses },
      },
    },
    async (req) => {
      const link = await revokeLink(db, req.user, targetApp(req), req.params.id, req.ip);
      await gateKeysChanged(ctx);
      return link;
    },
  );

  api.get(
    '/v1/apps/:name/audience/visitors',
    {
      config: { access: 'app.read' },
      schema: {
        summary: 'Who consented to the notice, when, to which version; their last visit',
        params: AppNameParams,
        response: { 200: AudienceVisitorList, ...errorResponses },
      },
    },
    async (req) => {
      const app = targetApp(req);
      const visitors = await listVisitors(db, app);
      return { noticeVersion: (await audienceOf(db, app)).noticeVersion, visitors };
    },
  );
}
