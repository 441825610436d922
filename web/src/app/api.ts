/**
 * The one place the page talks to the node: same origin, session cookie, JSON in and out, the
 * CSRF header on every change (the token of the session's latest answer, asked for when the
 * page has none yet). The areas (portal, clinic, admin) build their calls on send()/request().
 */
import { failure, jsonOf } from './api-error.js';
import { navigate } from './navigation.js';

export { ApiError, failure, retryAfterSeconds } from './api-error.js';

/** The CSRF token of the session's latest answer (every answer that starts or shows a session carries it). */
let csrfToken: string | undefined;

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

export interface SendOptions {
  /** Sent as JSON (FHIR JSON under /fhir/). */
  body?: unknown;
  /** Sent as it is (a document upload). */
  raw?: Blob;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
  /** A public route (guest link preview): no session, so no CSRF token is asked for or sent. */
  publicRoute?: boolean;
}

async function tokenForChange(): Promise<string | undefined> {
  if (csrfToken) return csrfToken;
  const res = await fetch('/api/auth/session', { credentials: 'same-origin', headers: { accept: 'application/json' } }).catch(() => undefined);
  if (res?.ok) csrfToken = ((await res.json()) as { csrfToken?: string }).csrfToken;
  return csrfToken;
}

/** The raw answer (for files to save); request() for JSON. */
export async function send(method: Method, path: string, options: SendOptions = {}): Promise<Response> {
  const fhir = path.startsWith('/fhir/');
  const headers: Record<string, string> = { accept: options.accept ?? (fhir ? 'application/fhir+json, application/json' : 'application/json'), ...options.headers };
  if (options.body !== undefined) headers['content-type'] = options.contentType ?? (fhir ? 'application/fhir+json' : 'application/json');
  if (options.raw) headers['content-type'] = options.contentType ?? (options.raw.type || 'application/octet-stream');
  if (method !== 'GET' && !options.publicRoute) {
    const token = await tokenForChange();
    if (token) headers['x-csrf-token'] = token;
  }
  const body = options.body !== undefined ? JSON.stringify(options.body) : options.raw;
  return fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body } : {}) });
}

/** A JSON call. An answer that starts a new session (sign-in, accept, MFA change) brings its new CSRF token. */
export async function request<T>(method: Method, path: string, options: SendOptions = {}): Promise<T> {
  const res = await send(method, path, options);
  if (!res.ok) throw await failure(res);
  const json = (await jsonOf(res)) as T;
  const token = (json as { csrfToken?: unknown } | undefined)?.csrfToken;
  if (typeof token === 'string') csrfToken = token;
  return json;
}

export function api<T>(method: Method, path: string, body?: unknown): Promise<T> {
  return request<T>(method, path, body !== undefined ? { body } : {});
}

/** The session is gone: to sign in, and back here afterwards (once, however many calls found it gone). */
export function backToSignIn(): void {
  if (location.pathname === '/sign-in') return;
  navigate(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}
