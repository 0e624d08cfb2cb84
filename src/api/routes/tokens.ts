// /v1/tokens: the caller's API tokens (an admin's or auditor's view of anyone's with
// ?user=), made with an expiry and answered in clear once, revoked by id.
import {
  CreatedToken,
  CreateTokenBody,
  ErrorBody,
  errorResponses,
  RevokedToken,
  TokenIdParams,
  type TokenInfo,
  TokenList,
  TokenListQuery,
} from '../../contract/index.js';
import { createToken, listTokens, revokeToken } from '../../domain/tokens.js';
import { userLabel } from '../../domain/users.js';
import { UserError } from '../../lib/errors.js';
import type { Token } from '../../store/schema.js';
import type { Api, ApiContext } from '../context.js';
import { openStreams } from '../open-streams.js';

export function presentToken(token: Token, current: Token | null, at = Date.now()): TokenInfo {
  return {
    id: token.id,
    name: token.description,
    kind: token.kind,
    createdAt: token.created_at,
    lastUsedAt: token.last_used_at,
    expiresAt: token.expires_at,
    expired: token.expires_at !== null && Date.parse(token.expires_at) <= at,
    current: current?.id === token.id,
  };
}

/** A metrics token (petri tokens create --metrics) is good for GET /metrics and nothing else:
 * a scraper's credentials, kept in a Prometheus config, must not deploy or read secrets.
 * Registered right after the bearer check (auth.ts), before any route's own work. */
export function registerMetricsTokenScope(api: Api): void {
  api.addHook('onRequest', async (req) => {
    if (req.token?.kind !== 'metrics') return;
    if (req.method === 'GET' && req.routeOptions.url === '/metrics') return;
    throw new UserError(
      'forbidden',
      "this is a metrics token: it reads GET /metrics and nothing else; use an API token ('petri tokens create NAME') for the rest",
    );
  });
}

export function tokenRoutes(api: Api, ctx: ApiContext): void {
  const { db } = ctx;
  // A revoked token's open streams end at once (open-streams.ts).
  const streams = openStreams(api, ctx);

  api.get(
    '/v1/tokens',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: "Your API tokens (never their secret); admins and auditors: anyone's with ?user=",
        querystring: TokenListQuery,
        response: { 200: TokenList, 403: ErrorBody, ...errorResponses },
      },
    },
    async (req) => {
      const { owner, tokens } = await listTokens(db, req.user, req.query.user);
      return { user: userLabel(owner), tokens: tokens.map((t) => presentToken(t, req.token)) };
    },
  );

  api.post(
    '/v1/tokens',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: 'Make an API token (default expiry 90 days); its secret is answered this once',
        body: CreateTokenBody,
        response: { 201: CreatedToken, 403: ErrorBody, ...errorResponses },
      },
    },
    async (req, reply) => {
      const { owner, token, secret } = await createToken(db, req.user, req.body, req.ip);
      return reply.code(201).send({ user: userLabel(owner), token: presentToken(token, req.token), secret });
    },
  );

  api.delete(
    '/v1/tokens/:id',
    {
      config: { access: 'signed-in' },
      schema: {
        summary: "Revoke one of your tokens (admins: anyone's); it is refused from its next use on",
        params: TokenIdParams,
        response: { 200: RevokedToken, ...errorResponses },
      },
    },
    async (req) => {
      const token = await revokeToken(db, req.user, req.params.id, req.ip);
      await streams.accessChanged({ tokenId: token.id });
      return { token: presentToken(token, req.token) };
    },
  );
}
