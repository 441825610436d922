import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { authPolicy } from './auth-policy.js';
import { effectiveClinicTimeZone } from './clinic-time-zone.js';

/**
 * `GET /api/clinic`: the clinic's time zone, for the pages shown before anyone signs in (sign-in,
 * an invitation's expiry, a guest's consultation): they show times on the clinic's clock too.
 * Public — a clinic's zone is no secret, and the session answer names the same one — and
 * counted per source like every anonymous request (src/edge/rate-limit-plugin.ts).
 */
export async function clinicTimeZoneRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  app.get('/api/clinic', { config: { public: true } }, async (_request, reply) => {
    const timeZone = effectiveClinicTimeZone(await authPolicy(ctx.store.db).current(), ctx.config.clinicTimeZone);
    // An admin may change the zone at any time: a browser asks again on every page load.
    return reply.header('cache-control', 'no-cache').send({ timeZone });
  });
}
