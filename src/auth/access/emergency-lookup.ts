import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import { parseDateRange } from '../../records/search/date-range.js';
import { escapeLike, normalizeSearchString } from '../../records/search/normalize.js';
import { MRN_SYSTEM, NATIONAL_ID_SYSTEM } from '../../records/telesalud-codes.js';

/**
 * Emergency patient lookup: how a clinician finds a patient outside their care to break the
 * glass on, without broadening the normal search (which only ever shows patients in care).
 *
 * Narrow on purpose: only exact criteria a clinician holds when the patient is in front of
 * them (an identifier off a card or wristband, or family name plus date of birth), at most
 * EMERGENCY_LOOKUP_MAX_MATCHES answers, and only what tells two people apart — name, birth
 * date, the last characters of each identifier. Nothing clinical. Vaguer criteria that match
 * more people answer "too many", naming nobody, so the lookup can't be used to list patients.
 */
export const EMERGENCY_LOOKUP_MAX_MATCHES = 3;
/** Lookups per clinician account in the window (farm-wide: counted from the audit trail itself). */
export const EMERGENCY_LOOKUP_LIMIT = 10;
export const EMERGENCY_LOOKUP_WINDOW_MINUTES = 60;
/** Characters of each identifier shown: enough to check against a card, too few to be the identifier. */
export const IDENTIFIER_TAIL = 4;

export type LookupCriteria = { identifier: string } | { family: string; birthDate: string };

export interface EmergencyMatch {
  id: string;
  name: string;
  birthDate?: string;
  /** One per identifier: which kind, and its last IDENTIFIER_TAIL characters. */
  identifiers: { kind: 'mrn' | 'national-id' | 'other'; last: string }[];
}

export interface LookupAnswer {
  matches: EmergencyMatch[];
  /** More than EMERGENCY_LOOKUP_MAX_MATCHES patients fit: none is named; ask for an identifier. */
  tooMany: boolean;
}

/** Why these criteria can't be used, or undefined when they can. */
export function criteriaProblem(input: { identifier?: string | undefined; family?: string | undefined; birthDate?: string | undefined }): string | undefined {
  const identifier = input.identifier?.trim();
  const family = input.family !== undefined ? normalizeSearchString(input.family) : undefined;
  if (identifier && (family || input.birthDate)) return 'give either an identifier, or a family name and a date of birth: not both';
  if (identifier) return identifier.length >= 4 ? undefined : 'an identifier has at least 4 characters';
  if (!family || !input.birthDate) return 'give an identifier (record number or national ID), or a family name and a date of birth';
  if (family.length < 2) return 'the family name has at least 2 letters';
  if (!/^\d{4}-\d{2}-\d{2}$/.test(input.birthDate) || !parseDateRange(input.birthDate)) return 'the date of birth is a full date: YYYY-MM-DD';
  return undefined;
}

/** Patients matching the criteria exactly, deleted ones left out. The caller checks criteriaProblem() first. */
export async function findEmergencyMatches(db: Kysely<Database> | Transaction<Database>, criteria: LookupCriteria): Promise<LookupAnswer> {
  let query = db.selectFrom('patient' as any).select(['id', 'content']).where('deleted', '=', false);
  if ('identifier' in criteria) {
    // Exactly as written, or upper-cased (a national ID's letter typed in lower case); any system.
    const value = criteria.identifier.trim();
    const tokens = [...new Set([value, value.toUpperCase()])];
    query = query.where(sql<boolean>`sp_identifier && ${sql.val(tokens)}::text[]`);
  } else {
    const range = parseDateRange(criteria.birthDate)!;
    const family = normalizeSearchString(criteria.family);
    const like = escapeLike(family);
    // The whole family name, or one whole part of it ("García" finds "García López"); never a prefix.
    query = query
      .where(sql<boolean>`sp_birthdate >= ${range.low.toISOString()}::timestamptz and sp_birthdate < ${range.high.toISOString()}::timestamptz`)
      .where(
        sql<boolean>`id in (select resource_id from search_string where resource_type = 'Patient' and code = 'family'
          and (value = ${family} or value like ${`${like} %`} or value like ${`% ${like}`} or value like ${`% ${like} %`}))`,
      );
  }
  const rows = (await query.orderBy('id').limit(EMERGENCY_LOOKUP_MAX_MATCHES + 1).execute()) as { id: string; content: unknown }[];
  if (rows.length > EMERGENCY_LOOKUP_MAX_MATCHES) return { matches: [], tooMany: true };
  return { matches: rows.map((r) => minimal(r.id, r.content as PatientContent)), tooMany: false };
}

interface PatientContent {
  name?: { use?: string; family?: string; given?: string[]; text?: string }[];
  birthDate?: string;
  identifier?: { system?: string; value?: string }[];
}

function minimal(id: string, patient: PatientContent): EmergencyMatch {
  const names = patient.name ?? [];
  const name = names.find((n) => n.use === 'official') ?? names.find((n) => n.use === 'usual') ?? names[0];
  const display = name ? (name.text ?? [...(name.given ?? []), name.family ?? ''].join(' ').trim()) : '';
  return {
    id,
    name: display,
    ...(typeof patient.birthDate === 'string' ? { birthDate: patient.birthDate } : {}),
    identifiers: (patient.identifier ?? [])
      .filter((i): i is { system?: string; value: string } => typeof i.value === 'string' && i.value.length > 0)
      .map((i) => ({ kind: i.system === MRN_SYSTEM ? 'mrn' : i.system === NATIONAL_ID_SYSTEM ? 'national-id' : 'other', last: tail(i.value) })),
  };
}

/** The last characters, never the whole of a short identifier. */
function tail(value: string): string {
  const shown = Math.min(IDENTIFIER_TAIL, Math.max(1, Math.floor(value.length / 2)));
  return value.slice(-shown);
}

/**
 * How many lookups this actor made in the window: counted from the audit trail (one entry per
 * lookup; index audit_event_actor), so the limit holds across every node of a farm and across restarts.
 * Called under lockLookups(), so two concurrent lookups can't both take the last one.
 */
export async function lookupsInWindow(db: Transaction<Database>, actor: string, now = new Date()): Promise<number> {
  const since = new Date(now.getTime() - EMERGENCY_LOOKUP_WINDOW_MINUTES * 60_000);
  const row = await db
    .selectFrom('audit_event')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('actor', '=', actor)
    .where('recorded', '>', since as never)
    .where('action', '=', 'emergency-lookup')
    .where('outcome', '=', 'success')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** One lookup at a time per actor, across nodes (released when the transaction ends). */
export async function lockLookups(tx: Transaction<Database>, actor: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext(${`emergency-lookup:${actor}`}))`.execute(tx);
}
