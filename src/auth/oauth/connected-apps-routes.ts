import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { refusedBecause } from '../auth-errors.js';
import type { ActiveSession } from '../sessions/session-store.js';
import { listConnectedApps, revokeConnectedApp } from './connected-apps.js';
import { clientActorRef } from './oauth-clients.js';

export const CONNECTED_APPS_PATH = '/api/oauth/apps';

/**
 * The signed-in person's connected apps (SMART App Launch): what each may reach, since when, and
 * a way to end its access. Session and CSRF as for ending a session (authenticate.ts checks the
 * token on every change); no re-authentication: revoking only takes access away, so someone at an
 * unlocked screen gains nothing by it, and the owner loses nothing they can't give again.
 */
export async function connectedAppsRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  /** A person in their own session: an app's token (FHIR only) or the installation token has no apps of its own to see. */
  const sessionOf = (request: FastifyRequest): ActiveSession => {
    if (!request.session) throw refusedBecause('forbidden', 'connected apps are shown to a person signed in to telesalud, not to a token');
    return request.session;
  };

  app.get(CONNECTED_APPS_PATH, async (request, reply) => {
    const session = sessionOf(request);
    const apps = await listConnectedApps(ctx.store.db, session.account.id);
    return reply.header('Cache-Control', 'no-store').send({
      apps: apps.map((a) => ({
        clientId: a.clientId,
        name: a.name,
        scopes: a.scopes,
        launchPatient: a.launchPatient,
        offlineAccess: a.offlineAccess,
        approved: a.approved.toISOString(),
        lastUsed: a.lastUsed.toISOString(),
        accessUntil: a.accessUntil.toISOString(),
      })),
    });
  });

  app.delete(
    `${CONNECTED_APPS_PATH}/:clientId`,
    { schema: { params: { type: 'object', additionalProperties: false, required: ['clientId'], properties: { clientId: { type: 'string', pattern: '^tsc-[0-9a-f]{24}$' } } } } },
    async (request, reply) => {
      const session = sessionOf(request);
      const { clientId } = request.params as { clientId: string };
      const own = session.account.fhirRef?.startsWith('Patient/') ? session.account.fhirRef : undefined;
      // The app is what the event is about, not who acted: `app`, not `client` (which would name it an agent of the event).
      const audit = (outcome: 'success' | 'denied', detail: Record<string, unknown>) =>
        ctx.audit.record({ actor: `account:${session.account.id}`, action: 'app-revoked', outcome, ...(own ? { patient: own } : {}), source: request.ip, requestId: request.id, detail: { app: clientActorRef(clientId), ...detail } });
      const ended = await revokeConnectedApp(ctx.store.db, session.account.id, clientId);
      if (ended === 0) {
        // Another person's app, one already revoked, or a made-up id: nothing changed, and trying is on record.
        await audit('denied', { refused: 'no-grant' });
        throw refusedBecause('not-found', 'you have not given this app access', 404);
      }
      await audit('success', { grants: ended });
      return reply.code(204).send();
    },
  );
}
