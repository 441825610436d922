import { RESOURCE_TYPES, type ResourceTypeDef } from '../resource-types.js';

/** Types where some resources may be deleted (the rest say why not, in deleteRefusal). */
function allowsDelete(def: ResourceTypeDef): boolean {
  const probes = [{}, { status: 'preliminary' }, { status: 'free' }];
  return probes.some((probe) => def.deleteRefusal(probe) === undefined);
}

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
            { code: 'search-type' },
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
          searchParam: [
            { name: '_id', type: 'token' },
            { name: '_lastUpdated', type: 'date' },
            ...def.params.map((p) => ({ name: p.code, type: p.type })),
          ],
        })),
      },
    ],
  };
}
