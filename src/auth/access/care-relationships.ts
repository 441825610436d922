import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { BreakGlassAccess } from '../actor.js';

/**
 * Who a clinician is in care of, as the database sees it: the patients of every Appointment
 * or Encounter that names the clinician's Practitioner as a participant (not entered in
 * error, not cancelled), plus explicit assignments. Computed by PostgreSQL from GIN-indexed columns
 * (sp_practitioner, then compartments): inside each write's transaction, and once per request for
 * its reads (patientsInCareOf), so a new appointment counts from the next request on every node.
 */
export function relatedPatients(practitioner: string): RawBuilder<string[]> {
  const me = sql`array[${practitioner}]::text[]`;
  // A cancelled booking is no care: otherwise booking and cancelling at once would open any chart to any clinician.
  const live = sql`not deleted and not (sp_status && array['entered-in-error', 'cancelled']::text[])`;
  return sql<string[]>`array(
    select unnest(compartments) from appointment where sp_practitioner && ${me} and ${live}
    union select unnest(compartments) from encounter where sp_practitioner && ${me} and ${live}
    union select patient from care_assignment where practitioner = ${practitioner})`;
}

/** The clinician's patients as a list, for a request's reads to filter on (access-policy.ts patientsInReach). */
export async function patientsInCareOf(db: Kysely<Database> | Transaction<Database>, practitioner: string): Promise<string[]> {
  if (!practitioner) return [];
  const { rows } = await sql<{ patients: string[] }>`select ${relatedPatients(practitioner)} as patients`.execute(db);
  return rows[0]?.patients ?? [];
}

/** Whether the clinician is in care of every one of these patients (an empty list never is). */
export async function inCareOfAll(db: Kysely<Database> | Transaction<Database>, practitioner: string, extra: readonly string[], patients: readonly string[]): Promise<boolean> {
  if (patients.length === 0) return false;
  const { rows } = await sql<{ ok: boolean }>`select ${sql.val([...patients])}::text[] <@ (${relatedPatients(practitioner)} || ${sql.val([...extra])}::text[]) as ok`.execute(db);
  return rows[0]?.ok === true;
}

// ---- explicit assignments ----

export async function assignCare(db: Kysely<Database> | Transaction<Database>, input: { practitioner: string; patient: string; by: string; reason: 'created-patient' | 'assigned' }): Promise<boolean> {
  const result = await db
    .insertInto('care_assignment')
    .values({ practitioner: input.practitioner, patient: input.patient, assigned_by: input.by, reason: input.reason })
    .onConflict((oc) => oc.columns(['practitioner', 'patient']).doNothing())
    .executeTakeFirst();
  return Number(result.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function endCareAssignment(db: Kysely<Database>, practitioner: string, patient: string): Promise<boolean> {
  const result = await db.deleteFrom('care_assignment').where('practitioner', '=', practitioner).where('patient', '=', patient).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

export async function careAssignments(db: Kysely<Database>, filter: { patient?: string; practitioner?: string }): Promise<{ practitioner: string; patient: string; assignedBy: string; reason: string; created: string }[]> {
  let query = db.selectFrom('care_assignment').selectAll();
  if (filter.patient) query = query.where('patient', '=', filter.patient);
  if (filter.practitioner) query = query.where('practitioner', '=', filter.practitioner);
  const rows = await query.orderBy('created').limit(1000).execute();
  return rows.map((r) => ({ practitioner: r.practitioner, patient: r.patient, assignedBy: r.assigned_by, reason: r.reason, created: new Date(r.created).toISOString() }));
}

// ---- break-the-glass ----

/** How long emergency access lasts: long enough for an emergency, short enough to be reviewed the same day. */
export const BREAK_GLASS_MINUTES = 60;
export const BREAK_GLASS_MIN_REASON = 10;

export async function grantBreakGlass(db: Kysely<Database>, input: { practitioner: string; patient: string; accountId: string; reason: string }, now = new Date()): Promise<BreakGlassAccess> {
  const grant = { grantId: randomUUID(), patient: input.patient, expires: new Date(now.getTime() + BREAK_GLASS_MINUTES * 60_000) };
  await db
    .insertInto('break_glass_grant')
    .values({ id: grant.grantId, practitioner: input.practitioner, patient: input.patient, account_id: input.accountId, reason: input.reason, granted: now, expires: grant.expires })
    .execute();
  return grant;
}

/** The clinician's grants that have not expired: loaded once per request, flagged on every access they open. */
export async function liveBreakGlass(db: Kysely<Database>, practitioner: string, now = new Date()): Promise<BreakGlassAccess[]> {
  const rows = await db.selectFrom('break_glass_grant').select(['id', 'patient', 'expires']).where('practitioner', '=', practitioner).where('expires', '>', now).execute();
  return rows.map((r) => ({ grantId: r.id, patient: r.patient, expires: new Date(r.expires) }));
}
