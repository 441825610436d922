import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyHttpsOptions, type FastifyInstance } from 'fastify';
import type { Server } from 'node:https';
import fastifyCookie from '@fastify/cookie';
import { registerAuthentication } from '../auth/authenticate.js';
import { authRoutes } from '../auth/auth-routes.js';
import { documentRoutes } from '../documents/document-routes.js';
import { fhirRoutes } from '../records/fhir/fhir-routes.js';
import type { AppContext } from './app-context.js';
import { registerErrorHandling } from './errors.js';
import { healthRoutes } from './health-routes.js';

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
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    connectionTimeout: 60_000,
    requestTimeout: 120_000,
    keepAliveTimeout: 10_000,
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
  await app.register(fastifyCookie);
  registerAuthentication(app, ctx);
  await app.register(healthRoutes, ctx);
  await app.register(fhirRoutes, ctx);
  await app.register(documentRoutes, ctx);
  await app.register(authRoutes, ctx);
  return app;
}
