/**
 * FHIR errors are OperationOutcomes. Handlers throw these small helpers; the HTTP layer
 * turns them into a status code and a JSON body, never a stack trace.
 */
export interface OutcomeIssue {
  severity: 'fatal' | 'error' | 'warning' | 'information';
  code: string;
  diagnostics: string;
  expression?: string[];
}

export interface OperationOutcome {
  resourceType: 'OperationOutcome';
  issue: OutcomeIssue[];
}

export class FhirError extends Error {
  constructor(readonly status: number, readonly outcome: OperationOutcome) {
    super(outcome.issue.map((i) => i.diagnostics).join('; '));
    this.name = 'FhirError';
  }
}

export function operationOutcome(code: string, diagnostics: string, expression?: string, severity: OutcomeIssue['severity'] = 'error'): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity, code, diagnostics, ...(expression ? { expression: [expression] } : {}) }] };
}

const fail = (status: number, code: string) => (diagnostics: string, expression?: string) =>
  new FhirError(status, operationOutcome(code, diagnostics, expression));

export const badRequest = fail(400, 'invalid');
export const unsupported = fail(400, 'not-supported');
export const unauthorized = fail(401, 'login');
export const forbidden = fail(403, 'forbidden');
export const notFound = fail(404, 'not-found');
export const methodNotAllowed = fail(405, 'not-supported');
export const conflict = fail(409, 'conflict');
export const gone = fail(410, 'deleted');
export const preconditionFailed = fail(412, 'conflict');
export const unprocessable = fail(422, 'business-rule');
export const unsupportedMediaType = fail(415, 'not-supported');
export const preconditionRequired = fail(428, 'required');

export function invalidResource(issues: { expression: string; message: string }[]): FhirError {
  return new FhirError(400, {
    resourceType: 'OperationOutcome',
    issue: issues.map((i) => ({ severity: 'error', code: 'invalid', diagnostics: i.message, expression: [i.expression] })),
  });
}

export function allOk(diagnostics: string): OperationOutcome {
  return operationOutcome('informational', diagnostics, undefined, 'information');
}
