import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEntry } from '../../audit/audit-log.js';
import { badRequest, FhirError, forbidden, operationOutcome } from '../../records/fhir/outcomes.js';
import type { AppContext } from '../../server/app-context.js';
import {
  criteriaProblem,
  EMERGENCY_LOOKUP_LIMIT,
  EMERGENCY_LOOKUP_WINDOW_MINUTES,
  findEmergencyMatches,
  lockLookups,
  lookupsInWindow,
  type LookupCriteria,
} from './emergency-lookup.js';

/**
 * POST /api/access/emergency-lookup: a signed-in clinician finds a patient outside their care
 * by exact identifier, or family name and date of birth, to open the record with break-the-glass
 * (POST /api/access/break-glass, which asks for the reason and re-authentication). A POST, so
 * the identifier or name never lands in a URL, an access log or the browser history.
 *
 * Every lookup is one audit entry with the ids it returned, found or not (that entry also counts
 * for the rate limit); the patients returned are named in it, so it shows in each one's own "who
 * accessed my record". The criteria themselves are not kept: the kind is enough to review.
 */
export async function emergencyLookupRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const entry = (request: FastifyRequest, e: Omit<AuditEntry, 'actor' | 'source' | 'requestId'>): AuditEntry => ({
    ...e,
    actor: request.actor!.ref,
    source: request.ip,
    requestId: request.id,
  });

  app.post(
    '/api/access/emergency-lookup',
    {
      bodyLimit: 4096,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          properties: {
            identifier: { type: 'string', minLength: 1, maxLength: 64 },
            family: { type: 'string', minLength: 1, maxLength: 100 },
            birthDate: { type: 'string', minLength: 10, maxLength: 10 },
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { identifier?: string; family?: string; birthDate?: string };
      const actor = request.actor!;
      if (!request.session || actor.scope.kind !== 'clinician') {
        await ctx.audit.record(entry(request, { action: 'emergency-lookup', outcome: 'denied', detail: { refused: 'not-a-clinician' } }));
        throw forbidden('the emergency lookup is for signed-in clinicians');
      }
      const problem = criteriaProblem(body);
      if (problem) throw badRequest(problem);
      const criteria: LookupCriteria = body.identifier?.trim() ? { identifier: body.identifier } : { family: body.family!, birthDate: body.birthDate! };
      const kind = 'identifier' in criteria ? 'identifier' : 'family-and-birth-date';

      // Count, look up and audit in one transaction under a per-clinician lock: concurrent
      // lookups queue, and none is answered unless its audit entries commit with it.
      const answer = await ctx.store.db.transaction().execute(async (tx) => {
        await lockLookups(tx, actor.ref);
        const used = await lookupsInWindow(tx, actor.ref);
        if (used >= EMERGENCY_LOOKUP_LIMIT) {
          await ctx.audit.recordIn(tx, [entry(request, { action: 'emergency-lookup', outcome: 'denied', detail: { refused: 'rate-limited', criteria: kind, lookupsInWindow: used } })]);
          return undefined;
        }
        const found = await findEmergencyMatches(tx, criteria);
        const returned = found.matches.map((m) => m.id);
        await ctx.audit.recordIn(tx, [
          entry(request, {
            action: 'emergency-lookup',
            resourceType: 'Patient',
            patients: returned.map((id) => `Patient/${id}`),
            outcome: 'success',
            detail: { criteria: kind, returned, ...(found.tooMany ? { tooMany: true } : {}) },
          }),
        ]);
        return { ...found, remaining: EMERGENCY_LOOKUP_LIMIT - used - 1 };
      });
      if (!answer) {
        reply.header('Retry-After', String(EMERGENCY_LOOKUP_WINDOW_MINUTES * 60));
        throw new FhirError(
          429,
          operationOutcome('throttled', `at most ${EMERGENCY_LOOKUP_LIMIT} emergency lookups in ${EMERGENCY_LOOKUP_WINDOW_MINUTES} minutes; open a record you know by its record number, or ask an administrator to assign you`),
        );
      }
      return reply.header('Cache-Control', 'no-store').send(answer);
    },
  );
}
