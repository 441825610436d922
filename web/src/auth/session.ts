import { ApiError, api, rememberCsrfToken } from '../app/api.js';

export interface Account {
  id: string;
  email: string;
  role: string;
  name?: string;
}

/** The signed-in account, or undefined when this browser has no valid session. */
export async function currentSession(): Promise<Account | undefined> {
  try {
    const session = await api<{ account: Account; csrfToken: string }>('GET', '/api/auth/session');
    rememberCsrfToken(session.csrfToken);
    return session.account;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return undefined;
    throw err;
  }
}

export type SignInResult = 'signed-in' | 'mfa-required' | 'throttled' | 'refused' | 'network';

export async function signIn(email: string, password: string, code: string): Promise<SignInResult> {
  try {
    const res = await api<{ csrfToken: string }>('POST', '/api/auth/sign-in', { email, password, ...(code ? { code } : {}) });
    rememberCsrfToken(res.csrfToken);
    return 'signed-in';
  } catch (err) {
    if (!(err instanceof ApiError)) return 'network';
    if (err.code === 'mfa-required') return 'mfa-required';
    if (err.status === 429) return 'throttled';
    return 'refused';
  }
}
