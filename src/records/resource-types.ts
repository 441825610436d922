/**
 * The clinical record's resource types and their search parameters: the one place that
 * says what telesalud stores, how each search parameter is extracted from a resource and
 * which indexed column answers it. Migrations create the columns; a test checks they agree.
 */

// Loose shape of a stored FHIR resource; validation guarantees the details.
export type FhirResource = { resourceType: string; id?: string; meta?: { versionId?: string; lastUpdated?: string }; [key: string]: unknown };

/** token: text[] column (GIN) of `code`, `system|code` and `|code` forms.
 *  reference: text[] column (GIN) of `Type/id`.
 *  date: timestamptz column (btree) holding the start of the value.
 *  string: rows in search_string (prefix index) plus a scalar sort column. */
export type SearchParamType = 'token' | 'reference' | 'date' | 'string';

export interface SearchParam {
  code: string;
  type: SearchParamType;
  column: string;
  /** For reference params: the resource types it may point to (used by _include, _revinclude, chains, and checked on write). */
  targets?: string[];
  /**
   * For reference params that pick the references of their target types out of a wider element
   * (Appointment.patient from participant.actor): their targets select, they don't constrain, so
   * writes are checked against the param that covers the whole element instead.
   */
  selects?: true;
  /** The element a reference param covers, where it is not named like the param (for error messages). */
  element?: string;
  extract(resource: any): unknown[];
}

export interface ResourceTypeDef {
  type: string;
  table: string;
  params: SearchParam[];
  /** Patient compartment membership (`Patient/<id>`): narrows what a patient may see. */
  compartment(resource: any): string[];
  /** Why this resource may not be deleted, or undefined if it may. */
  deleteRefusal(resource: any): string | undefined;
}

// ---- extractors over FHIR datatypes ----

const arr = <T>(v: T | T[] | undefined | null): T[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

function codingTokens(coding: any): string[] {
  if (!coding || typeof coding.code !== 'string') return [];
  return coding.system ? [coding.code, `${coding.system}|${coding.code}`] : [coding.code, `|${coding.code}`];
}
const codeableTokens = (cc: any): string[] => arr(cc).flatMap((c: any) => arr(c?.coding).flatMap(codingTokens));
const codeTokens = (code: unknown): string[] => (typeof code === 'string' ? [code] : typeof code === 'boolean' ? [String(code)] : []);
const identifierTokens = (ids: any): string[] =>
  arr(ids).flatMap((i: any) => (typeof i?.value === 'string' ? (i.system ? [i.value, `${i.system}|${i.value}`] : [i.value, `|${i.value}`]) : []));
const telecomTokens = (telecom: any, system?: string): string[] =>
  arr(telecom).flatMap((t: any) => (typeof t?.value === 'string' && (!system || t.system === system) ? [t.value] : []));
const refs = (...values: unknown[]): string[] =>
  values.flatMap((v) => arr(v as any)).flatMap((r: any) => (typeof r?.reference === 'string' ? [r.reference] : []));
const refsOfType = (type: string, ...values: unknown[]): string[] => refs(...values).filter((r) => r.startsWith(`${type}/`));
const dates = (...values: unknown[]): string[] => values.filter((v): v is string => typeof v === 'string');
const humanNameStrings = (names: any, part: 'family' | 'given' | 'all'): string[] =>
  arr(names).flatMap((n: any) => {
    const family = typeof n?.family === 'string' ? [n.family] : [];
    const given = arr(n?.given).filter((g): g is string => typeof g === 'string');
    if (part === 'family') return family;
    if (part === 'given') return given;
    return [...family, ...given, ...(typeof n?.text === 'string' ? [n.text] : [])];
  });

const token = (code: string, extract: (r: any) => string[], column = code): SearchParam => ({ code, type: 'token', column: col(column), extract });
const reference = (code: string, targets: string[], extract: (r: any) => string[], column = code): SearchParam => ({ code, type: 'reference', column: col(column), targets, extract });
const at = (element: string, param: SearchParam): SearchParam => ({ ...param, element });
const selecting = (code: string, targets: string[], extract: (r: any) => string[], column = code): SearchParam => ({ ...reference(code, targets, extract, column), selects: true });
const date = (code: string, extract: (r: any) => string[], column = code): SearchParam => ({ code, type: 'date', column: col(column), extract });
const string = (code: string, extract: (r: any) => string[], column = code): SearchParam => ({ code, type: 'string', column: col(column), extract });
function col(code: string): string {
  return `sp_${code.replace(/-/g, '_')}`;
}

const identifier = token('identifier', (r) => identifierTokens(r.identifier));
const subjectPatient = selecting('patient', ['Patient'], (r) => refsOfType('Patient', r.subject, r.patient));
const subject = reference('subject', ['Patient'], (r) => refs(r.subject));
const encounterRef = (extract: (r: any) => unknown) => reference('encounter', ['Encounter'], (r) => refs(extract(r)));
const subjectCompartment = (r: any) => refsOfType('Patient', r.subject, r.patient);

const personParams = (): SearchParam[] => [
  identifier,
  string('name', (r) => humanNameStrings(r.name, 'all')),
  string('family', (r) => humanNameStrings(r.name, 'family')),
  string('given', (r) => humanNameStrings(r.name, 'given')),
  token('gender', (r) => codeTokens(r.gender)),
  token('active', (r) => codeTokens(r.active)),
  token('telecom', (r) => telecomTokens(r.telecom)),
  token('email', (r) => telecomTokens(r.telecom, 'email')),
  token('phone', (r) => telecomTokens(r.telecom, 'phone')),
];

const never = (reason: string) => () => reason;
const allowed = () => undefined;

export const RESOURCE_TYPES: readonly ResourceTypeDef[] = [
  {
    type: 'Patient',
    table: 'patient',
    params: [
      ...personParams(),
      date('birthdate', (r) => dates(r.birthDate)),
      token('language', (r) => arr(r.communication).flatMap((c: any) => codeableTokens(c?.language))),
      at('generalPractitioner', reference('general-practitioner', ['Practitioner', 'Organization'], (r) => refs(r.generalPractitioner))),
      at('managingOrganization', reference('organization', ['Organization'], (r) => refs(r.managingOrganization))),
    ],
    compartment: (r) => (r.id ? [`Patient/${r.id}`] : []),
    deleteRefusal: never('patient records are kept; set Patient.active to false instead'),
  },
  {
    type: 'Practitioner',
    table: 'practitioner',
    params: personParams(),
    compartment: () => [],
    deleteRefusal: never('practitioners stay referenced by the record; set Practitioner.active to false instead'),
  },
  {
    type: 'Organization',
    table: 'organization',
    params: [identifier, string('name', (r) => [r.name, ...arr(r.alias)].filter((v) => typeof v === 'string')), token('active', (r) => codeTokens(r.active))],
    compartment: () => [],
    deleteRefusal: never('organizations stay referenced by the record; set Organization.active to false instead'),
  },
  {
    type: 'Location',
    table: 'location',
    params: [
      identifier,
      string('name', (r) => [r.name, ...arr(r.alias)].filter((v) => typeof v === 'string')),
      token('status', (r) => codeTokens(r.status)),
      at('managingOrganization', reference('organization', ['Organization'], (r) => refs(r.managingOrganization))),
    ],
    compartment: () => [],
    deleteRefusal: never('locations stay referenced by the record; set Location.status to inactive instead'),
  },
  {
    type: 'Schedule',
    table: 'schedule',
    params: [
      identifier,
      reference('actor', ['Practitioner', 'Location', 'Patient'], (r) => refs(r.actor)),
      token('active', (r) => codeTokens(r.active)),
      token('service-type', (r) => codeableTokens(r.serviceType)),
    ],
    compartment: () => [],
    deleteRefusal: allowed,
  },
  {
    type: 'Slot',
    table: 'slot',
    params: [
      identifier,
      reference('schedule', ['Schedule'], (r) => refs(r.schedule)),
      date('start', (r) => dates(r.start)),
      token('status', (r) => codeTokens(r.status)),
      token('service-type', (r) => codeableTokens(r.serviceType)),
    ],
    compartment: () => [],
    deleteRefusal: (r) => (r.status === 'busy' ? 'a booked slot can not be deleted; cancel its appointment first' : undefined),
  },
  {
    type: 'Appointment',
    table: 'appointment',
    params: [
      identifier,
      date('date', (r) => dates(r.start)),
      token('status', (r) => codeTokens(r.status)),
      selecting('patient', ['Patient'], (r) => refsOfType('Patient', arr(r.participant).map((p: any) => p?.actor))),
      selecting('practitioner', ['Practitioner'], (r) => refsOfType('Practitioner', arr(r.participant).map((p: any) => p?.actor))),
      selecting('location', ['Location'], (r) => refsOfType('Location', arr(r.participant).map((p: any) => p?.actor))),
      at('participant.actor', reference('actor', ['Patient', 'Practitioner', 'Location'], (r) => refs(arr(r.participant).map((p: any) => p?.actor)))),
      reference('slot', ['Slot'], (r) => refs(r.slot)),
      token('service-type', (r) => codeableTokens(r.serviceType)),
      token('appointment-type', (r) => codeableTokens(r.appointmentType)),
    ],
    compartment: (r) => refsOfType('Patient', arr(r.participant).map((p: any) => p?.actor)),
    deleteRefusal: never('appointments are kept for the record; set Appointment.status to cancelled instead'),
  },
  {
    type: 'Encounter',
    table: 'encounter',
    params: [
      identifier,
      subjectPatient,
      subject,
      date('date', (r) => dates(r.period?.start)),
      token('status', (r) => codeTokens(r.status)),
      token('class', (r) => codingTokens(r.class)),
      token('type', (r) => codeableTokens(r.type)),
      reference('appointment', ['Appointment'], (r) => refs(r.appointment)),
      // participant.individual may also be a PractitionerRole or RelatedPerson, which the record does not hold.
      selecting('practitioner', ['Practitioner'], (r) => refsOfType('Practitioner', arr(r.participant).map((p: any) => p?.individual))),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('encounters are part of the legal record; set Encounter.status to entered-in-error instead'),
  },
  {
    type: 'Observation',
    table: 'observation',
    params: [
      identifier,
      subjectPatient,
      subject,
      token('code', (r) => codeableTokens(r.code)),
      token('category', (r) => codeableTokens(r.category)),
      token('status', (r) => codeTokens(r.status)),
      date('date', (r) => dates(r.effectiveDateTime, r.effectivePeriod?.start, r.effectiveInstant)),
      encounterRef((r) => r.encounter),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('observations are part of the legal record; set Observation.status to entered-in-error instead'),
  },
  {
    type: 'Condition',
    table: 'condition',
    params: [
      identifier,
      subjectPatient,
      subject,
      token('code', (r) => codeableTokens(r.code)),
      token('category', (r) => codeableTokens(r.category)),
      token('clinical-status', (r) => codeableTokens(r.clinicalStatus)),
      date('recorded-date', (r) => dates(r.recordedDate)),
      date('onset-date', (r) => dates(r.onsetDateTime, r.onsetPeriod?.start)),
      encounterRef((r) => r.encounter),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('problems are part of the legal record; set verificationStatus to entered-in-error instead'),
  },
  {
    type: 'AllergyIntolerance',
    table: 'allergy_intolerance',
    params: [
      identifier,
      reference('patient', ['Patient'], (r) => refs(r.patient)),
      token('code', (r) => codeableTokens(r.code)),
      token('clinical-status', (r) => codeableTokens(r.clinicalStatus)),
      token('criticality', (r) => codeTokens(r.criticality)),
      date('date', (r) => dates(r.recordedDate)),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('allergies are part of the legal record; set verificationStatus to entered-in-error instead'),
  },
  {
    type: 'MedicationStatement',
    table: 'medication_statement',
    params: [
      identifier,
      subjectPatient,
      subject,
      token('code', (r) => codeableTokens(r.medicationCodeableConcept)),
      token('status', (r) => codeTokens(r.status)),
      date('effective', (r) => dates(r.effectiveDateTime, r.effectivePeriod?.start)),
      reference('context', ['Encounter'], (r) => refs(r.context)),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('medication history is part of the legal record; set status to entered-in-error instead'),
  },
  {
    type: 'MedicationRequest',
    table: 'medication_request',
    params: [
      identifier,
      subjectPatient,
      subject,
      token('code', (r) => codeableTokens(r.medicationCodeableConcept)),
      token('status', (r) => codeTokens(r.status)),
      token('intent', (r) => codeTokens(r.intent)),
      date('authoredon', (r) => dates(r.authoredOn)),
      reference('requester', ['Practitioner'], (r) => refs(r.requester)),
      encounterRef((r) => r.encounter),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('prescriptions are part of the legal record; set status to cancelled or entered-in-error instead'),
  },
  {
    // Clinical notes: a SOAP note is a Composition with Subjective/Objective/Assessment/Plan sections.
    type: 'Composition',
    table: 'composition',
    params: [
      identifier,
      subjectPatient,
      subject,
      encounterRef((r) => r.encounter),
      token('status', (r) => codeTokens(r.status)),
      token('type', (r) => codeableTokens(r.type)),
      date('date', (r) => dates(r.date)),
      reference('author', ['Practitioner'], (r) => refs(r.author)),
      at('relatesTo.targetReference', reference('related-ref', ['Composition'], (r) => refs(arr(r.relatesTo).map((x: any) => x?.targetReference)))),
    ],
    compartment: subjectCompartment,
    deleteRefusal: (r) => (r.status === 'preliminary' ? undefined : 'signed notes are read-only; write an addendum instead'),
  },
  {
    type: 'DocumentReference',
    table: 'document_reference',
    params: [
      identifier,
      subjectPatient,
      subject,
      token('type', (r) => codeableTokens(r.type)),
      token('category', (r) => codeableTokens(r.category)),
      token('status', (r) => codeTokens(r.status)),
      date('date', (r) => dates(r.date)),
      at('context.encounter', encounterRef((r) => r.context?.encounter)),
    ],
    compartment: subjectCompartment,
    deleteRefusal: never('documents are part of the legal record; set DocumentReference.status to entered-in-error instead'),
  },
];

const BY_TYPE = new Map(RESOURCE_TYPES.map((def) => [def.type, def]));

export function resourceTypeDef(type: string): ResourceTypeDef | undefined {
  return BY_TYPE.get(type);
}
