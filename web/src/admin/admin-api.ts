import { ApiError, api, rememberCsrfToken } from '../app/api.js';
import { navigate } from '../app/navigation.js';

/** A 401 anywhere in the console: back to sign-in, to come back here afterwards. */
export function backToSignIn(): void {
  navigate(`/sign-in?next=${encodeURIComponent(location.pathname + location.search)}`, true);
}

/** The console's API calls: the app's api(), with an expired session sending the admin to sign in again. */
export async function adminApi<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  try {
    return await api<T>(method, path, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) backToSignIn();
    throw err;
  }
}

/** The error body's own words when the API gave them (field issues of the policy, OperationOutcome diagnostics). */
export class DetailedApiError extends ApiError {
  constructor(
    status: number,
    code: string | undefined,
    readonly body: unknown,
  ) {
    super(status, code);
  }
}

/**
 * PUT (the policy) — app/api.ts speaks GET, POST and DELETE only. The CSRF token comes from the
 * session answer, as the app's own calls take it, and is remembered for them too.
 */
export async function adminPut<T>(path: string, body: unknown): Promise<T> {
  const session = await adminApi<{ csrfToken: string }>('GET', '/api/auth/session');
  rememberCsrfToken(session.csrfToken);
  const res = await fetch(path, {
    method: 'PUT',
    credentials: 'same-origin',
    headers: { accept: 'application/json', 'content-type': 'application/json', 'x-csrf-token': session.csrfToken },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (res.status === 401) backToSignIn();
  if (!res.ok) throw new DetailedApiError(res.status, (json as { error?: string } | undefined)?.error, json);
  return json as T;
}
