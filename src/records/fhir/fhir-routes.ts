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

/** Binds the framework-free FHIR interactions to HTTP. */
export async function fhirRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const baseUrl = `${ctx.config.publicUrl}${FHIR_BASE_PATH}`;
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/fhir+json', { parseAs: 'string', bodyLimit: MAX_RESOURCE_BYTES }, parseJson);

  const handle = (interaction: Interaction) => async (request: FastifyRequest, reply: FastifyReply) => {
    const params = request.params as { type: string; id?: string; vid?: string };
    const result = await interaction(request.records, baseUrl, {
      type: params.type,
      ...(params.id !== undefined ? { id: params.id } : {}),
      ...(params.vid !== undefined ? { versionId: params.vid } : {}),
      query: (request.query ?? {}) as FhirRequest['query'],
      body: request.body,
      ...(typeof request.headers['if-match'] === 'string' ? { ifMatch: request.headers['if-match'] } : {}),
    });
    reply.code(result.status).headers({ 'Cache-Control': 'no-store', ...(result.headers ?? {}) });
    if (result.body === undefined) return reply.send();
    return reply.type(FHIR_JSON).send(result.body);
  };

  const capability = JSON.stringify(capabilityStatement(baseUrl, ctx.version));
  app.get(`${FHIR_BASE_PATH}/metadata`, { config: { public: true } }, async (_request, reply) => reply.type(FHIR_JSON).send(capability));

  app.get(`${FHIR_BASE_PATH}/:type`, { schema: { params: { type: 'object', properties: { type: typeParam }, required: ['type'] }, querystring: searchQuery } }, handle(searchInteraction));
  app.post(
    `${FHIR_BASE_PATH}/:type`,
    { bodyLimit: MAX_RESOURCE_BYTES, schema: { params: { type: 'object', properties: { type: typeParam }, required: ['type'] }, body: resourceBody } },
    handle(createInteraction),
  );
  const instance = { type: 'object', properties: { type: typeParam, id: idParam }, required: ['type', 'id'] };
  app.get(`${FHIR_BASE_PATH}/:type/:id`, { schema: { params: instance } }, handle(readInteraction));
  app.put(`${FHIR_BASE_PATH}/:type/:id`, { bodyLimit: MAX_RESOURCE_BYTES, schema: { params: instance, body: resourceBody } }, handle(updateInteraction));
  app.delete(`${FHIR_BASE_PATH}/:type/:id`, { schema: { params: instance } }, handle(deleteInteraction));
  app.get(
    `${FHIR_BASE_PATH}/:type/:id/_history`,
    { schema: { params: instance, querystring: { type: 'object', additionalProperties: false, properties: { _count: queryValue, _offset: queryValue } } } },
    handle(historyInteraction),
  );
  app.get(
    `${FHIR_BASE_PATH}/:type/:id/_history/:vid`,
    { schema: { params: { ...instance, properties: { ...instance.properties, vid: { type: 'string', pattern: '^[0-9]{1,9}$' } }, required: ['type', 'id', 'vid'] } } },
    handle(vreadInteraction),
  );
}
