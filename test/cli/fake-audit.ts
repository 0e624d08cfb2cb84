// The fake API's audit trail (see fake-api.ts, which routes /v1/audit here): canned events,
// newest first (a deploy, a refused request, a git push, a sign-in refused for a name with a
// terminal escape in it, the platform putting an app to sleep), filtered and paged as the
// server does, and a chain check whose answer a test may set. Answers go through fake-api's
// send and fail, so they are checked against the API contract like every other.
import type http from 'node:http';
import type { AuditEvent, AuditVerification } from '../../src/client/index.js';
import type { Reply } from './fake-teams.js';

export interface FakeAudit {
  events: AuditEvent[];
  verification: AuditVerification;
}

const state = new WeakMap<object, FakeAudit>();

/** The audit trail of this fake (made on first use). */
export function fakeAudit(fake: object): FakeAudit {
  let audit = state.get(fake);
  if (!audit) {
    const events = cannedAuditEvents();
    audit = {
      events,
      verification: {
        ok: true,
        checked: events.length,
        last: { id: events[0]!.id, hash: 'a'.repeat(64) },
        firstBad: null,
      },
    };
    state.set(fake, audit);
  }
  return audit;
}

export function cannedAuditEvents(): AuditEvent[] {
  const base = {
    actorId: 2,
    tokenId: 7,
    via: 'api' as const,
    app: 'alpha',
    team: 'labs',
    outcome: 'ok' as const,
    status: null,
    ip: '10.1.2.3',
    requestId: null,
    detail: {},
  };
  return [
    {
      ...base,
      id: 105,
      at: '2025-01-06T10:00:05.123Z',
      actor: 'ana@example.org',
      action: 'config.change',
      target: 'alpha',
      requestId: '3f0c5a7e-0d7e-4d55-9d1a-6f1e2a3b4c5d',
      detail: { set: ['GREETING'], unset: [] },
    },
    {
      ...base,
      id: 104,
      at: '2025-01-06T09:59:00.000Z',
      actor: 'bob@example.org',
      actorId: 3,
      tokenId: 9,
      action: 'PATCH /v1/apps/:name/config',
      target: 'alpha',
      outcome: 'denied',
      status: 403,
      ip: '10.1.2.4',
      requestId: '8e1d2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b',
      detail: { path: '/v1/apps/alpha/config', error: { code: 'forbidden', message: 'viewers may not' } },
    },
    {
      ...base,
      id: 103,
      at: '2025-01-06T09:30:00.000Z',
      actor: 'ana@example.org',
      via: 'git',
      action: 'deploy.create',
      target: 'alpha',
      detail: { deploy: 'd1b2c' },
    },
    {
      ...base,
      id: 102,
      at: '2025-01-06T09:00:00.000Z',
      actor: 'mallory\u001b[2J\nFORGED ROW',
      actorId: null,
      tokenId: null,
      action: 'auth.refused',
      target: 'ldap',
      app: null,
      team: null,
      outcome: 'denied',
      ip: '203.0.113.9',
      detail: { reason: 'wrong password' },
    },
    {
      ...base,
      id: 101,
      at: '2025-01-06T03:00:00.000Z',
      actor: 'petri',
      actorId: null,
      tokenId: null,
      via: 'system',
      action: 'app.sleep',
      target: 'alpha',
      ip: null,
      detail: { reason: 'idle for 30 minutes' },
    },
  ];
}

export function handleAudit(
  fake: object,
  method: string | undefined,
  rest: string[],
  query: URLSearchParams,
  res: http.ServerResponse,
  reply: Reply,
): void {
  const audit = fakeAudit(fake);
  if (method !== 'GET' || rest.length > 1 || (rest.length === 1 && rest[0] !== 'verify')) {
    reply.fail(res, 404, 'not_found', `no route ${method} /v1/audit/${rest.join('/')}`);
    return;
  }
  if (rest[0] === 'verify') {
    reply.send(res, 200, audit.verification);
    return;
  }
  const limit = Number(query.get('limit') ?? 100);
  const before = query.has('before') ? Number(query.get('before')) : Number.POSITIVE_INFINITY;
  const user = query.get('user');
  const matching = audit.events.filter(
    (e) =>
      e.id < before &&
      (!query.has('app') || e.app === query.get('app')) &&
      (!query.has('team') || e.team === query.get('team')) &&
      (user === null || e.actor === user) &&
      (!query.has('outcome') || e.outcome === query.get('outcome')) &&
      (!query.has('action') || e.action.startsWith(query.get('action') ?? '')),
  );
  const events = matching.slice(0, limit);
  reply.send(res, 200, {
    events,
    next: matching.length > limit ? (events.at(-1)?.id ?? null) : null,
  });
}
