import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { FhirError, operationOutcome, type OperationOutcome } from '../records/fhir/outcomes.js';
import { safeError } from '../logging/safe-error.js';

/**
 * Errors leave as JSON, never a stack trace. FHIR routes answer with an OperationOutcome,
 * the rest with { error, message }.
 */
export function registerErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError | FhirError, request, reply) => {
    if (err instanceof FhirError) return send(request, reply, err.status, err.outcome);
    const fe = err as FastifyError;
    if (fe.validation) {
      const first = fe.validation[0];
      const where = fe.validationContext === 'body' ? 'body' : fe.validationContext ?? 'request';
      const path = first?.instancePath ? `${where}${first.instancePath.replace(/\//g, '.')}` : where;
      const detail = first?.keyword === 'additionalProperties' ? `unknown field "${String((first.params as { additionalProperty?: string }).additionalProperty)}"` : first?.message ?? 'is invalid';
      return send(request, reply, 400, operationOutcome('invalid', `${path}: ${detail}`, path));
    }
    const status = fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
    if (status === 500) {
      request.log.error({ err: safeError(err) }, 'request failed');
      return send(request, reply, 500, operationOutcome('exception', 'the server could not complete this request; it has been logged'));
    }
    return send(request, reply, status, operationOutcome(codeFor(status), clientMessage(fe)));
  });

  app.setNotFoundHandler((request, reply) => send(request, reply, 404, operationOutcome('not-found', `no route for ${request.method} ${request.url.split('?')[0]}`)));
}

function clientMessage(err: FastifyError): string {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'the body is larger than this route accepts';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'this content type is not accepted here';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return 'the body is empty';
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    default:
      return err.code?.startsWith('FST_ERR_CTP') || err instanceof SyntaxError ? 'the body is not valid JSON' : err.message;
  }
}

function codeFor(status: number): string {
  return status === 413 ? 'too-long' : status === 415 ? 'not-supported' : status === 401 ? 'login' : status === 403 ? 'forbidden' : 'invalid';
}

function send(request: FastifyRequest, reply: FastifyReply, status: number, outcome: OperationOutcome) {
  const isFhir = request.url.startsWith('/fhir/');
  reply.code(status).header('Cache-Control', 'no-store');
  if (isFhir) return reply.type('application/fhir+json; charset=utf-8').send(outcome);
  const issue = outcome.issue[0]!;
  return reply.type('application/json; charset=utf-8').send({ error: issue.code, message: issue.diagnostics });
}
