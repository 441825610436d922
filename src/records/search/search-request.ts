import { isWellFormedText } from '../fhir/json-rules.js';
import { badRequest, unsupported } from '../fhir/outcomes.js';
import { resourceTypeDef, type ResourceTypeDef, type SearchParam } from '../resource-types.js';
import { parseDateRange, type DateRange } from './date-range.js';
import { normalizeSearchString } from './normalize.js';

/** A parsed, validated FHIR search: every value already checked, nothing left to trust. */
export type Filter =
  | { kind: 'token'; column: string; anyOf: string[] }
  | { kind: 'id'; anyOf: string[] }
  | { kind: 'reference'; column: string; anyOf: string[] }
  | { kind: 'date'; column: string; anyOf: { prefix: DatePrefix; range: DateRange }[] }
  | { kind: 'string'; code: string; match: 'prefix' | 'exact' | 'contains'; anyOf: string[] }
  /** `patient.name=…`: the reference column points to one of the target resources the inner filter finds. */
  | { kind: 'chain'; column: string; key: string; targets: { def: ResourceTypeDef; filter: Filter }[] };

export type DatePrefix = 'eq' | 'ne' | 'lt' | 'gt' | 'le' | 'ge' | 'sa' | 'eb';

export interface SortKey {
  column: string;
  descending: boolean;
}

export interface Include {
  param: SearchParam;
  targets: string[];
}

/** `_revinclude=Observation:patient`: the `source` resources whose `param` points to a resource of the page. */
export interface RevInclude {
  source: ResourceTypeDef;
  param: SearchParam;
}

export interface SearchRequest {
  def: ResourceTypeDef;
  filters: Filter[];
  count: number;
  offset: number;
  sort: SortKey[];
  include: Include[];
  revinclude: RevInclude[];
  total: boolean;
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;
export const MAX_OFFSET = 10_000;
const MAX_VALUES = 100;
const CONTROL_OR_MALFORMED = (text: string) => /[\u0000-\u001f\u007f]/.test(text) || !isWellFormedText(text);

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const FHIR_ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

export function isResourceId(id: string): boolean {
  return UUID_RE.test(id);
}

/** Query as Fastify parses it: repeated parameters arrive as arrays. */
export type RawQuery = Record<string, string | string[] | undefined>;

export function parseSearchRequest(type: string, query: RawQuery): SearchRequest {
  const def = resourceTypeDef(type);
  if (!def) throw unsupported(`resource type ${type} is not supported`);
  const request: SearchRequest = { def, filters: [], count: DEFAULT_COUNT, offset: 0, sort: [], include: [], revinclude: [], total: false };

  for (const [key, raw] of Object.entries(query)) {
    if (raw === undefined) continue;
    const values = Array.isArray(raw) ? raw : [raw];
    for (const value of values) {
      if (typeof value !== 'string') throw badRequest(`search parameter ${key} must be text`, key);
      applyParameter(request, key, value);
    }
  }
  if (request.sort.length === 0) request.sort = [{ column: 'last_updated', descending: true }];
  return request;
}

function applyParameter(request: SearchRequest, key: string, value: string): void {
  // No control characters anywhere in a search (PostgreSQL text can't even hold NUL).
  if (CONTROL_OR_MALFORMED(key) || CONTROL_OR_MALFORMED(value)) throw badRequest('a search parameter contains control characters or malformed text');
  if (key.includes('.')) {
    request.filters.push(chain(request.def, key, value));
    return;
  }
  const [code = '', modifier, ...rest] = key.split(':');
  if (rest.length > 0) throw unsupported(`search parameter ${key} is not supported`, key);
  switch (code) {
    case '_count':
      request.count = boundedInteger(key, value, 0, MAX_COUNT);
      return;
    case '_offset':
      request.offset = boundedInteger(key, value, 0, MAX_OFFSET);
      return;
    case '_total':
      if (!['none', 'estimate', 'accurate'].includes(value)) throw badRequest('_total must be none, estimate or accurate', key);
      request.total = value !== 'none';
      return;
    case '_summary':
      if (value !== 'count') throw unsupported('_summary supports only "count"', key);
      request.total = true;
      request.count = 0;
      return;
    case '_sort':
      request.sort = value.split(',').map((entry) => sortKey(request.def, entry));
      return;
    case '_include':
      request.include.push(include(request.def, value));
      return;
    case '_revinclude':
      request.revinclude.push(revinclude(request.def, value));
      return;
    case '_id':
      noModifier(key, modifier);
      request.filters.push({ kind: 'id', anyOf: orValues(key, value).map((id) => validId(key, id)) });
      return;
    case '_lastUpdated':
      noModifier(key, modifier);
      request.filters.push({ kind: 'date', column: 'last_updated', anyOf: orValues(key, value).map((v) => dateValue(key, v)) });
      return;
    case '_format':
      if (!/json/.test(value)) throw unsupported('only JSON is supported', key);
      return;
  }
  if (code.startsWith('_')) throw unsupported(`search parameter ${code} is not supported`, key);
  const param = request.def.params.find((p) => p.code === code);
  if (!param) throw badRequest(`unknown search parameter "${code}" for ${request.def.type}`, key);
  request.filters.push(filterFor(param, key, modifier, value));
}

function filterFor(param: SearchParam, key: string, modifier: string | undefined, value: string): Filter {
  const anyOf = orValues(key, value);
  switch (param.type) {
    case 'token':
      noModifier(key, modifier);
      for (const v of anyOf) {
        if (v.endsWith('|')) throw unsupported(`search by system only ("${v}") is not supported`, key);
      }
      return { kind: 'token', column: param.column, anyOf };
    case 'reference': {
      if (modifier && !(param.targets ?? []).includes(modifier)) throw badRequest(`${key}: ${modifier} is not a target of ${param.code}`, key);
      const targets = modifier ? [modifier] : param.targets ?? [];
      return { kind: 'reference', column: param.column, anyOf: anyOf.flatMap((v) => referenceValues(key, v, targets)) };
    }
    case 'date':
      noModifier(key, modifier);
      return { kind: 'date', column: param.column, anyOf: anyOf.map((v) => dateValue(key, v)) };
    case 'string': {
      if (modifier && modifier !== 'exact' && modifier !== 'contains') throw unsupported(`modifier :${modifier} is not supported on ${param.code}`, key);
      const normalized = anyOf.map(normalizeSearchString);
      if (normalized.some((v) => v.length === 0)) throw badRequest(`${key} needs a value`, key);
      return { kind: 'string', code: param.code, match: (modifier as 'exact' | 'contains') ?? 'prefix', anyOf: normalized };
    }
  }
}

function referenceValues(key: string, value: string, targets: string[]): string[] {
  // Accept `id`, `Type/id`, or an absolute URL ending in `Type/id`.
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([^/]+)$/.exec(value);
  if (m) {
    const [, type, id] = m as unknown as [string, string, string];
    if (!targets.includes(type)) throw badRequest(`${key}: ${type} is not a valid target`, key);
    return [`${type}/${validId(key, id)}`];
  }
  if (value.includes('/')) throw badRequest(`${key}: "${value}" is not a reference`, key);
  return targets.map((t) => `${t}/${validId(key, value)}`);
}

function dateValue(key: string, value: string): { prefix: DatePrefix; range: DateRange } {
  const m = /^(eq|ne|lt|gt|le|ge|sa|eb|ap)?([\s\S]*)$/.exec(value)!;
  const prefix = (m[1] ?? 'eq') as DatePrefix | 'ap';
  if (prefix === 'ap') throw unsupported(`${key}: the "ap" prefix is not supported`, key);
  const range = parseDateRange(m[2] ?? '');
  if (!range) throw badRequest(`${key}: "${value}" is not a valid FHIR date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)`, key);
  return { prefix, range };
}

function sortKey(def: ResourceTypeDef, entry: string): SortKey {
  const descending = entry.startsWith('-');
  const code = descending ? entry.slice(1) : entry;
  if (code === '_lastUpdated') return { column: 'last_updated', descending };
  if (code === '_id') return { column: 'id', descending };
  const param = def.params.find((p) => p.code === code);
  if (!param || (param.type !== 'date' && param.type !== 'string')) {
    throw unsupported(`_sort by "${code}" is not supported for ${def.type} (sortable: _id, _lastUpdated, and its date and string parameters)`, '_sort');
  }
  return { column: param.column, descending };
}

function include(def: ResourceTypeDef, value: string): Include {
  const [source, code, target, ...rest] = value.split(':');
  if (source !== def.type || !code || rest.length > 0) throw badRequest(`_include must look like ${def.type}:<reference parameter>[:<type>]`, '_include');
  const param = def.params.find((p) => p.code === code && p.type === 'reference');
  if (!param) throw badRequest(`_include: ${code} is not a reference parameter of ${def.type}`, '_include');
  const targets = (param.targets ?? []).filter((t) => !target || t === target);
  if (targets.length === 0 || targets.some((t) => !resourceTypeDef(t))) throw badRequest(`_include: ${target} is not a target of ${code}`, '_include');
  return { param, targets };
}

function revinclude(def: ResourceTypeDef, value: string): RevInclude {
  const [sourceType = '', code, target, ...rest] = value.split(':');
  const source = resourceTypeDef(sourceType);
  if (!source || !code || rest.length > 0) throw badRequest('_revinclude must look like <resource type>:<reference parameter>[:<type>]', '_revinclude');
  const param = source.params.find((p) => p.code === code && p.type === 'reference');
  if (!param) throw badRequest(`_revinclude: ${code} is not a reference parameter of ${source.type}`, '_revinclude');
  if (!(param.targets ?? []).includes(def.type) || (target && target !== def.type)) throw badRequest(`_revinclude: ${source.type}:${code} does not point to ${def.type}`, '_revinclude');
  return { source, param };
}

/**
 * One level of chaining, `patient.name=garcia` or `subject:Patient.name=garcia`: a reference
 * parameter, then a string or token parameter of the type it points to (with its own modifier,
 * `patient.name:exact=…`). Every target type that has the chained parameter is searched.
 */
function chain(def: ResourceTypeDef, key: string, value: string): Filter {
  const dot = key.indexOf('.');
  const [code = '', type, ...extra] = key.slice(0, dot).split(':');
  const [chained = '', modifier, ...rest] = key.slice(dot + 1).split(':');
  if (extra.length > 0 || rest.length > 0) throw unsupported(`search parameter ${key} is not supported`, key);
  if (chained.includes('.')) throw unsupported(`${key}: only one level of chaining is supported`, key);
  const param = def.params.find((p) => p.code === code && p.type === 'reference');
  if (!param) throw badRequest(`${key}: ${code} is not a reference parameter of ${def.type}`, key);
  if (type && !(param.targets ?? []).includes(type)) throw badRequest(`${key}: ${type} is not a target of ${code}`, key);
  const targets = (type ? [type] : param.targets ?? []).flatMap((t) => {
    const target = resourceTypeDef(t);
    const inner = target?.params.find((p) => p.code === chained);
    return target && inner ? [{ def: target, inner }] : [];
  });
  if (targets.length === 0) throw badRequest(`${key}: ${chained} is not a search parameter of ${(type ? [type] : param.targets ?? []).join(' or ')}`, key);
  if (targets.some((t) => t.inner.type !== 'string' && t.inner.type !== 'token')) throw unsupported(`${key}: chaining supports string and token parameters only`, key);
  const innerKey = modifier ? `${chained}:${modifier}` : chained;
  return { kind: 'chain', column: param.column, key, targets: targets.map((t) => ({ def: t.def, filter: filterFor(t.inner, innerKey, modifier, value) })) };
}

function orValues(key: string, value: string): string[] {
  // A comma means OR; "\," is a literal comma.
  const values = value.split(/(?<!\\),/).map((v) => v.replace(/\\,/g, ','));
  if (values.length > MAX_VALUES) throw badRequest(`${key}: at most ${MAX_VALUES} alternatives`, key);
  if (values.some((v) => v.length === 0 || v.length > 512)) throw badRequest(`${key}: each value must have 1 to 512 characters`, key);
  return values;
}

function validId(key: string, id: string): string {
  if (!FHIR_ID_RE.test(id)) throw badRequest(`${key}: "${id}" is not a valid id`, key);
  return id;
}

function noModifier(key: string, modifier: string | undefined): void {
  if (modifier) throw unsupported(`modifier :${modifier} is not supported on ${key.split(':')[0]}`, key);
}

function boundedInteger(key: string, value: string, min: number, max: number): number {
  if (!/^\d{1,7}$/.test(value)) throw badRequest(`${key} must be a whole number`, key);
  const n = Number(value);
  if (n < min || n > max) throw badRequest(`${key} must be between ${min} and ${max}`, key);
  return n;
}
