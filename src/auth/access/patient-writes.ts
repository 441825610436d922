import type { Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { FhirResource, ResourceTypeDef } from '../../records/resource-types.js';
import { isResourceId } from '../../records/search/search-request.js';
import { consultationMode } from '../../records/telesalud-codes.js';
import { slotHolders } from '../../records/write-rules.js';
import type { Interaction } from './access-policy.js';

/**
 * The few changes a patient makes to their own record, and nothing more: book a telehealth
 * appointment in a free slot, cancel it or answer for their own participation, and record their
 * own vital signs. Each rule names what may be set; anything else in the body is refused, so a
 * patient can't point a resource at someone else or slip in a field that widens their reach.
 * Returns why a write is refused, or undefined.
 */
export async function patientWriteRefusal(
  tx: Transaction<Database>,
  own: readonly string[],
  def: ResourceTypeDef,
  interaction: Interaction,
  next: FhirResource | undefined,
  previous: FhirResource | undefined,
): Promise<string | undefined> {
  if (def.type === 'Appointment' && interaction === 'create' && next) return bookingRefusal(tx, own, next as any);
  if (def.type === 'Appointment' && interaction === 'update' && next && previous) return answerRefusal(own, next as any, previous as any);
  if (def.type === 'Observation' && interaction === 'create' && next) return vitalSignRefusal(own, next as any);
  return `patients may not ${interaction} ${def.type} resources`;
}

// `id` and `meta` are the server's (a create may not carry an id: fhir-handlers.ts refuses it).
const BOOKING_FIELDS = new Set(['resourceType', 'id', 'meta', 'status', 'appointmentType', 'serviceType', 'reasonCode', 'description', 'comment', 'start', 'end', 'minutesDuration', 'slot', 'participant']);
const VITAL_SIGN_FIELDS = new Set(['resourceType', 'id', 'meta', 'status', 'category', 'code', 'subject', 'effectiveDateTime', 'effectiveInstant', 'effectivePeriod', 'issued', 'valueQuantity', 'component', 'note', 'performer', 'bodySite', 'method']);
/** Appointment states a patient may still cancel. */
const CANCELLABLE = new Set(['proposed', 'pending', 'booked']);
const PARTICIPATION = new Set(['accepted', 'declined', 'tentative']);

async function bookingRefusal(tx: Transaction<Database>, own: readonly string[], appointment: any): Promise<string | undefined> {
  const extra = unexpectedFields(appointment, BOOKING_FIELDS) ?? labelRefusal(appointment);
  if (extra) return extra;
  if (appointment.status !== 'booked') return 'a patient books an appointment with status "booked"';
  if (consultationMode(appointment) !== 'telehealth') return 'patients book telehealth appointments only';
  const actors: string[] = (appointment.participant ?? []).map((p: any) => p?.actor?.reference ?? '');
  const patients = actors.filter((a) => a.startsWith('Patient/'));
  const practitioners = actors.filter((a) => a.startsWith('Practitioner/'));
  if (patients.length !== 1 || !own.includes(patients[0]!)) return 'an appointment a patient books names that patient, and no other';
  if (practitioners.length === 0 || practitioners.length + patients.length !== actors.length) return 'an appointment a patient books names its practitioner and nobody else';

  const slotRefs: string[] = (appointment.slot ?? []).map((s: any) => s?.reference ?? '');
  const slotId = slotRefs.length === 1 && slotRefs[0]!.startsWith('Slot/') ? slotRefs[0]!.slice('Slot/'.length) : undefined;
  if (!slotId || !isResourceId(slotId)) return 'a patient books exactly one free slot';
  // Locked: two patients racing for one slot are served one after the other.
  const slotRow = await tx.selectFrom('slot' as any).select(['content', 'deleted']).where('id', '=', slotId).forUpdate().executeTakeFirst();
  const slot = slotRow && !(slotRow as any).deleted ? ((slotRow as any).content as any) : undefined;
  if (!slot) return 'this slot is not free';
  // A slot another booking holds is a conflict, not a matter of permission: write-rules.ts answers
  // it with a 409 for everyone, the same whether this patient lost a race for it or came later.
  const holders = await slotHolders(tx, slotId, undefined);
  if (holders.length === 0 && slot.status !== 'free') return 'this slot is not free';
  if (holders.some((h) => h.compartments.some((p) => own.includes(p)))) return 'you have already booked this slot';
  if (Date.parse(slot.start) !== Date.parse(appointment.start) || Date.parse(slot.end) !== Date.parse(appointment.end)) return 'the appointment must start and end with its slot';

  const scheduleRef: string = slot.schedule?.reference ?? '';
  const scheduleId = scheduleRef.startsWith('Schedule/') ? scheduleRef.slice('Schedule/'.length) : '';
  const schedule = isResourceId(scheduleId) ? ((await tx.selectFrom('schedule' as any).select(['content']).where('id', '=', scheduleId).where('deleted', '=', false).executeTakeFirst()) as any)?.content : undefined;
  const offeredBy = new Set<string>((schedule?.actor ?? []).map((a: any) => a?.reference));
  if (!practitioners.every((p) => offeredBy.has(p))) return "the appointment's practitioner must be the one whose schedule offers the slot";
  return undefined;
}

/** A patient may cancel their appointment, give a reason, and accept or decline their own participation. Nothing else changes. */
function answerRefusal(own: readonly string[], next: any, previous: any): string | undefined {
  const strip = (a: any) => ({
    ...a,
    // Labels stay as the clinic set them; the version bookkeeping is the server's.
    meta: { security: a.meta?.security, tag: a.meta?.tag },
    text: undefined,
    status: undefined,
    cancelationReason: undefined,
    participant: (a.participant ?? []).map((p: any) => (own.includes(p?.actor?.reference) ? { ...p, status: undefined } : p)),
  });
  if (!sameJson(strip(next), strip(previous))) return 'a patient may only cancel an appointment or answer for their own participation';
  if (next.status !== previous.status && !(next.status === 'cancelled' && CANCELLABLE.has(previous.status))) return `a patient may cancel an appointment that is ${[...CANCELLABLE].join(', ')}; nothing more`;
  for (const p of next.participant ?? []) {
    if (own.includes(p?.actor?.reference) && !PARTICIPATION.has(p.status)) return 'a participation answer is accepted, declined or tentative';
  }
  return undefined;
}

function vitalSignRefusal(own: readonly string[], observation: any): string | undefined {
  const extra = unexpectedFields(observation, VITAL_SIGN_FIELDS) ?? labelRefusal(observation);
  if (extra) return extra;
  const vital = (observation.category ?? []).some((c: any) => (c?.coding ?? []).some((x: any) => x?.code === 'vital-signs' && x?.system === 'http://terminology.hl7.org/CodeSystem/observation-category'));
  if (!vital) return 'patients record vital signs only (category vital-signs)';
  if (!own.includes(observation.subject?.reference)) return 'patients record vital signs about themselves only';
  if (!['final', 'preliminary'].includes(observation.status)) return 'a vital sign a patient records is final or preliminary';
  if ((observation.performer ?? []).some((p: any) => !own.includes(p?.reference))) return 'a vital sign a patient records names the patient as its only performer';
  return undefined;
}

function unexpectedFields(resource: Record<string, unknown>, allowed: ReadonlySet<string>): string | undefined {
  const extra = Object.keys(resource).filter((k) => !allowed.has(k));
  return extra.length ? `patients may not set ${extra.map((k) => `${String(resource.resourceType)}.${k}`).join(', ')}` : undefined;
}

/** Security labels and tags are for the clinic to set. */
function labelRefusal(resource: any): string | undefined {
  return resource.meta?.security !== undefined || resource.meta?.tag !== undefined ? 'patients may not set meta.security or meta.tag' : undefined;
}

/** Deep equality of JSON values, whatever the order of object keys (undefined members count as absent). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = (o: object) => Object.keys(o).filter((k) => (o as any)[k] !== undefined).sort();
    const ka = keys(a);
    const kb = keys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && sameJson((a as any)[k], (b as any)[k]));
  }
  return a === b;
}
