import type { FastifyRequest } from 'fastify';

/** The audit ref of the bootstrap admin token (the installer's break-in key). */
export const BOOTSTRAP_ADMIN_REF = 'admin-token';

/** Administration (metrics, audit, consultation status): an admin's session, or the bootstrap token. */
export function isAdministrator(request: FastifyRequest): boolean {
  if (request.session) return request.session.account.role === 'admin';
  return request.actor?.ref === BOOTSTRAP_ADMIN_REF;
}
