import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { conflict, unprocessable } from './fhir/outcomes.js';
import type { FhirResource } from './resource-types.js';
import { isResourceId } from './search/search-request.js';

/**
 * Rules of the clinic that a valid FHIR shape alone does not express. They run inside the
 * write's transaction, so a refused write changes nothing.
 */

const SIGNED_NOTE = new Set(['final', 'amended']);
/** Appointments in these states hold their participants' time. */
const HOLDS_TIME = new Set(['proposed', 'pending', 'booked', 'arrived', 'checked-in', 'fulfilled']);

export async function checkBeforeWrite(tx: Transaction<Database>, resource: FhirResource, previous: FhirResource | undefined): Promise<void> {
  if (resource.resourceType === 'Composition') await checkClinicalNote(tx, resource as any, previous as any);
  if (resource.resourceType === 'Appointment') checkAppointmentTimes(resource as any);
}

export async function applyAfterWrite(tx: Transaction<Database>, resource: FhirResource): Promise<void> {
  if (resource.resourceType === 'Appointment') await holdAppointmentTime(tx, resource as any);
}

async function checkClinicalNote(tx: Transaction<Database>, note: any, previous: any): Promise<void> {
  if (previous && SIGNED_NOTE.has(previous.status)) {
    // The one correction allowed on a signed note is to withdraw it as written in error.
    const onlyWithdrawn = note.status === 'entered-in-error' && JSON.stringify({ ...note, status: previous.status, meta: undefined }) === JSON.stringify({ ...previous, meta: undefined });
    if (!onlyWithdrawn) throw conflict('a signed note is read-only; write an addendum (a Composition whose relatesTo appends it) instead', 'Composition.status');
  }
  if (SIGNED_NOTE.has(note.status)) {
    const legal = (note.attester ?? []).find((a: any) => a?.mode === 'legal' && a.time && a.party?.reference);
    if (!legal) throw unprocessable('a signed note needs an attester with mode "legal", the signing time and the signing party', 'Composition.attester');
  }
  for (const relation of note.relatesTo ?? []) {
    if (relation?.code !== 'appends') continue;
    const ref: string | undefined = relation.targetReference?.reference;
    const id = ref?.startsWith('Composition/') ? ref.slice('Composition/'.length) : undefined;
    const target = id && isResourceId(id) ? await tx.selectFrom('composition' as any).select(['content', 'deleted']).where('id', '=', id).executeTakeFirst() : undefined;
    const targetNote = target && !(target as any).deleted ? ((target as any).content as any) : undefined;
    if (!targetNote) throw unprocessable('an addendum must append an existing note', 'Composition.relatesTo.targetReference');
    if (!SIGNED_NOTE.has(targetNote.status)) throw unprocessable('only a signed note takes addenda; edit the draft instead', 'Composition.relatesTo.targetReference');
    if (targetNote.subject?.reference !== note.subject?.reference) throw unprocessable('an addendum must be about the same patient as the note it appends', 'Composition.subject');
  }
}

function checkAppointmentTimes(appointment: any): void {
  if (appointment.start && appointment.end && Date.parse(appointment.end) <= Date.parse(appointment.start)) {
    throw unprocessable('an appointment must end after it starts', 'Appointment.end');
  }
  if (HOLDS_TIME.has(appointment.status) && appointment.status !== 'proposed' && !(appointment.start && appointment.end)) {
    throw unprocessable(`a ${appointment.status} appointment needs start and end`, 'Appointment.start');
  }
}

async function holdAppointmentTime(tx: Transaction<Database>, appointment: any): Promise<void> {
  await tx.deleteFrom('appointment_booking').where('appointment_id', '=', appointment.id).execute();
  if (!HOLDS_TIME.has(appointment.status) || !appointment.start || !appointment.end) return;
  const participants = new Set<string>();
  for (const p of appointment.participant ?? []) {
    const ref: string | undefined = p?.actor?.reference;
    if (p?.status !== 'declined' && ref && (ref.startsWith('Practitioner/') || ref.startsWith('Patient/'))) participants.add(ref);
  }
  if (participants.size === 0) return;
  try {
    await tx
      .insertInto('appointment_booking')
      .values([...participants].map((participant) => ({ appointment_id: appointment.id, participant, during: sql`tstzrange(${appointment.start}::timestamptz, ${appointment.end}::timestamptz, '[)')` as any })))
      .execute();
  } catch (err) {
    if ((err as { code?: string }).code === '23P01') {
      throw conflict('this time overlaps another active appointment of the same practitioner or patient', 'Appointment.start');
    }
    throw err;
  }
}
