import { RESOURCE_TYPES, resourceTypeDef, type ResourceTypeDef } from '../resource-types.js';
import { COMPARTMENT_TYPES, EVERYTHING_DEFAULT_COUNT, EVERYTHING_MAX_COUNT } from './everything.js';

/** Types where some resources may be deleted (the rest say why not, in deleteRefusal). */
function allowsDelete(def: ResourceTypeDef): boolean {
  const probes = [{}, { status: 'preliminary' }, { status: 'free' }];
  return probes.some((probe) => def.deleteRefusal(probe) === undefined);
}

/** Which chains a reference parameter takes: one level, to the string and token parameters of its targets. */
function chainDocumentation(code: string, targets: string[]): string {
  const chains = targets.map((t) => {
    const params = (resourceTypeDef(t)?.params ?? []).filter((p) => p.type === 'string' || p.type === 'token').map((p) => p.code);
    return `${t}: ${params.join(', ')}`;
  });
  return `Chains one level (${code}.<parameter>, or ${code}:<type>.<parameter> to pick the type) to string and token parameters of ${chains.join('; ')}.`;
}

/** Patient/<id>/$everything (everything.ts), the standard operation. */
const EVERYTHING_OPERATION = {
  name: 'everything',
  definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything',
  documentation: `GET Patient/<id>/$everything: the Patient and every resource of its compartment (${COMPARTMENT_TYPES.join(', ')}) the caller may read, as a searchset Bundle paged by _count (default ${EVERYTHING_DEFAULT_COUNT}, at most ${EVERYTHING_MAX_COUNT}) with next links; _since (an instant) and _type (a comma list of those types) narrow it. Audited as an export of that patient.`,
};

/**
 * What this server really supports, derived from the same registry that drives storage and
 * search, so it can not drift from the implementation.
 */
export function capabilityStatement(baseUrl: string, version: string) {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: '2026-11-22',
    publisher: 'telesalud',
    kind: 'instance',
    software: { name: 'telesalud', version },
    implementation: { description: 'telesalud clinical record', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['json', 'application/fhir+json'],
    rest: [
      {
        mode: 'server',
        security: {
          cors: false,
          description: 'Every interaction except this CapabilityStatement requires Authorization: Bearer <token>.',
        },
        resource: RESOURCE_TYPES.map((def) => ({
          type: def.type,
          interaction: [
            { code: 'read' },
            { code: 'vread' },
            { code: 'update' },
            { code: 'create' },
            { code: 'search-type', documentation: 'GET [type]?… or POST [type]/_search with the parameters as application/x-www-form-urlencoded' },
            { code: 'history-instance' },
            ...(allowsDelete(def) ? [{ code: 'delete' }] : []),
          ],
          versioning: 'versioned-update',
          readHistory: true,
          updateCreate: false,
          conditionalCreate: false,
          conditionalUpdate: false,
          conditionalDelete: 'not-supported',
          searchInclude: def.params.filter((p) => p.type === 'reference').map((p) => `${def.type}:${p.code}`),
          searchRevInclude: RESOURCE_TYPES.flatMap((source) => source.params.filter((p) => p.type === 'reference' && p.targets?.includes(def.type)).map((p) => `${source.type}:${p.code}`)),
          searchParam: [
            { name: '_id', type: 'token' },
            { name: '_lastUpdated', type: 'date' },
            ...def.params.map((p) => ({ name: p.code, type: p.type, ...(p.type === 'reference' ? { documentation: chainDocumentation(p.code, p.targets ?? []) } : {}) })),
          ],
          ...(def.type === 'Patient' ? { operation: [EVERYTHING_OPERATION] } : {}),
        })),
      },
    ],
  };
}
