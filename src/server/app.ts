import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyHttpsOptions, type FastifyInstance } from 'fastify';
import type { Server } from 'node:https';
import fastifyCookie from '@fastify/cookie';
import { registerAuthentication } from '../auth/authenticate.js';
import { authRoutes } from '../auth/auth-routes.js';
import { accountAdminRoutes } from '../auth/admin/account-admin-routes.js';
import { invitationRoutes } from '../auth/invitations/invitation-routes.js';
import { mfaRoutes } from '../auth/mfa/mfa-routes.js';
import { passkeyRoutes } from '../auth/passkeys/passkey-routes.js';
import { strengthRoutes } from '../auth/passwords/strength-routes.js';
import { accessRoutes } from '../auth/access/access-routes.js';
import { emergencyLookupRoutes } from '../auth/access/emergency-lookup-routes.js';
import { oauthRoutes } from '../auth/oauth/oauth-routes.js';
import { auditRoutes } from '../audit/audit-routes.js';
import { auditVerifyRoutes } from '../audit/audit-verify-routes.js';
import { securityEventsRoutes } from '../edge/security-events-routes.js';
import { serviceStatusRoutes } from '../observability/service-status-routes.js';
import { recordAccessRoutes } from '../audit/record-access-routes.js';
import { privacyRoutes } from '../privacy/privacy-routes.js';
import { clinicTimeZoneRoutes } from '../auth/policy/clinic-time-zone-routes.js';
import { consultRoutes } from '../consult/consult-routes.js';
import { documentRoutes } from '../documents/document-routes.js';
import { fhirRoutes } from '../records/fhir/fhir-routes.js';
import { registerNoteSigning } from '../records/notes/note-signing.js';
import type { AppContext } from './app-context.js';
import { registerErrorHandling } from './errors.js';
import { shield } from '../edge/shield-plugin.js';
import { registerRateLimits } from '../edge/rate-limit-plugin.js';
import { healthRoutes } from './health-routes.js';
import { registerMetrics } from '../observability/metrics.js';
import { scheduleAuditRetention } from '../audit/audit-retention-schedule.js';
import { webAppRoutes } from './web-app-routes.js';
import { closeConnectionsWhileDraining, keepAliveTimeoutMs } from '../cluster/keep-alive-behind-proxy.js';
import { forwardedRequestId } from '../edge/trusted-proxies.js';

/**
 * The HTTP application of one node. `https` is given when serving for real; tests may
 * leave it out and use inject().
 */
export async function buildApp(ctx: AppContext, https?: FastifyHttpsOptions<Server>['https']): Promise<FastifyInstance> {
  const app = Fastify({
    ...(https ? { https } : {}),
    loggerInstance: ctx.logger,
    // The default request log prints URLs, and a query string can hold a patient's name.
    logController: new LogController({ disableRequestLogging: true }),
    // The edge's request id (nginx's $request_id, HAProxy's unique-id) when a trusted proxy sends
    // one: the edge's access log, this node's log and the audit entry then name the request alike.
    genReqId: (req) => forwardedRequestId(req, ctx.config.trustedProxies) ?? randomUUID(),
    // request.ip is the client named by X-Forwarded-For only when the connection comes from a configured proxy.
    trustProxy: ctx.config.trustedProxies.entries.length > 0 ? [...ctx.config.trustedProxies.entries] : false,
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    connectionTimeout: 60_000,
    requestTimeout: 120_000,
    // Longer than a load balancer keeps an idle connection to the node (src/cluster/keep-alive-behind-proxy.ts).
    keepAliveTimeout: keepAliveTimeoutMs(ctx.config),
    routerOptions: { maxParamLength: 128 },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  }) as unknown as FastifyInstance;

  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: reply.statusCode, ms: Math.round(reply.elapsedTime), actor: request.actor?.ref },
      'request',
    );
  });

  registerErrorHandling(app);
  closeConnectionsWhileDraining(app, ctx);
  await app.register(shield, ctx);
  await app.register(fastifyCookie);
  // After the shield (attacks never count as traffic), around authentication: anonymous requests
  // are counted before any credential lookup, signed-in ones per account once it is known.
  const rateLimits = registerRateLimits(app, ctx);
  registerAuthentication(app, ctx);
  rateLimits.afterAuthentication();
  await app.register(healthRoutes, ctx);
  registerMetrics(app, ctx);
  scheduleAuditRetention(app, ctx);
  // Before the FHIR routes: a clinician signs notes only in their own name.
  registerNoteSigning(app, ctx);
  await app.register(fhirRoutes, ctx);
  await app.register(documentRoutes, ctx);
  await app.register(authRoutes, ctx);
  await app.register(mfaRoutes, ctx);
  await app.register(passkeyRoutes, ctx);
  await app.register(strengthRoutes, ctx);
  await app.register(invitationRoutes, ctx);
  await app.register(accountAdminRoutes, ctx);
  await app.register(accessRoutes, ctx);
  await app.register(emergencyLookupRoutes, ctx);
  await app.register(oauthRoutes, ctx);
  await app.register(auditRoutes, ctx);
  await app.register(auditVerifyRoutes, ctx);
  await app.register(securityEventsRoutes, ctx);
  await app.register(serviceStatusRoutes, ctx);
  await app.register(recordAccessRoutes, ctx);
  await app.register(privacyRoutes, ctx);
  await app.register(clinicTimeZoneRoutes, ctx);
  await app.register(consultRoutes, ctx);
  await app.register(webAppRoutes, ctx);
  return app;
}
