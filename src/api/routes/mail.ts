// The mail relay's API (issue 17): what an app sent (`petri mail`), one message (`petri mail
// show`), new credentials (`petri mail rotate`), an admin's limits (`petri mail limits`), the
// operator's report and the mail domain's DNS records; and the page a recipient reaches from
// a message's List-Unsubscribe link (public: the link's token is the proof).
import formbody from '@fastify/formbody';
import {
  AppMail,
  AppNameParams,
  errorResponses,
  MAIL_CSV_HEADER,
  MailDns,
  MailIdParams,
  MailLimitsChange,
  MailMessageDetail,
  MailReport,
  MailReportCsv,
  MailReportQuery,
  MailRotated,
} from '../../contract/index.js';
import { actorOf, findAppByName } from '../../domain/apps.js';
import {
  findMailMessage,
  type MailReportRow,
  mailReport,
  mailSummary,
  resumeMail,
  rotateMailKey,
  setMailLimits,
  unsubscribe,
} from '../../domain/mail.js';
import { unsubscribeToken } from '../../domain/mail-credentials.js';
import { loadDkimKey, mailDnsRecords } from '../../domain/mail-dkim.js';
import { UserError } from '../../lib/errors.js';
import { escapeHtml } from '../../lib/html.js';
import { targetApp } from '../auth.js';
import type { Api, ApiContext } from '../context.js';

export function mailRoutes(api: Api, ctx: ApiContext): void {
  const { db, config, secrets } = ctx;
  const unsubscribeKey = () => secrets.derive('mail unsubscribe');

  api.get(
    '/v1/apps/:name/mail',
    {
      config: { access: 'app.read' },
      schema: {
        summary:
          'What the app sent through the mail relay: counts for the hour, day and month, and the last messages',
        params: AppNameParams,
        response: { 200: AppMail, ...errorResponses },
      },
    },
    async (req) => mailSummary(db, config.mail, targetApp(req)),
  );

  api.get(
    '/v1/apps/:name/mail/:id',
    {
      config: { access: 'app.secrets' },
      schema: {
        summary: 'One message: its deliveries, and its text in capture mode (no smarthost)',
        params: MailIdParams,
        response: { 200: MailMessageDetail, ...errorResponses },
      },
    },
    async (req) => {
      const { row, deliveries } = await findMailMessage(db, targetApp(req).id, req.params.id);
      const deferred = deliveries.some((d) => d.status === 'deferred');
      return {
        message: {
          id: row.id,
          at: row.created_at,
          recipients: JSON.parse(row.recipients) as string[],
          subject: row.subject,
          status: row.status === 'queued' && deferred ? ('deferred' as const) : row.status,
          size: row.size,
          reason: row.reason,
        },
        deliveries: deliveries.map((d) => ({
          recipient: d.recipient,
          status: d.status,
          attempts: d.attempts,
          lastError: d.last_error,
          nextAttemptAt: d.status === 'deferred' ? d.next_attempt_at : null,
          doneAt: d.done_at,
        })),
        raw: row.status === 'captured' && row.raw ? row.raw.toString('utf8') : null,
      };
    },
  );

  api.post(
    '/v1/apps/:name/mail/rotate',
    {
      config: { access: 'app.write' },
      schema: {
        summary: "New SMTP and HTTP credentials for the app's mail: the old ones stop working at once",
        params: AppNameParams,
        response: { 200: MailRotated, ...errorResponses },
      },
    },
    async (req) => {
      const app = await rotateMailKey(db, actorOf(req.user, req.ip), targetApp(req));
      return {
        app: app.name,
        note: `new SMTP_URL and MAIL_API_TOKEN: restart the app (petri restart --app ${app.name}) so its processes get them`,
      };
    },
  );

  api.patch(
    '/v1/apps/:name/mail/limits',
    {
      config: { access: 'platform.admin' },
      schema: {
        summary: "An admin's limits of the app's mail (null: the server's default), or the end of a pause",
        params: AppNameParams,
        body: MailLimitsChange,
        response: { 200: AppMail, ...errorResponses },
      },
    },
    async (req) => {
      // platform.admin names no app for the access hook: it is found here.
      const app = await findAppByName(db, req.params.name);
      if (!app) throw new UserError('not_found', `app '${req.params.name}' not found`);
      const { resume, ...limits } = req.body;
      if (Object.keys(limits).length > 0) await setMailLimits(db, actorOf(req.user, req.ip), app, limits);
      if (resume) await resumeMail(db, actorOf(req.user, req.ip), app);
      return mailSummary(db, config.mail, app);
    },
  );

  api.get(
    '/v1/mail/report',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: "Every app's mail over the last 30 days (admins and auditors); format=csv for a spreadsheet",
        querystring: MailReportQuery,
        response: {
          200: {
            description: 'the counts, as JSON or (format=csv) CSV',
            content: { 'application/json': { schema: MailReport }, 'text/csv': { schema: MailReportCsv } },
          },
          ...errorResponses,
        },
      },
    },
    async (req, reply) => {
      const apps = await mailReport(db);
      if (req.query.format === 'csv') return reply.type('text/csv; charset=utf-8').send(toCsv(apps));
      return { apps };
    },
  );

  api.get(
    '/v1/mail/dns',
    {
      config: { access: 'platform.read' },
      schema: {
        summary: 'The DNS records of the mail domain: the DKIM key Petri signs with, SPF and DMARC advice',
        response: { 200: MailDns, ...errorResponses },
      },
    },
    async () => {
      if (!config.mail.enabled)
        throw new UserError('conflict', 'the mail relay is off (mail.enabled is false)');
      const key = loadDkimKey(config.dataDir, config.mail.domain);
      const relay = config.mail.relay ? new URL(config.mail.relay) : undefined;
      return {
        domain: config.mail.domain,
        relay: relay ? `${relay.hostname}:${relay.port || 587}` : null,
        records: mailDnsRecords(key, config.mail.relay),
      };
    },
  );

  // The List-Unsubscribe page: GET asks (mail scanners follow links; they must not
  // unsubscribe anyone), POST does it (also RFC 8058's one-click POST from a mail program).
  const unsubscribeTarget = (q: Record<string, unknown>) => {
    const appId = Number(q.a);
    const email = typeof q.e === 'string' ? Buffer.from(q.e, 'base64url').toString('utf8') : '';
    const ok =
      Number.isInteger(appId) &&
      /^[^\s@]+@[^\s@]+$/.test(email) &&
      typeof q.t === 'string' &&
      q.t === unsubscribeToken(unsubscribeKey(), appId, email);
    return ok ? { appId, email } : undefined;
  };
  const page = (body: string) =>
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Unsubscribe</title></head><body style="font-family:sans-serif;max-width:36em;margin:3em auto">${body}</body></html>`;

  api.get(
    '/mail/unsubscribe',
    { config: { access: 'public' }, schema: { hide: true } },
    async (req, reply) => {
      const q = req.query as Record<string, string>;
      const target = unsubscribeTarget(q);
      reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
      if (!target)
        return reply.code(400).send(page('<p>This unsubscribe link is not valid (it may be cut short).</p>'));
      const qs = new URLSearchParams({ a: String(target.appId), e: q.e!, t: q.t! }).toString();
      return page(
        `<h1>Stop this mail?</h1><p>No more mail from this experiment will be sent to <b>${escapeHtml(target.email)}</b>.</p>
<form method="post" action="/mail/unsubscribe?${escapeHtml(qs)}"><button type="submit">Unsubscribe</button></form>`,
      );
    },
  );

  // Its form (and a mail program's List-Unsubscribe=One-Click) is form-encoded.
  api.register(async (plain) => {
    await plain.register(formbody, { bodyLimit: 4096 });
    plain.post(
      '/mail/unsubscribe',
      { config: { access: 'public' }, schema: { hide: true } },
      async (req, reply) => {
        const target = unsubscribeTarget(req.query as Record<string, unknown>);
        reply.type('text/html; charset=utf-8').header('cache-control', 'no-store');
        if (!target)
          return reply
            .code(400)
            .send(page('<p>This unsubscribe link is not valid (it may be cut short).</p>'));
        await unsubscribe(db, target.appId, target.email);
        return page(
          `<h1>Unsubscribed</h1><p>${escapeHtml(target.email)} gets no more mail from this experiment.</p>`,
        );
      },
    );
  });
}

function toCsv(rows: MailReportRow[]): string {
  const lines = rows.map((r) =>
    [r.app, r.sent, r.queued, r.deferred, r.bounced, r.refused, r.captured].join(','),
  );
  return `${[MAIL_CSV_HEADER, ...lines].join('\n')}\n`;
}
