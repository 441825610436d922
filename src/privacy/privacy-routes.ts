import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { breakGlassGrant } from '../auth/access/access-policy.js';
import { refusedBecause } from '../auth/auth-errors.js';
import { reauthProperties, type ReauthInput } from '../auth/access/reauthenticate.js';
import { reauthenticateUser } from '../auth/sign-in/reauthenticate-user.js';
import type { ActiveSession } from '../auth/sessions/session-store.js';
import type { AuditEntry } from '../audit/audit-log.js';
import { FHIR_BASE_PATH } from '../records/fhir/fhir-routes.js';
import { COMPARTMENT_TYPES, requireCompartmentAccess } from '../records/fhir/everything.js';
import type { AppContext } from '../server/app-context.js';
import { emptyCounts, patientExportBundle } from './patient-export.js';
import { PRIVACY_NOTICE_VERSION } from './privacy-notice.js';
import { consentTo, recordConsent } from './telehealth-consent.js';

const uuid = { type: 'string', pattern: '^[0-9a-fA-F-]{36}$' };
const reauthBody = {
  type: 'object',
  additionalProperties: false,
  required: ['password'],
  // The password and one second factor (a code or a passkey assertion): auth/access/reauthenticate.ts.
  properties: reauthProperties,
} as const;

/**
 * A patient's rights over their data: telehealth consent to the privacy notice (asked before the
 * first consultation), and the whole record as one download — for the patient, or a clinician
 * on their behalf — after proving again who they are.
 */
export async function privacyRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const fhirBaseUrl = `${ctx.config.publicUrl}${FHIR_BASE_PATH}`;

  const patientOf = (request: FastifyRequest): { session: ActiveSession; patientRef: string } => {
    const session = request.session;
    const ref = session?.account.fhirRef;
    if (!session || session.account.role !== 'patient' || !ref?.startsWith('Patient/')) throw refusedBecause('forbidden', 'telehealth consent is given by a patient signed in to their own record');
    return { session, patientRef: ref };
  };

  app.get('/api/me/consent', async (request, reply) => {
    const { patientRef } = patientOf(request);
    const consent = await consentTo(ctx.store.db, patientRef);
    return reply.header('Cache-Control', 'no-store').send({ currentVersion: PRIVACY_NOTICE_VERSION, consent: consent ?? null, required: consent === undefined });
  });

  app.post(
    '/api/me/consent',
    { bodyLimit: 1024, schema: { body: { type: 'object', additionalProperties: false, required: ['noticeVersion'], properties: { noticeVersion: { type: 'string', minLength: 1, maxLength: 64 } } } } },
    async (request, reply) => {
      const { session, patientRef } = patientOf(request);
      const { noticeVersion } = request.body as { noticeVersion: string };
      // Consent counts only for the notice the patient was shown: an old page must reload first.
      if (noticeVersion !== PRIVACY_NOTICE_VERSION) {
        throw refusedBecause('notice-outdated', `the privacy notice has changed (current version ${PRIVACY_NOTICE_VERSION}): read it again and accept the current one`, 409);
      }
      const consent = await ctx.store.db.transaction().execute(async (tx) => {
        const recorded = await recordConsent(tx, { patientRef, accountId: session.account.id, source: request.ip });
        // In the same transaction: a consent exists exactly when its audit entry does.
        await ctx.audit.recordIn(tx, [
          { actor: request.actor!.ref, action: 'consent-recorded', outcome: 'success', patient: patientRef, source: request.ip, requestId: request.id, detail: { noticeVersion, alreadyGiven: !recorded.created } },
        ]);
        return recorded;
      });
      return reply.code(consent.created ? 201 : 200).header('Cache-Control', 'no-store').send({ currentVersion: PRIVACY_NOTICE_VERSION, consent: { noticeVersion: consent.noticeVersion, acceptedAt: consent.acceptedAt }, required: false });
    },
  );

  app.post('/api/patients/:id/export', { bodyLimit: 4096, schema: { params: { type: 'object', properties: { id: uuid }, required: ['id'] }, body: reauthBody } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const patientRef = `Patient/${id}`;
    const session = request.session;
    const audit = (outcome: AuditEntry['outcome'], detail: Record<string, unknown>) => {
      const breakGlass = breakGlassGrant(request.actor!, patientRef);
      return ctx.audit.record({ actor: request.actor!.ref, action: 'export', resourceType: 'Patient', resourceId: id, patient: patientRef, outcome, source: request.ip, requestId: request.id, ...(breakGlass ? { breakGlass } : {}), detail });
    };
    // Re-authentication needs a person: the bootstrap token and integrations use the FHIR API ($everything).
    if (!session) throw refusedBecause('forbidden', 'exporting a record needs a signed-in user (integrations: GET /fhir/R4/Patient/<id>/$everything)');
    // Refused before the password is asked for: an admin sees no clinical content (audited as denied by the repository).
    await requireCompartmentAccess(request.records, COMPARTMENT_TYPES);
    if (!(await reauthenticateUser(ctx, session, request.body as ReauthInput, { source: request.ip, requestId: request.id }, 'export', reply))) {
      await audit('denied', { refused: 'reauthentication-failed' });
      throw refusedBecause('reauthentication-failed', 're-authentication failed: give your password and, if you use an authenticator app, a new code from it');
    }
    // Someone else's record, or one out of the clinician's care, answers 404 like a missing one (audited as denied).
    const patient = await request.records.read('Patient', id);

    const counts = emptyCounts();
    const started = Date.now();
    const pieces = patientExportBundle({
      records: request.records,
      db: ctx.store.db,
      keyRing: ctx.keyRing,
      fhirBaseUrl,
      patient,
      onDocumentFailed: (documentId) => request.log.error({ documentId }, 'document failed its integrity check during an export'),
    }, counts);
    // One audit entry for the export once it has ended (complete or not), with what actually left;
    // every page and document was audited by the repository before it was sent.
    async function* audited(): AsyncGenerator<string> {
      let complete = false;
      try {
        yield* pieces;
        complete = true;
      } finally {
        await audit(complete ? 'success' : 'failed', { ...counts, complete, ms: Date.now() - started }).catch((err: unknown) =>
          request.log.error({ err: err instanceof Error ? err.message : String(err) }, 'the audit entry of an export could not be written'),
        );
      }
    }
    const day = new Date().toISOString().slice(0, 10);
    return reply
      .type('application/fhir+json; charset=utf-8')
      .headers({ 'Cache-Control': 'no-store', 'Content-Disposition': `attachment; filename="telesalud-record-${id}-${day}.json"`, 'X-Content-Type-Options': 'nosniff' })
      .send(Readable.from(audited(), { objectMode: false, highWaterMark: 64 * 1024 }));
  });
}
