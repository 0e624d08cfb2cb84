// Bearer tokens on every /v1 route but the OpenAPI document.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticate } from '../domain/auth.js';
import type { Store } from '../store/db.js';
import type { Token, User } from '../store/schema.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: User;
    /** The token the request came with (null: git's per-push hook ticket). */
    token: Token | null;
  }
}

const PUBLIC = new Set(['/v1/openapi.json']);

export function registerAuth(app: FastifyInstance, db: Store): void {
  app.decorateRequest('user', null as unknown as User);
  app.decorateRequest('token', null);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const path = request.url.split('?')[0] ?? '';
    if (PUBLIC.has(path)) return;
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    const found = await authenticate(db, token);
    request.user = found.user;
    request.token = found.token;
  });
}
