import { ApiError, backToSignIn, failure, request, send, type Method } from '../app/api.js';
import { adoptClinicTimeZone } from '../app/clinic-time.js';

/**
 * The portal's calls (app/api.ts underneath). Any 401 sends the patient to sign in and back to
 * where they were — except on the invitation pages, which answer 401s themselves. FHIR errors
 * (OperationOutcome) and API errors ({error}) both arrive as an ApiError the pages explain in plain words.
 */
function signInAgainOn401(err: unknown): void {
  if (err instanceof ApiError && err.status === 401 && !location.pathname.startsWith('/invite')) backToSignIn();
}

export async function call<T>(method: Method, path: string, body?: unknown, headers?: Record<string, string>): Promise<T> {
  try {
    return await request<T>(method, path, { ...(body !== undefined ? { body } : {}), ...(headers ? { headers } : {}) });
  } catch (err) {
    signInAgainOn401(err);
    throw err;
  }
}

/** A call whose answer is a file to save (an export, a document). */
export async function download(method: Method, path: string, fileName: string, body?: unknown): Promise<void> {
  const res = await send(method, path, { ...(body !== undefined ? { body } : {}), accept: '*/*' });
  if (!res.ok) {
    const err = await failure(res);
    signInAgainOn401(err);
    throw err;
  }
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
  try {
    const session = await request<SessionInfo>('GET', '/api/auth/session');
    // Before the page renders any time: they are all shown in the clinic's zone.
    adoptClinicTimeZone(session);
    return session;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return undefined;
    throw err;
  }
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
