import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Repository } from '../records/repository.js';
import { forbidden, unauthorized } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import type { Actor } from './actor.js';
import { bearerToken } from './bootstrap-token.js';
import { SESSION_COOKIE, type ActiveSession } from './sessions/session-store.js';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | undefined;
    /** The user session behind this request, when it came with a session cookie. */
    session: ActiveSession | undefined;
    /** The record as this request's actor may see it. The only way handlers reach health data. */
    records: Repository;
  }
  interface FastifyContextConfig {
    /** Served without authentication (health checks, the CapabilityStatement, sign-in). */
    public?: boolean;
  }
}

const BOOTSTRAP_ADMIN: Actor = { ref: 'admin-token', scope: { kind: 'full' } };
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** What a signed-in account may see: a patient only their own compartment. */
export function actorForSession(session: ActiveSession): Actor {
  const { account } = session;
  if (account.role === 'patient') return { ref: account.fhirRef ?? `account:${account.id}`, scope: { kind: 'patient-compartment', patients: account.fhirRef ? [account.fhirRef] : [] } };
  return { ref: account.fhirRef ?? `account:${account.id}`, scope: { kind: 'full' } };
}

/**
 * Nothing is anonymous: every request proves who it is, whatever network it comes from —
 * with a session cookie (people) or a bearer token (the bootstrap admin, scripts).
 * Cookie-authenticated changes also need the session's CSRF token and a same-origin Origin.
 */
export function registerAuthentication(app: FastifyInstance, ctx: AppContext): void {
  const ownOrigin = new URL(ctx.config.publicUrl).origin;
  app.decorateRequest('actor', undefined);
  app.decorateRequest('session', undefined);
  app.decorateRequest('records', null as unknown as Repository);
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    if (request.routeOptions.config?.public) return;
    let actor: Actor | undefined;
    const bearer = bearerToken(request.headers.authorization);
    if (bearer !== undefined) {
      if (ctx.adminToken.matches(bearer)) actor = BOOTSTRAP_ADMIN;
    } else {
      const session = await ctx.sessions.resolve(request.cookies[SESSION_COOKIE]);
      if (session) {
        if (!SAFE_METHODS.has(request.method)) checkCsrf(request, session, ownOrigin);
        request.session = session;
        actor = actorForSession(session);
      }
    }
    if (!actor) {
      reply.header('WWW-Authenticate', 'Bearer realm="telesalud"');
      throw unauthorized('sign in first: this request carries no valid credentials');
    }
    request.actor = actor;
    request.records = new Repository(ctx.store.db, ctx.audit, actor, { requestId: request.id, source: request.ip });
  });
}

function checkCsrf(request: FastifyRequest, session: ActiveSession, ownOrigin: string): void {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== ownOrigin) throw forbidden('cross-origin request refused');
  const presented = request.headers['x-csrf-token'];
  const expected = Buffer.from(session.csrfToken);
  const given = Buffer.from(typeof presented === 'string' ? presented : '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw forbidden('missing or wrong X-CSRF-Token header');
}
