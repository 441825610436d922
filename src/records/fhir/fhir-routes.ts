import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../server/app-context.js';
import { RESOURCE_TYPES } from '../resource-types.js';
import { capabilityStatement } from './capability-statement.js';
import {
  createInteraction,
  deleteInteraction,
  historyInteraction,
  readInteraction,
  searchInteraction,
  updateInteraction,
  vreadInteraction,
  type FhirRequest,
  type FhirResponse,
} from './fhir-handlers.js';
import type { Repository } from '../repository.js';
import { requireScope, ScopeRefused, type Interaction as ScopeInteraction } from '../../auth/oauth/smart-scopes.js';
import type { AuditAction } from '../../audit/audit-log.js';
import type { RawQuery } from '../search/search-request.js';
import { unsupportedMediaType } from './outcomes.js';
import { everythingInteraction } from './everything.js';

export const FHIR_BASE_PATH = '/fhir/R4';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const MAX_RESOURCE_BYTES = 1024 * 1024;

// Route schemas are the positive model of what each route accepts.
const typeParam = { type: 'string', enum: RESOURCE_TYPES.map((d) => d.type) };
const idParam = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' };
const queryValue = { type: 'string', maxLength: 2048 };
const searchQuery = {
  type: 'object',
  maxProperties: 40,
  additionalProperties: { anyOf: [queryValue, { type: 'array', maxItems: 20, items: queryValue }] },
};
const resourceBody = { type: 'object' };

type Interaction = (repo: Repository, baseUrl: string, req: FhirRequest) => Promise<FhirResponse>;
const FORM = 'application/x-www-form-urlencoded';
/** A POSTed search is no bigger than the GET one it stands for (40 parameters of ≤ 2 KiB, some repeated). */
const MAX_SEARCH_FORM_BYTES = 64 * 1024;
const SCOPE_ACTIONS: Record<ScopeInteraction, AuditAction> = { c: 'create', r: 'read', u: 'update', d: 'delete', s: 'search' };

/** Binds the framework-free FHIR interactions to HTTP. */
export async function fhirRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const baseUrl = `${ctx.config.publicUrl}${FHIR_BASE_PATH}`;
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/fhir+json', { parseAs: 'string', bodyLimit: MAX_RESOURCE_BYTES }, parseJson);

  // POST …/_search sends the same parameters as a form; repeated ones arrive as arrays, as in a query string.
  app.addContentTypeParser(FORM, { parseAs: 'string', bodyLimit: MAX_SEARCH_FORM_BYTES }, (_request, body, done) => {
    const form: Record<string, string | string[]> = {};
    for (const [key, value] of new URLSearchParams(body as string)) {
      const seen = form[key];
      form[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    done(null, form);
  });

  const handle = (interaction: Interaction, access: ScopeInteraction, queryOf: (request: FastifyRequest) => unknown = (request) => request.query) => async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { type: string; id?: string; vid?: string };
    let result: FhirResponse;
    try {
      // An OAuth client reaches only the types and interactions its scopes grant (included types too, see searchInteraction).
      requireScope(request.actor, params.type, access);
      result = await interaction(request.records, baseUrl, {
        type: params.type,
        ...(params.id !== undefined ? { id: params.id } : {}),
        ...(params.vid !== undefined ? { versionId: params.vid } : {}),
        query: (queryOf(request) ?? {}) as FhirRequest['query'],
        body: request.body,
        ...(typeof request.headers['if-match'] === 'string' ? { ifMatch: request.headers['if-match'] } : {}),
      });
    } catch (err) {
      if (err instanceof ScopeRefused) {
        await ctx.audit.record({ actor: request.actor!.ref, action: SCOPE_ACTIONS[err.interaction], resourceType: err.resourceType, outcome: 'denied', source: request.ip, requestId: request.id, detail: { reason: 'scope', ...(request.actor!.client ? { client: request.actor!.client } : {}) } });
      }
      throw err;
    }
    reply.code(result.status).headers({ 'Cache-Control': 'no-store', ...(result.headers ?? {}) });
    if (result.body === undefined) return reply.send();
    return reply.type(FHIR_JSON).send(result.body);
  };

  const capability = JSON.stringify(capabilityStatement(baseUrl, ctx.version));
  app.get(`${FHIR_BASE_PATH}/metadata`, { config: { public: true } }, async (_request, reply) => reply.type(FHIR_JSON).send(capability));

  app.get(`${FHIR_BASE_PATH}/:type`, { schema: { params: { type: 'object', properties: { type: typeParam }, required: ['type'] }, querystring: searchQuery } }, handle(searchInteraction, 's'));
  app.post(
    `${FHIR_BASE_PATH}/:type/_search`,
    { bodyLimit: MAX_SEARCH_FORM_BYTES, schema: { params: { type: 'object', properties: { type: typeParam }, required: ['type'] }, querystring: searchQuery, body: searchQuery } },
    handle(searchInteraction, 's', searchForm),
  );
  app.post(
    `${FHIR_BASE_PATH}/:type`,
    { bodyLimit: MAX_RESOURCE_BYTES, schema: { params: { type: 'object', properties: { type: typeParam }, required: ['type'] }, body: resourceBody } },
    handle(createInteraction, 'c'),
  );
  const instance = { type: 'object', properties: { type: typeParam, id: idParam }, required: ['type', 'id'] };
  app.get(`${FHIR_BASE_PATH}/:type/:id`, { schema: { params: instance } }, handle(readInteraction, 'r'));
  app.put(`${FHIR_BASE_PATH}/:type/:id`, { bodyLimit: MAX_RESOURCE_BYTES, schema: { params: instance, body: resourceBody } }, handle(updateInteraction, 'u'));
  app.delete(`${FHIR_BASE_PATH}/:type/:id`, { schema: { params: instance } }, handle(deleteInteraction, 'd'));
  app.get(
    `${FHIR_BASE_PATH}/:type/:id/_history`,
    { schema: { params: instance, querystring: { type: 'object', additionalProperties: false, properties: { _count: queryValue, _offset: queryValue } } } },
    handle(historyInteraction, 'r'),
  );
  app.get(
    `${FHIR_BASE_PATH}/:type/:id/_history/:vid`,
    { schema: { params: { ...instance, properties: { ...instance.properties, vid: { type: 'string', pattern: '^[0-9]{1,9}$' } }, required: ['type', 'id', 'vid'] } } },
    handle(vreadInteraction, 'r'),
  );
  // Patient/<id>/$everything (everything.ts): the patient's compartment, paged; audited as an export.
  const everythingQuery = { type: 'object', additionalProperties: false, properties: { _count: queryValue, _since: queryValue, _cursor: queryValue, _type: { anyOf: [queryValue, { type: 'array', maxItems: 20, items: queryValue }] } } };
  app.get(
    `${FHIR_BASE_PATH}/:type/:id/$everything`,
    { schema: { params: { type: 'object', properties: { type: { type: 'string', enum: ['Patient'] }, id: idParam }, required: ['type', 'id'] }, querystring: everythingQuery } },
    handle(everythingInteraction, 'r'),
  );
}

/** The parameters of POST …/_search: the form body's, plus any in the URL (FHIR allows both). */
function searchForm(request: FastifyRequest): RawQuery {
  if (request.body !== undefined && !(request.headers['content-type'] ?? '').toLowerCase().startsWith(FORM)) {
    throw unsupportedMediaType(`POST ${FHIR_BASE_PATH}/${(request.params as { type: string }).type}/_search takes its parameters as ${FORM}`);
  }
  const merged: RawQuery = { ...((request.query ?? {}) as RawQuery) };
  for (const [key, value] of Object.entries((request.body ?? {}) as RawQuery)) {
    if (value === undefined) continue;
    const seen = merged[key];
    merged[key] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), ...(Array.isArray(value) ? value : [value])];
  }
  return merged;
}
