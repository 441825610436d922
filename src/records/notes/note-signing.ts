import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Actor } from '../../auth/actor.js';
import type { AppContext } from '../../server/app-context.js';
import { FHIR_BASE_PATH } from '../fhir/fhir-routes.js';
import { unprocessable } from '../fhir/outcomes.js';

/** Statuses that make a Composition a signed note (write-rules.ts keeps it read-only from then on). */
const SIGNED = new Set(['final', 'amended']);
const FHIR_WRITES = new Set([`${FHIR_BASE_PATH}/:type`, `${FHIR_BASE_PATH}/:type/:id`]);

/**
 * Why this actor may not write this resource as a signed note, or undefined. A clinician signs
 * only in their own name: every legal attester of a note they sign names their own
 * Practitioner. (The system and the bootstrap token may load notes signed elsewhere, e.g. an
 * import; patients and admins can't write notes at all — the access policy says so.)
 */
export function signingRefusal(actor: Actor | undefined, resource: unknown): string | undefined {
  const note = resource as { resourceType?: unknown; status?: unknown; attester?: unknown } | null;
  if (!note || typeof note !== 'object' || note.resourceType !== 'Composition' || !SIGNED.has(note.status as string)) return undefined;
  if (actor?.scope.kind !== 'clinician') return undefined;
  const own = actor.scope.practitioner;
  const legal = (Array.isArray(note.attester) ? note.attester : []).filter((a: any) => a?.mode === 'legal');
  const others = legal.filter((a: any) => a?.party?.reference !== own);
  if (others.length > 0) return `a clinician signs only in their own name: the legal attester must be ${own}`;
  return undefined;
}

/**
 * Registers the rule on the FHIR create and update routes (app.ts, before the routes). It runs
 * once the body is parsed and the caller known, before the Repository writes anything; a refusal
 * is audited, since signing in someone else's name is worth a reviewer's look.
 */
export function registerNoteSigning(app: FastifyInstance, ctx: AppContext): void {
  app.addHook('preHandler', async (request: FastifyRequest) => {
    if ((request.method !== 'POST' && request.method !== 'PUT') || !FHIR_WRITES.has(request.routeOptions.url ?? '')) return;
    if ((request.params as { type?: string } | undefined)?.type !== 'Composition') return;
    const refusal = signingRefusal(request.actor, request.body);
    if (!refusal) return;
    const id = (request.params as { id?: string }).id;
    const subject = (request.body as { subject?: { reference?: unknown } }).subject?.reference;
    await ctx.audit.record({
      actor: request.actor!.ref,
      action: request.method === 'PUT' ? 'update' : 'create',
      resourceType: 'Composition',
      ...(id ? { resourceId: id } : {}),
      ...(typeof subject === 'string' && subject.startsWith('Patient/') ? { patient: subject } : {}),
      outcome: 'denied',
      source: request.ip,
      requestId: request.id,
      detail: { refused: 'signed-in-another-name' },
    });
    throw unprocessable(refusal, 'Composition.attester');
  });
}
