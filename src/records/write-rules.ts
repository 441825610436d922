import { isDeepStrictEqual } from 'node:util';
import { sql, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { conflict, unprocessable } from './fhir/outcomes.js';
import { resourceTypeDef, type FhirResource } from './resource-types.js';
import { isResourceId } from './search/search-request.js';

/**
 * Rules of the clinic that a valid FHIR shape alone does not express. They run inside the
 * write's transaction, so a refused write changes nothing.
 */

const SIGNED_NOTE = new Set(['final', 'amended']);
/** Appointments in these states hold their participants' time and their slots. */
const HOLDS_TIME = new Set(['proposed', 'pending', 'booked', 'arrived', 'checked-in', 'fulfilled']);
/** Slot states nobody may book, whoever asks. */
const CLOSED_SLOT = new Set(['busy-unavailable', 'entered-in-error']);

export async function checkBeforeWrite(tx: Transaction<Database>, resource: FhirResource, previous: FhirResource | undefined): Promise<void> {
  if (resource.resourceType === 'Composition') await checkClinicalNote(tx, resource as any, previous as any);
  if (resource.resourceType === 'Appointment') {
    checkAppointmentTimes(resource as any);
    await followSlots(tx, resource as any, previous as any);
  }
  if (resource.resourceType === 'Slot' && previous) await checkSlotEdit(tx, resource as any);
}

export async function applyAfterWrite(tx: Transaction<Database>, resource: FhirResource): Promise<void> {
  if (resource.resourceType === 'Appointment') await holdAppointmentTime(tx, resource as any);
}

async function checkClinicalNote(tx: Transaction<Database>, note: any, previous: any): Promise<void> {
  if (previous && SIGNED_NOTE.has(previous.status)) {
    // The one correction allowed on a signed note is to withdraw it as written in error.
    // Compared as values: a client (or PostgreSQL's jsonb) may order the fields differently.
    const onlyWithdrawn = note.status === 'entered-in-error' && isDeepStrictEqual({ ...note, status: previous.status, meta: undefined }, { ...previous, meta: undefined });
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

// ---- slots follow their bookings ----

/**
 * A Slot's status follows the appointments that hold it, in the appointment's transaction: a
 * booking takes its slots (busy), a cancellation, no-show or withdrawal frees them unless another
 * active appointment still holds them, and a move frees the old slot and takes the new one. The
 * slot rows are locked first, in id order, so two bookings of one slot are served one after the
 * other and the second finds it taken: a 409, whether it lost a race or came later. Runs before
 * the appointment's own row and time holds are written, so every path takes the locks in the
 * same order. Slots are changed here, not through the access policy: the booking was allowed.
 */
async function followSlots(tx: Transaction<Database>, next: any, previous: any): Promise<void> {
  const before = new Set(heldSlots(previous));
  const after = new Set(heldSlots(next));
  const named = slotIds(next);
  const ids = [...new Set([...before, ...after, ...named])].sort();
  if (ids.length === 0) return;
  const rows = new Map(
    (await tx.selectFrom('slot' as any).select(['id', 'version_id', 'content']).where(sql<boolean>`id = any(${sql.val(ids.filter(isResourceId))}::uuid[])`).where('deleted', '=', false).orderBy('id').forUpdate().execute()).map(
      (r: any) => [r.id as string, r as SlotRow],
    ),
  );
  for (const id of named) {
    if (!rows.has(id)) throw unprocessable(`Slot/${id} does not exist`, 'Appointment.slot');
  }
  for (const id of ids) {
    const row = rows.get(id);
    if (!row) continue;
    const status: string = row.content.status;
    if (after.has(id) && !before.has(id)) {
      if (CLOSED_SLOT.has(status)) throw conflict(`Slot/${id} is not available (${status})`, 'Appointment.slot');
      if ((await slotHolders(tx, id, next.id)).length > 0) throw conflict(`Slot/${id} is already booked; choose another slot`, 'Appointment.slot');
    }
    if (after.has(id) && status === 'free') await setSlotStatus(tx, row, 'busy');
    if (!after.has(id) && before.has(id) && status === 'busy' && (await slotHolders(tx, id, next.id)).length === 0) await setSlotStatus(tx, row, 'free');
  }
}

/** A slot an active appointment holds stays busy: it is freed by cancelling or moving the appointment, not by editing the slot. */
async function checkSlotEdit(tx: Transaction<Database>, slot: any): Promise<void> {
  if (slot.status === 'busy') return;
  const holders = await slotHolders(tx, slot.id, undefined);
  if (holders.length > 0) throw conflict(`this slot is booked by Appointment/${holders[0]!.id}; cancel or move that appointment to free it`, 'Slot.status');
}

/** The active appointments holding a slot (other than `except`), with the patients they name. */
export async function slotHolders(tx: Transaction<Database>, slotId: string, except: string | undefined): Promise<{ id: string; compartments: string[] }[]> {
  const { rows } = await sql<{ id: string; compartments: string[] }>`select id, compartments from appointment
    where sp_slot && array[${`Slot/${slotId}`}]::text[] and not deleted and sp_status && ${sql.val([...HOLDS_TIME])}::text[]
      ${except && isResourceId(except) ? sql`and id <> ${except}::uuid` : sql``}`.execute(tx);
  return rows;
}

interface SlotRow {
  id: string;
  version_id: number;
  content: any;
}

const slotIds = (appointment: any): string[] =>
  ((appointment?.slot ?? []) as any[]).flatMap((s) => {
    const ref: unknown = s?.reference;
    return typeof ref === 'string' && ref.startsWith('Slot/') ? [ref.slice('Slot/'.length)] : [];
  });
const heldSlots = (appointment: any): string[] => (appointment && HOLDS_TIME.has(appointment.status) ? slotIds(appointment) : []);

/** A new version of the slot, with its history row and its status column, as the repository writes them. */
async function setSlotStatus(tx: Transaction<Database>, row: SlotRow, status: 'busy' | 'free'): Promise<void> {
  const now = new Date().toISOString();
  const version = row.version_id + 1;
  const content = { ...row.content, status, meta: { ...(row.content.meta ?? {}), versionId: String(version), lastUpdated: now } };
  const statusParam = resourceTypeDef('Slot')!.params.find((p) => p.code === 'status')!;
  await tx
    .updateTable('slot' as any)
    .set({ content: JSON.stringify(content), version_id: version, last_updated: now, [statusParam.column]: statusParam.extract(content) })
    .where('id', '=', row.id)
    .execute();
  await tx.insertInto('resource_history').values({ resource_type: 'Slot', id: row.id, version_id: version, last_updated: now, deleted: false, content: JSON.stringify(content) }).execute();
}
