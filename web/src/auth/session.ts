import { useEffect, useState } from 'react';
import { ApiError, api, backToSignIn } from '../app/api.js';

export interface Account {
  id: string;
  email: string;
  role: string;
  name?: string;
}

/** The signed-in account, or undefined when this browser has no valid session. */
export async function currentSession(): Promise<Account | undefined> {
  try {
    // api() keeps the session's CSRF token for the page's next change.
    const session = await api<{ account: Account; csrfToken: string }>('GET', '/api/auth/session');
    return session.account;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return undefined;
    throw err;
  }
}

export type SignInResult = 'signed-in' | 'mfa-required' | 'throttled' | 'refused' | 'network';

export async function signIn(email: string, password: string, code: string): Promise<SignInResult> {
  try {
    await api('POST', '/api/auth/sign-in', { email, password, ...(code ? { code } : {}) });
    return 'signed-in';
  } catch (err) {
    if (!(err instanceof ApiError)) return 'network';
    if (err.code === 'mfa-required') return 'mfa-required';
    if (err.status === 429) return 'throttled';
    return 'refused';
  }
}

/**
 * A staff area's signed-in account: undefined while asked, the account once known; no session
 * sends the user to sign-in (and back here). A failure to ask is given to `onError`.
 */
export function useSignedInAccount(onError: (err: unknown) => void): Account | undefined {
  const [account, setAccount] = useState<Account>();
  useEffect(() => {
    let live = true;
    currentSession().then(
      (found) => {
        if (!live) return;
        if (!found) return backToSignIn();
        setAccount(found);
      },
      (err: unknown) => live && onError(err),
    );
    return () => {
      live = false;
    };
    // Asked once per page: onError only reports.
  }, []);
  return account;
}
