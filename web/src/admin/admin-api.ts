import { ApiError, api, backToSignIn, request } from '../app/api.js';

/** The console's API calls: the app's api(), with an expired session sending the admin to sign in again. */
export async function adminApi<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<T> {
  return signInAgainOn401(api<T>(method, path, body));
}

/** PUT (the policy). */
export async function adminPut<T>(path: string, body: unknown): Promise<T> {
  return signInAgainOn401(request<T>('PUT', path, { body }));
}

async function signInAgainOn401<T>(call: Promise<T>): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) backToSignIn();
    throw err;
  }
}
