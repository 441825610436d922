import { rememberCsrfToken } from '../app/api.js';
import { navigate } from '../app/navigation.js';

/**
 * The portal's calls to the node: same origin, session cookie, CSRF header on every change, and
 * any 401 sends the patient to sign in and back to where they were. FHIR errors (OperationOutcome)
 * and API errors ({error}) both end up as a PortalError the pages explain in plain words.
 */
let csrf: string | undefined;

export function rememberPortalCsrf(token: string | undefined): void {
  csrf = token;
  rememberCsrfToken(token);
}

export class PortalError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    readonly body: unknown,
  ) {
    super(`request failed with ${status}`);
  }
}

export function toSignIn(): void {
  // Several calls in flight may all find the session gone: only the first one moves the page.
  if (location.pathname === '/sign-in') return;
  navigate(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

async function send(method: Method, path: string, body: unknown, accept: string, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = { accept, ...extra };
  if (body !== undefined) headers['content-type'] = path.startsWith('/fhir/') ? 'application/fhir+json' : 'application/json';
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  return fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
}

async function failure(res: Response): Promise<PortalError> {
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = undefined;
  }
  const code = (json as { error?: string } | undefined)?.error ?? (json as { issue?: { code?: string }[] } | undefined)?.issue?.[0]?.code;
  // The invitation and sign-in pages answer 401s themselves; everywhere else the session is gone.
  if (res.status === 401 && !location.pathname.startsWith('/invite')) toSignIn();
  return new PortalError(res.status, code, json);
}

export async function call<T>(method: Method, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
  const res = await send(method, path, body, path.startsWith('/fhir/') ? 'application/fhir+json' : 'application/json', headers);
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  const json = text ? (JSON.parse(text) as T & { csrfToken?: string }) : (undefined as T);
  // Sign-in-like answers (accept, MFA changes, password change) replace the session and its CSRF token.
  const token = (json as { csrfToken?: unknown } | undefined)?.csrfToken;
  if (typeof token === 'string') rememberPortalCsrf(token);
  return json;
}

/** A call whose answer is a file to save (an export, a document). */
export async function download(method: Method, path: string, fileName: string, body?: unknown): Promise<void> {
  const res = await send(method, path, body, '*/*');
  if (!res.ok) throw await failure(res);
  const url = URL.createObjectURL(await res.blob());
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface SessionInfo {
  account: { id: string; email: string; role: string; fhirRef?: string | null; name?: string };
  csrfToken: string;
  sessionId: string;
  mfaEnrolmentRequired?: boolean;
  passwordExpired?: boolean;
}

/** The signed-in session, or undefined when there is none (no redirect: the caller decides). */
export async function portalSession(): Promise<SessionInfo | undefined> {
  const res = await send('GET', '/api/auth/session', undefined, 'application/json');
  if (res.status === 401 || res.status === 403) return undefined;
  if (!res.ok) throw new PortalError(res.status, undefined, undefined);
  const session = (await res.json()) as SessionInfo;
  rememberPortalCsrf(session.csrfToken);
  return session;
}

// ---- FHIR -----------------------------------------------------------------------------------------

export interface Reference {
  reference?: string;
  display?: string;
}
export interface Coding {
  system?: string;
  code?: string;
  display?: string;
}
export interface CodeableConcept {
  coding?: Coding[];
  text?: string;
}
export interface Resource {
  resourceType: string;
  id: string;
  [key: string]: unknown;
}
interface Bundle {
  entry?: { resource?: Resource; search?: { mode?: string } }[];
}

/** Updates a resource as it was read: the server refuses the change if someone changed it meanwhile (If-Match). */
export function updateResource<T>(resource: Resource & { meta?: { versionId?: string } }): Promise<T> {
  return call<T>('PUT', `/fhir/R4/${resource.resourceType}/${resource.id}`, resource, resource.meta?.versionId ? { 'if-match': `W/"${resource.meta.versionId}"` } : {});
}

/** A search: the matches, and the included resources by `Type/id`. */
export async function fhirSearch<T extends Resource>(query: string): Promise<{ matches: T[]; included: Map<string, Resource> }> {
  const bundle = await call<Bundle>('GET', `/fhir/R4/${query}`);
  const matches: T[] = [];
  const included = new Map<string, Resource>();
  for (const entry of bundle.entry ?? []) {
    if (!entry.resource) continue;
    if (entry.search?.mode === 'include') included.set(`${entry.resource.resourceType}/${entry.resource.id}`, entry.resource);
    else matches.push(entry.resource as T);
  }
  return { matches, included };
}

export function conceptText(concept: CodeableConcept | undefined): string {
  return concept?.text ?? concept?.coding?.find((c) => c.display)?.display ?? concept?.coding?.[0]?.code ?? '';
}

/** A FHIR HumanName list as one line. */
export function humanName(names: unknown): string {
  const list = Array.isArray(names) ? (names as { text?: string; given?: string[]; family?: string; prefix?: string[] }[]) : [];
  const name = list[0];
  if (!name) return '';
  return name.text ?? [...(name.prefix ?? []), ...(name.given ?? []), name.family ?? ''].join(' ').trim();
}
