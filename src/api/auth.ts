// Bearer tokens on every /v1 route but the OpenAPI document.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authenticate } from '../domain/auth.js';
import type { Store } from '../store/db.js';
import type { User } from '../store/schema.js';

declare module 'fastify' {
  interface FastifyRequest {
    user: User;
  }
}

const PUBLIC = new Set(['/v1/openapi.json']);

export function registerAuth(app: FastifyInstance, db: Store): void {
  app.decorateRequest('user', null as unknown as User);
  app.addHook('onRequest', async (request: FastifyRequest) => {
    const path = request.url.split('?')[0] ?? '';
    if (PUBLIC.has(path)) return;
    const header = request.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    request.user = await authenticate(db, token);
  });
}
