import type { Repository } from '../repository.js';
import type { FhirResource } from '../resource-types.js';
import { parseSearchRequest, type RawQuery } from '../search/search-request.js';
import { historyBundle, searchBundleJson } from './bundle.js';
import { badRequest, preconditionRequired } from './outcomes.js';
import { requireScope } from '../../auth/oauth/smart-scopes.js';

/**
 * The FHIR REST interactions, free of any HTTP framework: each takes the parsed request and
 * a repository already narrowed to the caller, and returns a status, a body and headers.
 */
export interface FhirRequest {
  type: string;
  id?: string;
  versionId?: string;
  query: RawQuery;
  body?: unknown;
  ifMatch?: string;
}

export interface FhirResponse {
  status: number;
  /** A value to serialise as JSON, or a string that already is the JSON text. */
  body?: unknown;
  headers?: Record<string, string>;
}

const versionHeaders = (baseUrl: string, r: FhirResource): Record<string, string> => ({
  ETag: `W/"${r.meta?.versionId}"`,
  'Last-Modified': new Date(r.meta?.lastUpdated ?? Date.now()).toUTCString(),
  Location: `${baseUrl}/${r.resourceType}/${r.id}/_history/${r.meta?.versionId}`,
});

export async function readInteraction(repo: Repository, _baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  // The stored JSON goes out as it is: the hottest route of the API skips a parse and a serialisation.
  const stored = await repo.readJson(req.type, req.id!);
  return { status: 200, body: stored.json, headers: { ETag: `W/"${stored.versionId}"`, 'Last-Modified': stored.lastUpdated.toUTCString() } };
}

export async function vreadInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const resource = await repo.vread(req.type, req.id!, req.versionId!);
  const { Location: _ignored, ...headers } = versionHeaders(baseUrl, resource);
  return { status: 200, body: resource, headers };
}

export async function createInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const body = bodyResource(req);
  if (body.id !== undefined) throw badRequest('a new resource must not carry an id: the server assigns it', `${req.type}.id`);
  const created = await repo.create(body);
  return { status: 201, body: created, headers: versionHeaders(baseUrl, created) };
}

export async function updateInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const body = bodyResource(req);
  if (body.id !== req.id) throw badRequest(`the resource id (${String(body.id)}) must match the URL (${req.id})`, `${req.type}.id`);
  // Without If-Match an edit could silently overwrite a colleague's: the version is required.
  const m = req.ifMatch ? /^(?:W\/)?"(\d{1,9})"$/.exec(req.ifMatch.trim()) : null;
  if (!req.ifMatch) throw preconditionRequired('updates need If-Match: W/"<versionId>" with the version you are changing');
  if (!m) throw badRequest('If-Match must look like W/"<versionId>"');
  const updated = await repo.update(body, m[1]!);
  return { status: 200, body: updated, headers: versionHeaders(baseUrl, updated) };
}

export async function deleteInteraction(repo: Repository, _baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  await repo.delete(req.type, req.id!);
  return { status: 204 };
}

export async function historyInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const count = intParam(req.query._count, 100, 1, 1000, '_count');
  const offset = intParam(req.query._offset, 0, 0, 100_000, '_offset');
  const { versions, total } = await repo.history(req.type, req.id!, count, offset);
  return { status: 200, body: historyBundle(baseUrl, req.type, req.id!, versions, total) };
}

export async function searchInteraction(repo: Repository, baseUrl: string, req: FhirRequest): Promise<FhirResponse> {
  const request = parseSearchRequest(req.type, req.query);
  for (const inc of request.include) for (const target of inc.targets) requireScope(repo.actor, target, 'r');
  for (const rev of request.revinclude) requireScope(repo.actor, rev.source.type, 's');
  for (const filter of request.filters) if (filter.kind === 'chain') for (const target of filter.targets) requireScope(repo.actor, target.def.type, 's');
  const result = await repo.searchJson(request);
  return { status: 200, body: searchBundleJson(baseUrl, req.type, req.query, request, result) };
}

function bodyResource(req: FhirRequest): FhirResource {
  const body = req.body as FhirResource | undefined;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('the body must be a FHIR resource in JSON');
  if (body.resourceType !== req.type) throw badRequest(`the body is a ${String(body.resourceType)}, the URL says ${req.type}`, 'resourceType');
  return body;
}

function intParam(value: unknown, fallback: number, min: number, max: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !/^\d{1,7}$/.test(value) || Number(value) < min || Number(value) > max) throw badRequest(`${name} must be a whole number from ${min} to ${max}`, name);
  return Number(value);
}
