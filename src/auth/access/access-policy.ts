import { sql, type Expression, type Kysely, type SqlBool, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { FhirResource, ResourceTypeDef } from '../../records/resource-types.js';
import type { Actor } from '../actor.js';
import { assignCare, inCareOfAll, patientsInCareOf, relatedPatients } from './care-relationships.js';
import { patientWriteRefusal } from './patient-writes.js';

/**
 * THE access policy: who may read, search, create, update and delete what. The Repository asks
 * this module before every access and applies the answer (row conditions go into the SQL, so
 * paging, totals, counts and _include never show what a read would refuse). Nothing else decides.
 *
 *   role        directory (Practitioner,       administrative           clinical (Encounter, Observation, Condition,
 *               Organization, Location,        (Patient, Appointment)   AllergyIntolerance, Medication*, Composition,
 *               Schedule, Slot)                                         DocumentReference)
 *   ---------   ----------------------------   ----------------------   ---------------------------------------------
 *   full        read, write                    all: read, write         all: read, write
 *   patient     read                           own: read + patient-writes.ts (book / cancel a telehealth appointment;
 *                                                                        record own vital signs)
 *   clinician   read                           in care: read, write     in care: read, write
 *   reception   read                           all: read, write         nothing
 *   admin       read, write (configuration)    all: read                nothing
 *
 * "full" is the system itself and the bootstrap admin token; "in care" is relatedPatients()
 * plus live break-the-glass grants. Exceptions, each for a reason:
 *   - a clinician may create a Patient (registering someone new) and is then assigned to them;
 *   - reception (the front desk) registers, books, reschedules and cancels for every patient of the
 *     clinic, which is why it reaches them all; it is in nobody's care, so it opens no chart;
 *   - a write must keep every patient the resource names, before and after, within the
 *     writer's reach: nobody moves a record into or out of a compartment they can't see;
 *   - deletes also obey the type's own rule (resource-types.ts: most clinical records are kept).
 */
export type Interaction = 'read' | 'search' | 'create' | 'update' | 'delete';
export type ResourceClass = 'directory' | 'administrative' | 'clinical';
type Role = 'full' | 'patient' | 'clinician' | 'reception' | 'admin';

interface Rule {
  /** Whose rows: every row, the actor's own compartment, the patients in the clinician's care, none. */
  rows: 'all' | 'own' | 'in-care' | 'none';
  /** Whether the actor may change what it reaches; `patient` = only what patient-writes.ts allows. */
  writes: 'yes' | 'no' | 'patient';
}

const POLICY: Record<Role, Record<ResourceClass, Rule>> = {
  full: { directory: { rows: 'all', writes: 'yes' }, administrative: { rows: 'all', writes: 'yes' }, clinical: { rows: 'all', writes: 'yes' } },
  patient: { directory: { rows: 'all', writes: 'no' }, administrative: { rows: 'own', writes: 'patient' }, clinical: { rows: 'own', writes: 'patient' } },
  clinician: { directory: { rows: 'all', writes: 'no' }, administrative: { rows: 'in-care', writes: 'yes' }, clinical: { rows: 'in-care', writes: 'yes' } },
  reception: { directory: { rows: 'all', writes: 'no' }, administrative: { rows: 'all', writes: 'yes' }, clinical: { rows: 'none', writes: 'no' } },
  admin: { directory: { rows: 'all', writes: 'yes' }, administrative: { rows: 'all', writes: 'no' }, clinical: { rows: 'none', writes: 'no' } },
};

const RESOURCE_CLASS: Record<string, ResourceClass> = {
  Practitioner: 'directory',
  Organization: 'directory',
  Location: 'directory',
  Schedule: 'directory',
  Slot: 'directory',
  Patient: 'administrative',
  Appointment: 'administrative',
  // Encounter is clinical: its reasons, diagnoses and discharge say why the patient was seen.
  Encounter: 'clinical',
  Observation: 'clinical',
  Condition: 'clinical',
  AllergyIntolerance: 'clinical',
  MedicationStatement: 'clinical',
  MedicationRequest: 'clinical',
  Composition: 'clinical',
  DocumentReference: 'clinical',
};

export function resourceClass(type: string): ResourceClass {
  // A type added to the registry without a class here is clinical: it stays closed until someone decides.
  return RESOURCE_CLASS[type] ?? 'clinical';
}

function roleOf(actor: Actor): Role {
  switch (actor.scope.kind) {
    case 'full':
      return 'full';
    case 'patient-compartment':
      return 'patient';
    case 'clinician':
      return 'clinician';
    case 'reception':
      return 'reception';
    case 'admin':
      return 'admin';
  }
}

const ruleFor = (actor: Actor, type: string): Rule => POLICY[roleOf(actor)][resourceClass(type)];
const isWrite = (interaction: Interaction) => interaction === 'create' || interaction === 'update' || interaction === 'delete';

/**
 * Checked before any data is touched: why this actor may never do `interaction` on `type`
 * (a 403), or undefined when it may on some rows.
 */
export function typeRefusal(actor: Actor, type: string, interaction: Interaction): string | undefined {
  const rule = ruleFor(actor, type);
  if (rule.rows === 'none') return `${roleOf(actor)} accounts do not have access to ${type} resources (clinical content)`;
  if (isWrite(interaction) && rule.writes === 'no') return `${roleOf(actor)} accounts may not ${interaction} ${type} resources`;
  return undefined;
}

/**
 * The rows of `def` this actor may see, as a condition on its table (undefined: every row). Used
 * for read, vread, history, search, _total, _summary=count, _include and _revinclude alike.
 * `reach` is patientsInReach() resolved for this request: given, a clinician's rows are matched
 * against it as a literal array; without it (inside a write's transaction) the database works
 * out the care relationships in the same query.
 */
export function visibleRows(actor: Actor, def: ResourceTypeDef, reach?: readonly string[]): Expression<SqlBool> | undefined {
  const rule = ruleFor(actor, def.type);
  switch (rule.rows) {
    case 'all':
      return undefined;
    case 'none':
      return sql<SqlBool>`false`;
    case 'own':
      return sql<SqlBool>`compartments && ${sql.val(ownPatients(actor))}::text[]`;
    case 'in-care': {
      const scope = actor.scope.kind === 'clinician' ? actor.scope : undefined;
      if (!scope) return sql<SqlBool>`false`;
      // A literal array gives the planner the real list for the compartments GIN index and its
      // statistics, and spares each query the care-relationship subquery (see patientsInReach).
      if (reach) return sql<SqlBool>`compartments && ${sql.val([...reach])}::text[]`;
      return sql<SqlBool>`compartments && (${relatedPatients(scope.practitioner)} || ${sql.val(scope.breakGlass.map((g) => g.patient))}::text[])`;
    }
  }
}

/**
 * The patients a clinician reaches now (care relationships and live break-the-glass grants), for
 * visibleRows() of this request's reads; other actors have no such list. Asked once per request
 * (one indexed query, 1.5–3 ms on a busy machine), so a new appointment or assignment counts from
 * the next request on. bench/clinician-search.ts measures both forms (100,000 observations, 200
 * patients in care): the same GIN plan, the literal 1.1–1.5× faster; what remains is one heap
 * visit per visible row (~2,000).
 */
export async function patientsInReach(db: Kysely<Database>, actor: Actor): Promise<readonly string[]> {
  if (actor.scope.kind !== 'clinician') return [];
  const related = await patientsInCareOf(db, actor.scope.practitioner);
  return [...new Set([...related, ...actor.scope.breakGlass.map((g) => g.patient)])];
}

/**
 * Checked inside the write's transaction, after the row was found visible: why this write is
 * refused (a 403), or undefined. `next` is the resource as it would be stored (undefined for a
 * delete); `previous` the stored one (undefined for a create).
 */
export async function writeRefusal(
  tx: Transaction<Database>,
  actor: Actor,
  def: ResourceTypeDef,
  interaction: Interaction,
  next: FhirResource | undefined,
  previous: FhirResource | undefined,
): Promise<string | undefined> {
  const typeLevel = typeRefusal(actor, def.type, interaction);
  if (typeLevel) return typeLevel;
  const rule = ruleFor(actor, def.type);
  const patients = [...new Set([...(next ? def.compartment(next) : []), ...(previous ? def.compartment(previous) : [])])];
  if (rule.writes === 'patient') return patientWriteRefusal(tx, ownPatients(actor), def, interaction, next, previous);
  if (rule.rows === 'all') return undefined;
  if (rule.rows === 'own') return patients.length > 0 && patients.every((p) => ownPatients(actor).includes(p)) ? undefined : `this ${def.type} names a patient outside your own record`;
  // in-care: a clinician registering a new patient is the one exception (see afterWrite).
  if (actor.scope.kind !== 'clinician') return `not allowed to ${interaction} ${def.type} resources`;
  if (def.type === 'Patient' && interaction === 'create') return undefined;
  const grants = actor.scope.breakGlass.map((g) => g.patient);
  if (patients.length === 0) return `a ${def.type} you write must name a patient in your care`;
  if (!(await inCareOfAll(tx, actor.scope.practitioner, grants, patients))) return `this ${def.type} names a patient who is not in your care`;
  return undefined;
}

/** Consequences of a permitted write, in its transaction: whoever registers a patient is in their care. */
export async function afterWrite(tx: Transaction<Database>, actor: Actor, interaction: Interaction, stored: FhirResource): Promise<void> {
  if (interaction === 'create' && stored.resourceType === 'Patient' && actor.scope.kind === 'clinician') {
    await assignCare(tx, { practitioner: actor.scope.practitioner, patient: `Patient/${stored.id}`, by: actor.ref, reason: 'created-patient' });
  }
}

/** The break-the-glass grant through which this actor reaches this patient, if any: that access is flagged in the audit. */
export function breakGlassGrant(actor: Actor, patient: string | undefined): string | undefined {
  if (!patient || actor.scope.kind !== 'clinician') return undefined;
  return actor.scope.breakGlass.find((g) => g.patient === patient)?.grantId;
}

function ownPatients(actor: Actor): string[] {
  return actor.scope.kind === 'patient-compartment' ? actor.scope.patients : [];
}
