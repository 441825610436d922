import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Repository } from '../records/repository.js';
import { unauthorized } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import type { Actor } from './actor.js';
import { bearerToken } from './bootstrap-token.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | undefined;
    /** The record as this request's actor may see it. The only way handlers reach health data. */
    records: Repository;
  }
  interface FastifyContextConfig {
    /** Served without authentication (health checks, the CapabilityStatement). */
    public?: boolean;
  }
}

const BOOTSTRAP_ADMIN: Actor = { ref: 'admin-token', scope: { kind: 'full' } };

/**
 * Nothing is anonymous: every request proves who it is, whatever network it comes from.
 * Until accounts exist, the proof is the bootstrap admin token.
 */
export function registerAuthentication(app: FastifyInstance, ctx: AppContext): void {
  app.decorateRequest('actor', undefined);
  app.decorateRequest('records', null as unknown as Repository);
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    if (request.routeOptions.config?.public) return;
    if (!ctx.adminToken.matches(bearerToken(request.headers.authorization))) {
      reply.header('WWW-Authenticate', 'Bearer realm="telesalud"');
      throw unauthorized('sign in first: this request carries no valid credentials');
    }
    request.actor = BOOTSTRAP_ADMIN;
    request.records = new Repository(ctx.store.db, ctx.audit, BOOTSTRAP_ADMIN, { requestId: request.id, source: request.ip });
  });
}
