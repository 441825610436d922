import { requireScope } from '../../auth/oauth/smart-scopes.js';
import type { Repository } from '../repository.js';
import { RESOURCE_TYPES, type FhirResource } from '../resource-types.js';
import { parseSearchRequest, type SearchRequest } from '../search/search-request.js';
import type { FhirRequest, FhirResponse } from './fhir-handlers.js';
import { badRequest } from './outcomes.js';

/**
 * `Patient/<id>/$everything`: the Patient and every resource of its compartment the caller may
 * read. It is a series of ordinary searches through the caller's Repository — the access
 * policy narrows each one and audits it — plus one `export` entry per page, naming the patient.
 */

// A resource that names a patient everywhere a compartment rule of the registry looks.
const PROBE_REF = { reference: 'Patient/probe' };
const PROBE = { id: 'probe', subject: PROBE_REF, patient: PROBE_REF, participant: [{ actor: PROBE_REF }] };

/**
 * The types whose resources can belong to a patient's compartment, Patient first (the registry's
 * order), as resource-types.ts defines membership: the directory types never belong.
 */
export const COMPARTMENT_TYPES: readonly string[] = RESOURCE_TYPES.filter((def) => def.compartment({ resourceType: def.type, ...PROBE }).length > 0).map((def) => def.type);

export const EVERYTHING_DEFAULT_COUNT = 100;
export const EVERYTHING_MAX_COUNT = 1000;
const INSTANT_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;
const CURSOR_RE = /^(\d{1,2})\.(\d{1,7})$/;

export interface CompartmentQuery {
  /** `Patient/<id>` */
  patient: string;
  /** Only resources changed at or after this instant (already validated). */
  since?: string | undefined;
  count: number;
  offset: number;
}

/**
 * One page of a patient's resources of one type, as the repository lets this caller see them.
 * Ordered by id, which never changes, so paging holds while the record is being written.
 */
export function compartmentSearch(type: string, query: CompartmentQuery): SearchRequest {
  const request = parseSearchRequest(type, query.since ? { _lastUpdated: `ge${query.since}` } : {});
  // The compartment column is the registry's own membership (def.compartment), indexed (GIN).
  request.filters.push({ kind: 'reference', column: 'compartments', anyOf: [query.patient] });
  request.count = query.count;
  request.offset = query.offset;
  request.sort = [{ column: 'id', descending: false }];
  return request;
}

/** `_type` (comma list, repeatable) as compartment types in the canonical order; all of them when absent. */
export function requestedTypes(value: string | string[] | undefined): string[] {
  if (value === undefined) return [...COMPARTMENT_TYPES];
  const asked = new Set((Array.isArray(value) ? value : [value]).flatMap((v) => v.split(',')).map((t) => t.trim()));
  for (const type of asked) {
    if (!COMPARTMENT_TYPES.includes(type)) throw badRequest(`_type: ${type || '(empty)'} is not a type of the patient compartment (${COMPARTMENT_TYPES.join(', ')})`, '_type');
  }
  return COMPARTMENT_TYPES.filter((t) => asked.has(t));
}

export function sinceParam(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !INSTANT_RE.test(value) || Number.isNaN(Date.parse(value))) throw badRequest('_since must be an instant with a time zone, e.g. 2026-01-31T08:00:00Z', '_since');
  return value;
}

/**
 * Refuses, before anything is read, a caller who may not search one of these types (an admin:
 * no clinical content; an OAuth client: outside its scopes) — a partial "everything" would look
 * complete. Both refusals are audited (the repository's, the FHIR routes' scope handler).
 */
export async function requireCompartmentAccess(repo: Repository, types: readonly string[]): Promise<void> {
  requireScope(repo.actor, 'Patient', 'r');
  for (const type of types) {
    requireScope(repo.actor, type, 's');
    await repo.requireAccess(type, 'search');
  }
}

export async function everythingInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const q = req.query;
  for (const key of Object.keys(q)) {
    if (!['_count', '_since', '_type', '_cursor'].includes(key)) throw badRequest(`$everything does not take ${key} (it takes _count, _since, _type)`, key);
  }
  const types = requestedTypes(q._type);
  const since = sinceParam(q._since);
  const count = single(q._count) === undefined ? EVERYTHING_DEFAULT_COUNT : boundedInt(single(q._count), 1, EVERYTHING_MAX_COUNT, '_count');
  const cursor = parseCursor(single(q._cursor), types.length);
  await requireCompartmentAccess(repo, types);
  // Out of reach answers 404 like a missing patient (audited as denied by the repository).
  const patient = await repo.read('Patient', req.id!);
  const patientRef = `Patient/${patient.id}`;

  const resources: FhirResource[] = [];
  let { type: t, offset } = cursor;
  while (t < types.length && resources.length < count) {
    const type = types[t]!;
    if (type === 'Patient') {
      if (offset === 0 && (!since || Date.parse(String(patient.meta?.lastUpdated)) >= Date.parse(since))) resources.push(patient);
      t += 1;
      offset = 0;
      continue;
    }
    const result = await repo.search(compartmentSearch(type, { patient: patientRef, since, count: count - resources.length, offset }));
    resources.push(...result.resources);
    if (result.hasMore) offset += result.resources.length;
    else {
      t += 1;
      offset = 0;
    }
  }
  await repo.recordAccess('export', patient);

  const self = pageUrl(baseUrl, patient.id!, q, count, cursor.type === 0 && cursor.offset === 0 ? undefined : `${cursor.type}.${cursor.offset}`);
  const links = [{ relation: 'self', url: self }];
  if (t < types.length) links.push({ relation: 'next', url: pageUrl(baseUrl, patient.id!, q, count, `${t}.${offset}`) });
  return {
    status: 200,
    body: {
      resourceType: 'Bundle',
      type: 'searchset',
      link: links,
      entry: resources.map((r) => ({ fullUrl: `${baseUrl}/${r.resourceType}/${r.id}`, resource: r, search: { mode: 'match' } })),
    },
  };
}

/** Where the next page starts: the index of a type in the requested list and an offset within it (opaque to clients). */
function parseCursor(value: string | undefined, typeCount: number): { type: number; offset: number } {
  if (value === undefined) return { type: 0, offset: 0 };
  const m = CURSOR_RE.exec(value);
  if (!m || Number(m[1]) >= typeCount) throw badRequest('_cursor is not one this server wrote: follow the next link as given', '_cursor');
  return { type: Number(m[1]), offset: Number(m[2]) };
}

function pageUrl(baseUrl: string, id: string, q: FhirRequest['query'], count: number, cursor: string | undefined): string {
  const params = new URLSearchParams();
  for (const key of ['_type', '_since'] as const) {
    const value = q[key];
    for (const v of value === undefined ? [] : Array.isArray(value) ? value : [value]) params.append(key, v);
  }
  params.set('_count', String(count));
  if (cursor) params.set('_cursor', cursor);
  return `${baseUrl}/Patient/${id}/$everything?${params.toString()}`;
}

function single(value: string | string[] | undefined): string | undefined {
  if (Array.isArray(value)) throw badRequest('this parameter may be given once');
  return value;
}

function boundedInt(value: string | undefined, min: number, max: number, name: string): number {
  if (value === undefined || !/^\d{1,7}$/.test(value) || Number(value) < min || Number(value) > max) throw badRequest(`${name} must be a whole number from ${min} to ${max}`, name);
  return Number(value);
}
