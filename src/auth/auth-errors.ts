import { FhirError, operationOutcome } from '../records/fhir/outcomes.js';

/** A refusal whose error code names the reason (the browser app translates it), e.g. 403 `reauthentication-failed`. */
export function refusedBecause(code: string, message: string, status = 403): FhirError {
  return new FhirError(status, operationOutcome(code, message));
}
