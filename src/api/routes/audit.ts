// /v1/audit: the audit trail as the caller may see it (members their teams' events and their
// own actions; admins and auditors all), and /v1/audit/verify, the check of its hash chain.
import { AuditList, AuditQuery, AuditVerification, errorResponses } from '../../contract/index.js';
import { listAudit, parseAuditTime, verifyAudit } from '../../domain/audit.js';
import type { Api, ApiContext } from '../context.js';

export function auditRoutes(api: Api, ctx: ApiContext): void {
  const { db } = ctx;

  api.get(
    '/v1/audit',
    {
      config: { access: 'signed-in' },
      schema: {
        summary:
          "The audit trail, newest first: every change and refusal (who, via which token, what, which app or team, when, from where, the request's id and outcome). Members see their teams' events and their own actions; admins and auditors everything",
        querystring: AuditQuery,
        response: { 200: AuditList, ...errorResponses },
      },
    },
    async (req) => {
      const { since, until, ...rest } = req.query;
      return listAudit(db, req.user, {
        ...rest,
        since: since === undefined ? undefined : parseAuditTime('since', since),
        until: until === undefined ? undefined : parseAuditTime('until', until),
      });
    },
  );

  api.get(
    '/v1/audit/verify',
    {
      config: { access: 'platform.read' },
      schema: {
        summary:
          "Checks the audit trail's hash chain from its first event: finds an event changed, deleted or inserted after it was recorded (admins and auditors)",
        response: { 200: AuditVerification, ...errorResponses },
      },
    },
    async () => {
      const result = await verifyAudit(db);
      return { ...result, firstBad: result.firstBad ?? null };
    },
  );
}
