import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Repository } from '../records/repository.js';
import { FhirError, forbidden, operationOutcome, unauthorized } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import type { Actor, BreakGlassAccess } from './actor.js';
import { liveBreakGlass } from './access/care-relationships.js';
import { bearerToken } from './bootstrap-token.js';
import { actorForAccessToken } from './oauth/oauth-clients.js';
import { FHIR_BASE_PATH } from '../records/fhir/fhir-routes.js';
import { SESSION_COOKIE, type ActiveSession, type SessionRestriction } from './sessions/session-store.js';

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
    /** Served to restricted sessions too (sessions/session-store.ts): e.g. the password change while the password is expired. */
    allowedWhile?: SessionRestriction[];
  }
}

// The bootstrap admin token keeps full scope on purpose: it is the installer's break-in key
// (before any account exists, and when every admin is locked out), and scripts and tests use it.
// Guard it like a root password; people sign in and get the access policy of their role.
const BOOTSTRAP_ADMIN: Actor = { ref: 'admin-token', scope: { kind: 'full' } };
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Who a signed-in account is to the access policy (auth/access/access-policy.ts): a patient their
 * own compartment, a clinician their Practitioner (whose care relationships the database knows)
 * with the break-the-glass grants still open, reception and admins the administrative side only.
 */
export function actorForSession(session: ActiveSession, breakGlass: BreakGlassAccess[] = []): Actor {
  const { account } = session;
  const ref = account.fhirRef ?? `account:${account.id}`;
  switch (account.role) {
    case 'patient':
      return { ref, scope: { kind: 'patient-compartment', patients: account.fhirRef?.startsWith('Patient/') ? [account.fhirRef] : [] } };
    case 'clinician':
      // Without a Practitioner there is nobody to be in care of: such an account sees no patient.
      return { ref, scope: { kind: 'clinician', practitioner: account.fhirRef?.startsWith('Practitioner/') ? account.fhirRef : '', breakGlass } };
    case 'reception':
      return { ref, scope: { kind: 'reception' } };
    case 'admin':
      return { ref, scope: { kind: 'admin' } };
  }
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
      else {
        // An OAuth access token (a system client, or an app acting for a user): the FHIR API only, within its scopes.
        actor = await actorForAccessToken(ctx.store.db, bearer);
        if (actor && !(request.routeOptions.url ?? '').startsWith(`${FHIR_BASE_PATH}/`)) throw forbidden('OAuth access tokens are accepted by the FHIR API only');
      }
    } else {
      const session = await ctx.sessions.resolve(request.cookies[SESSION_COOKIE]);
      if (session) {
        if (!SAFE_METHODS.has(request.method)) checkCsrf(request, session, ownOrigin);
        if (session.restriction && !request.routeOptions.config?.allowedWhile?.includes(session.restriction)) throw restricted(session.restriction);
        request.session = session;
        const practitioner = session.account.role === 'clinician' ? session.account.fhirRef : null;
        actor = actorForSession(session, practitioner ? await liveBreakGlass(ctx.store.db, practitioner) : []);
      }
    }
    if (!actor) {
      reply.header('WWW-Authenticate', 'Bearer realm="telesalud"');
      throw unauthorized('sign in first: this request carries no valid credentials');
    }
    request.actor = actor;
    request.records = new Repository(ctx.store.db, ctx.audit, actor, { requestId: request.id, source: request.ip, ...(actor.client ? { client: actor.client } : {}) }, ctx.notifications?.recordObservers);
  });
}

const RESTRICTED_MESSAGE: Record<SessionRestriction, string> = {
  'password-expired': 'your password has expired: change it (POST /api/auth/password) before doing anything else',
  'mfa-enrolment': 'set up your second factor (authenticator app or passkey) before doing anything else',
};

function restricted(restriction: SessionRestriction): FhirError {
  return new FhirError(403, operationOutcome(restriction === 'mfa-enrolment' ? 'mfa-enrolment-required' : restriction, RESTRICTED_MESSAGE[restriction]));
}

function checkCsrf(request: FastifyRequest, session: ActiveSession, ownOrigin: string): void {
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== ownOrigin) throw forbidden('cross-origin request refused');
  const presented = request.headers['x-csrf-token'];
  const expected = Buffer.from(session.csrfToken);
  const given = Buffer.from(typeof presented === 'string' ? presented : '');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) throw forbidden('missing or wrong X-CSRF-Token header');
}
