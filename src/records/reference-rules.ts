import type { ResourceTypeDef } from './resource-types.js';
import type { ValidationIssue } from './fhir/validation.js';

/**
 * What a reference may point to, checked on every write against the registry's reference
 * params: a reference whose type the param does not list is refused (400), so that
 * `Observation.subject = Practitioner/…` never reaches the record, the patient compartment or
 * the care relationships built from it.
 *
 * Existence is a separate, per-param decision. Only Appointment.slot must exist (write-rules.ts,
 * 422), because booking changes the slot. Subject/patient and the other links are not looked up:
 * the access policy already keeps clinicians and patients to patients they are related to (a
 * missing patient is out of reach like any other: 403), and a lookup for the full-access path
 * would answer differently for clinical records the writer can't see (a 422 would tell that an
 * Encounter exists). Integrations may also load resources in any order.
 */

/** `Type/id`, an absolute URL ending in it, or either with `/_history/n`. Contained (`#x`) and `urn:` references have no type to check. */
const TYPED_REFERENCE = /(?:^|\/)([A-Z][A-Za-z]+)\/[A-Za-z0-9\-.]{1,64}(?:\/_history\/[A-Za-z0-9\-.]{1,64})?$/;

export function referenceTypeIssues(def: ResourceTypeDef, resource: unknown): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  for (const param of def.params) {
    if (param.type !== 'reference' || param.selects) continue;
    for (const ref of param.extract(resource) as string[]) {
      const type = TYPED_REFERENCE.exec(ref)?.[1];
      if (type && !param.targets!.includes(type)) {
        issues.push({ expression: `${def.type}.${param.element ?? param.code}`, message: `${ref} is a ${type}; ${def.type} ${param.code} must point to ${param.targets!.join(' or ')}` });
      }
    }
  }
  return issues;
}
