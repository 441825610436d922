import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Role } from '../roles.js';
import { appScopesCover, needsPatientContext, parseAppScopes, type AppScopes } from './app-scopes.js';
import { CHALLENGE_RE } from './authorization-codes.js';
import { findAppClient, redirectUriRegistered, type AppClient } from './oauth-clients.js';
import { ScopeError } from './smart-scopes.js';

/** The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, SMART App Launch `aud`). */
export const AUTHORIZATION_PARAMS = ['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'code_challenge', 'code_challenge_method', 'aud'] as const;
export type AuthorizationParams = Partial<Record<(typeof AUTHORIZATION_PARAMS)[number], string>>;

/** RFC 6749 §4.1.2.1 error codes sent back to the app's redirect URI. */
export type AuthorizeErrorCode = 'invalid_request' | 'unsupported_response_type' | 'invalid_scope' | 'access_denied' | 'unauthorized_client';

/**
 * Why a request can't even be answered to its redirect URI: the client or the URI is not one
 * registered here, so sending the browser there could hand it to anyone (RFC 6749 §4.1.2.1).
 * The user is told instead.
 */
export type UntrustedRequest = 'unknown-client' | 'bad-redirect-uri';

export type CheckedRequest =
  | { kind: 'untrusted'; problem: UntrustedRequest }
  | { kind: 'refused'; redirect: string; error: AuthorizeErrorCode; description: string }
  | { kind: 'valid'; client: AppClient; redirectUri: string; state: string; scopes: AppScopes; codeChallenge: string };

/**
 * Checks an authorization request against the registered client, before any user is involved.
 * `fhirBase` is this server's FHIR base URL: SMART's `aud` must name it, so a code meant for
 * another server is never issued here.
 */
export async function checkAuthorizationRequest(db: Kysely<Database>, params: AuthorizationParams, fhirBase: string): Promise<CheckedRequest> {
  const client = params.client_id ? await findAppClient(db, params.client_id) : undefined;
  if (!client) return { kind: 'untrusted', problem: 'unknown-client' };
  // Exact match only (no prefix, no pattern): the commonest hole in OAuth servers.
  const redirectUri = params.redirect_uri;
  // Exact, except the port of a native app's loopback listener (RFC 8252 §7.3); loopback URIs are registered for public clients only.
  if (!redirectUri || !redirectUriRegistered(client.redirectUris, redirectUri)) return { kind: 'untrusted', problem: 'bad-redirect-uri' };

  const state = params.state ?? '';
  const refuse = (error: AuthorizeErrorCode, description: string): CheckedRequest => ({ kind: 'refused', redirect: redirectWith(redirectUri, { error, error_description: description, state }), error, description });
  if (params.response_type !== 'code') return refuse('unsupported_response_type', 'response_type must be code');
  if (!state) return refuse('invalid_request', 'state is required');
  if (params.code_challenge_method === undefined || params.code_challenge === undefined) return refuse('invalid_request', 'PKCE is required: send code_challenge and code_challenge_method=S256');
  if (params.code_challenge_method !== 'S256') return refuse('invalid_request', 'code_challenge_method must be S256 (plain is not accepted)');
  if (!CHALLENGE_RE.test(params.code_challenge)) return refuse('invalid_request', 'code_challenge must be the base64url SHA-256 of the code_verifier (43 characters)');
  if (params.aud !== fhirBase) return refuse('invalid_request', `aud must be this server's FHIR base URL, ${fhirBase}`);
  let scopes: AppScopes;
  try {
    scopes = parseAppScopes(params.scope ?? '');
  } catch (err) {
    if (err instanceof ScopeError) return refuse('invalid_scope', err.message);
    throw err;
  }
  if (!appScopesCover(parseAppScopes(client.scopes), scopes)) return refuse('invalid_scope', 'the requested scope exceeds what this app was registered for');
  return { kind: 'valid', client, redirectUri, state, scopes, codeChallenge: params.code_challenge };
}

/** The account approving a request, as far as scopes care. */
export interface Approver {
  role: Role | string;
  fhirRef: string | null;
}

/** Why this user can't grant these scopes, or undefined. Shown to the user before they decide. */
export type ApproverProblem = 'patient-context-needs-patient' | 'no-patient-record' | 'role-not-supported';

/** The roles whose access an app token knows how to carry (oauth-clients.ts actorForAccessToken). */
const APP_ROLES = new Set(['patient', 'clinician', 'admin']);

export function approverProblem(approver: Approver, scopes: AppScopes): ApproverProblem | undefined {
  if (!APP_ROLES.has(approver.role)) return 'role-not-supported';
  if (!needsPatientContext(scopes)) return undefined;
  // Standalone launch gives a patient's own record; a clinician choosing a patient is not offered (yet).
  if (approver.role !== 'patient') return 'patient-context-needs-patient';
  if (!approver.fhirRef?.startsWith('Patient/')) return 'no-patient-record';
  return undefined;
}

/** The redirect URI with these parameters added to its query (keeping any it has). */
export function redirectWith(redirectUri: string, params: Record<string, string>): string {
  const url = new URL(redirectUri);
  for (const [key, value] of Object.entries(params)) if (value !== '') url.searchParams.set(key, value);
  return url.toString();
}
