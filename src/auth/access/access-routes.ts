import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEntry } from '../../audit/audit-log.js';
import { badRequest, conflict, forbidden, notFound } from '../../records/fhir/outcomes.js';
import type { AppContext } from '../../server/app-context.js';
import type { Actor } from '../actor.js';
import {
  assignCare,
  BREAK_GLASS_MIN_REASON,
  BREAK_GLASS_MINUTES,
  careAssignments,
  endCareAssignment,
  grantBreakGlass,
  inCareOfAll,
} from './care-relationships.js';
import { reauthenticate, reauthProperties, reauthRefusal, type ReauthInput } from './reauthenticate.js';

const uuid = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' };

/**
 * The access policy's own API: break-the-glass (a clinician opens a patient's record in an
 * emergency, stating why, after proving again who they are) and explicit care assignments
 * (an admin, or a clinician already in care, puts a clinician in charge of a patient).
 */
export async function accessRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const audit = (request: FastifyRequest, entry: Omit<AuditEntry, 'actor' | 'source' | 'requestId'>) =>
    ctx.audit.record({ ...entry, actor: request.actor!.ref, source: request.ip, requestId: request.id });

  app.post(
    '/api/access/break-glass',
    {
      bodyLimit: 8192,
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['patientId', 'reason', 'password'],
          properties: {
            patientId: uuid,
            reason: { type: 'string', minLength: BREAK_GLASS_MIN_REASON, maxLength: 1000 },
            // The password and one second factor: a code (authenticator app or recovery code) or a passkey assertion.
            ...reauthProperties,
          },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { patientId: string; reason: string } & ReauthInput;
      const actor = request.actor!;
      const session = request.session;
      const patient = `Patient/${body.patientId}`;
      const refused = async (why: string) => {
        await audit(request, { action: 'break-glass', resourceType: 'Patient', resourceId: body.patientId, patient, outcome: 'denied', detail: { refused: why } });
      };
      if (!session || actor.scope.kind !== 'clinician') {
        await refused('not-a-clinician');
        throw forbidden('only a signed-in clinician can open a record in an emergency');
      }
      const reason = body.reason.trim();
      if (reason.length < BREAK_GLASS_MIN_REASON) throw badRequest(`state the reason in at least ${BREAK_GLASS_MIN_REASON} characters`, 'reason');
      const proof = await reauthenticate(ctx, session, 'break-glass', body, { source: request.ip, requestId: request.id });
      if (!proof.ok) {
        await refused(proof.reason === 'refused' ? 'reauthentication-failed' : proof.reason);
        throw reauthRefusal(proof, reply);
      }
      const exists = await ctx.store.db.selectFrom('patient' as any).select('id').where('id', '=', body.patientId).where('deleted', '=', false).executeTakeFirst();
      if (!exists) throw notFound(`${patient} not found`);
      if (await inCareOfAll(ctx.store.db, actor.scope.practitioner, [], [patient])) throw conflict('this patient is already in your care: no emergency access is needed');

      const grant = await grantBreakGlass(ctx.store.db, { practitioner: actor.scope.practitioner, patient, accountId: session.account.id, reason });
      // A security event in its own right. The reason stays in break_glass_grant (it may describe the
      // patient's condition); the audit chain holds its digest, so an edited reason shows.
      await audit(request, {
        action: 'break-glass',
        resourceType: 'Patient',
        resourceId: body.patientId,
        patient,
        outcome: 'success',
        breakGlass: grant.grantId,
        detail: { minutes: BREAK_GLASS_MINUTES, expires: grant.expires.toISOString(), reasonSha256: createHash('sha256').update(reason).digest('hex'), reauthentication: proof.method },
      });
      return reply.code(201).send({ grantId: grant.grantId, patient, expires: grant.expires.toISOString() });
    },
  );

  // Reviewers (admins, the bootstrap token) see every recent grant with its reason; a clinician their own.
  app.get('/api/access/break-glass', async (request) => {
    const actor = request.actor!;
    if (actor.scope.kind === 'patient-compartment') throw forbidden('not available to patients');
    let query = ctx.store.db.selectFrom('break_glass_grant').selectAll().orderBy('granted', 'desc').limit(200);
    if (actor.scope.kind === 'clinician') query = query.where('practitioner', '=', actor.scope.practitioner);
    const rows = await query.execute();
    return {
      grants: rows.map((r) => ({ grantId: r.id, practitioner: r.practitioner, patient: r.patient, reason: r.reason, granted: new Date(r.granted).toISOString(), expires: new Date(r.expires).toISOString() })),
    };
  });

  const assignmentBody = {
    type: 'object',
    additionalProperties: false,
    required: ['practitionerId', 'patientId'],
    properties: { practitionerId: uuid, patientId: uuid },
  };

  app.post('/api/access/assignments', { bodyLimit: 4096, schema: { body: assignmentBody } }, async (request, reply) => {
    const body = request.body as { practitionerId: string; patientId: string };
    const practitioner = `Practitioner/${body.practitionerId}`;
    const patient = `Patient/${body.patientId}`;
    await mayManageCare(ctx, request.actor!, patient);
    for (const [table, id, ref] of [['practitioner', body.practitionerId, practitioner], ['patient', body.patientId, patient]] as const) {
      const found = await ctx.store.db.selectFrom(table as any).select('id').where('id', '=', id).where('deleted', '=', false).executeTakeFirst();
      if (!found) throw notFound(`${ref} not found`);
    }
    const added = await assignCare(ctx.store.db, { practitioner, patient, by: request.actor!.ref, reason: 'assigned' });
    if (added) await audit(request, { action: 'care-assigned', resourceType: 'Patient', resourceId: body.patientId, patient, outcome: 'success', detail: { practitioner } });
    return reply.code(added ? 201 : 200).send({ practitioner, patient });
  });

  app.delete('/api/access/assignments', { bodyLimit: 4096, schema: { body: assignmentBody } }, async (request, reply) => {
    const body = request.body as { practitionerId: string; patientId: string };
    const practitioner = `Practitioner/${body.practitionerId}`;
    const patient = `Patient/${body.patientId}`;
    const actor = request.actor!;
    if (actor.scope.kind !== 'admin' && actor.scope.kind !== 'full') throw forbidden('care assignments are ended by an admin');
    if (!(await endCareAssignment(ctx.store.db, practitioner, patient))) throw notFound('no such care assignment');
    await audit(request, { action: 'care-unassigned', resourceType: 'Patient', resourceId: body.patientId, patient, outcome: 'success', detail: { practitioner } });
    return reply.code(204).send();
  });

  app.get(
    '/api/access/assignments',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { patient: uuid, practitioner: uuid } } } },
    async (request) => {
      const query = request.query as { patient?: string; practitioner?: string };
      const actor = request.actor!;
      if (actor.scope.kind === 'patient-compartment') throw forbidden('not available to patients');
      // A clinician lists their own assignments; admins anyone's.
      const practitioner = actor.scope.kind === 'clinician' ? actor.scope.practitioner : query.practitioner ? `Practitioner/${query.practitioner}` : undefined;
      return { assignments: await careAssignments(ctx.store.db, { ...(practitioner ? { practitioner } : {}), ...(query.patient ? { patient: `Patient/${query.patient}` } : {}) }) };
    },
  );
}

/** Admins assign care; so may a clinician who is in the patient's care already (a referral), but not one who reached them by breaking the glass. */
async function mayManageCare(ctx: AppContext, actor: Actor, patient: string): Promise<void> {
  if (actor.scope.kind === 'admin' || actor.scope.kind === 'full') return;
  if (actor.scope.kind === 'clinician' && (await inCareOfAll(ctx.store.db, actor.scope.practitioner, [], [patient]))) return;
  throw forbidden('care assignments are made by an admin or by a clinician in the patient\'s care');
}
