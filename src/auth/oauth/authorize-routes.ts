import type { FastifyInstance, FastifyRequest } from 'fastify';
import { FHIR_BASE_PATH } from '../../records/fhir/fhir-routes.js';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import type { ActiveSession } from '../sessions/session-store.js';
import { issueCode } from './authorization-codes.js';
import { approverProblem, AUTHORIZATION_PARAMS, checkAuthorizationRequest, redirectWith, type ApproverProblem, type AuthorizationParams, type CheckedRequest } from './authorization-request.js';
import { clientActorRef } from './oauth-clients.js';

export const AUTHORIZE_PATH = '/oauth2/authorize';
/** The web app's approval page (web/src/auth/AuthorizePage.tsx). */
export const APPROVAL_PAGE_PATH = '/authorize';
export const AUTHORIZATION_API_PATH = '/api/oauth/authorization';

const param = { type: 'string', maxLength: 2048 };
const paramProperties = Object.fromEntries(AUTHORIZATION_PARAMS.map((name) => [name, param]));
// Unknown parameters are ignored (RFC 6749 §3.1), but each must still be one short string.
const querystring = { type: 'object', maxProperties: 20, properties: paramProperties, additionalProperties: param };
const decisionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['decision'],
  properties: { ...paramProperties, decision: { type: 'string', enum: ['approve', 'deny'] } },
};

const PROBLEM_MESSAGES: Record<ApproverProblem, string> = {
  'patient-context-needs-patient': 'launch/patient and patient/ scopes give a patient their own record; choosing a patient as staff is not offered',
  'no-patient-record': 'this account has no patient record to share',
  'role-not-supported': 'accounts of this role can not authorize apps',
};

const pick = (source: Record<string, unknown>): AuthorizationParams =>
  Object.fromEntries(AUTHORIZATION_PARAMS.flatMap((name) => (typeof source[name] === 'string' ? [[name, source[name] as string]] : [])));

/**
 * SMART App Launch, standalone: the authorization endpoint and the API of the web app's approval page.
 *
 *   app ──► GET /oauth2/authorize?…          checked against the registered client (no session needed:
 *                                             the session cookie is SameSite=Strict, so a navigation
 *                                             from the app's site would not carry it anyway)
 *       ◄── 303 /authorize?…                  the web app's page; it signs the user in first if needed
 *   page ─► GET  /api/oauth/authorization?…   what the app asks for, in words the page can translate
 *   page ─► POST /api/oauth/authorization     approve or deny (session + CSRF); answers the redirect
 *       ◄── { redirect: redirect_uri?code=…&state=… }   the page sends the browser there
 */
export async function authorizeRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const fhirBase = `${ctx.config.publicUrl}${FHIR_BASE_PATH}`;
  const check = (params: AuthorizationParams) => checkAuthorizationRequest(ctx.store.db, params, fhirBase);

  app.get(AUTHORIZE_PATH, { config: { public: true }, schema: { querystring } }, async (request, reply) => {
    reply.header('Cache-Control', 'no-store').header('Referrer-Policy', 'no-referrer');
    const params = pick(request.query as Record<string, unknown>);
    const checked = await check(params);
    if (checked.kind === 'untrusted') return reply.redirect(`${APPROVAL_PAGE_PATH}?problem=${checked.problem}`, 303);
    if (checked.kind === 'refused') {
      // The client is a registered one (else the request would be untrusted): it names the actor.
      await ctx.audit.record({ actor: clientActorRef(params.client_id!), action: 'app-authorized', outcome: 'denied', source: request.ip, requestId: request.id, detail: { error: checked.error } });
      return reply.redirect(checked.redirect, 302);
    }
    return reply.redirect(`${APPROVAL_PAGE_PATH}?${new URLSearchParams(params as Record<string, string>).toString()}`, 303);
  });

  /** Only a person signed in to telesalud (a session, not a token) may authorize an app. */
  const sessionOf = (request: FastifyRequest): ActiveSession => {
    if (!request.session) throw refusedBecause('forbidden', 'an app is authorized by a person signed in to telesalud, not with a token');
    return request.session;
  };

  const describe = (checked: Extract<CheckedRequest, { kind: 'valid' }>, session: ActiveSession) => {
    const problem = approverProblem(session.account, checked.scopes);
    return {
      client: { name: checked.client.name, type: checked.client.type, redirectOrigin: whereTo(checked.redirectUri) },
      scopes: checked.scopes.grants.map((g) => ({ level: g.level, type: g.type, interactions: [...g.interactions] })),
      launchPatient: checked.scopes.launchPatient,
      offlineAccess: checked.scopes.offlineAccess,
      notGranted: checked.scopes.notGranted,
      ...(problem ? { problem } : {}),
    };
  };

  app.get(AUTHORIZATION_API_PATH, { schema: { querystring } }, async (request, reply) => {
    const session = sessionOf(request);
    const checked = await check(pick(request.query as Record<string, unknown>));
    reply.header('Cache-Control', 'no-store');
    if (checked.kind === 'untrusted') throw refusedBecause(checked.problem, 'this app or its redirect address is not registered here', 400);
    if (checked.kind === 'refused') throw refusedBecause('invalid-request', checked.description, 400);
    return describe(checked, session);
  });

  app.post(AUTHORIZATION_API_PATH, { bodyLimit: 16 * 1024, schema: { body: decisionBody } }, async (request, reply) => {
    const session = sessionOf(request);
    const body = request.body as AuthorizationParams & { decision: 'approve' | 'deny' };
    const checked = await check(pick(body));
    reply.header('Cache-Control', 'no-store');
    if (checked.kind === 'untrusted') throw refusedBecause(checked.problem, 'this app or its redirect address is not registered here', 400);
    if (checked.kind === 'refused') throw refusedBecause('invalid-request', checked.description, 400);
    const actor = request.actor!.ref;
    const own = session.account.role === 'patient' && session.account.fhirRef?.startsWith('Patient/') ? session.account.fhirRef : undefined;
    const audit = (outcome: 'success' | 'denied', detail: Record<string, unknown>) =>
      ctx.audit.record({ actor, action: 'app-authorized', outcome, ...(own ? { patient: own } : {}), source: request.ip, requestId: request.id, detail: { client: clientActorRef(checked.client.id), ...detail } });

    if (body.decision === 'deny') {
      await audit('denied', { decision: 'deny' });
      return { redirect: redirectWith(checked.redirectUri, { error: 'access_denied', error_description: 'the user denied access', state: checked.state }) };
    }
    const problem = approverProblem(session.account, checked.scopes);
    if (problem) {
      await audit('denied', { decision: 'approve', problem });
      throw refusedBecause(problem, PROBLEM_MESSAGES[problem], 403);
    }
    const scope = checked.scopes.scopes.join(' ');
    const code = await issueCode(ctx.store.db, {
      clientId: checked.client.id,
      accountId: session.account.id,
      redirectUri: checked.redirectUri,
      scopes: scope,
      codeChallenge: checked.codeChallenge,
      patient: own ?? null,
    });
    await audit('success', { decision: 'approve', scope });
    return { redirect: redirectWith(checked.redirectUri, { code, state: checked.state }) };
  });
}

/** Where the browser goes back to, as the user can recognise it: the site, a native app's loopback listener on this device, or its scheme. */
function whereTo(redirectUri: string): string {
  const url = new URL(redirectUri);
  return url.protocol === 'https:' || url.protocol === 'http:' ? url.origin : url.protocol.slice(0, -1);
}
