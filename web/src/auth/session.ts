import { useEffect, useState } from 'react';
import { ApiError, api, backToSignIn, request } from '../app/api.js';
import { adoptClinicTimeZone } from '../app/clinic-time.js';

export interface Account {
  id: string;
  email: string;
  role: string;
  name?: string;
}

let emailEnabled = false;

/** Whether this installation e-mails links and invitations (as of the last session check); off until known. */
export function canSendEmail(): boolean {
  return emailEnabled;
}

/** The signed-in account, or undefined when this browser has no valid session. */
export async function currentSession(): Promise<Account | undefined> {
  try {
    // api() keeps the session's CSRF token for the page's next change.
    const session = await api<{ account: Account; csrfToken: string; clinic?: { timeZone: string }; emailEnabled?: boolean }>('GET', '/api/auth/session');
    emailEnabled = session.emailEnabled === true;
    // Before the page renders any time: they are all shown in the clinic's zone.
    adoptClinicTimeZone(session);
    return session.account;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return undefined;
    throw err;
  }
}

export type SignInResult = 'signed-in' | 'mfa-required' | 'throttled' | 'refused' | 'network';

export async function signIn(email: string, password: string, code: string): Promise<SignInResult> {
  return (await signInStep(email, password, code)).result;
}

/** A sign-in step's outcome; a throttled one says how long to wait when the server named it (Retry-After). */
export interface SignInStep {
  result: SignInResult;
  passkeyOptions?: Record<string, unknown>;
  retryAfterSeconds?: number;
}

/**
 * The password step of a sign-in, with what the second step needs: when the account has a
 * passkey, the right password's `mfa-required` answer carries the options for it.
 */
export async function signInStep(email: string, password: string, code: string): Promise<SignInStep> {
  try {
    // A public route: no session yet, so no CSRF token to ask for first (the answer brings the new session's).
    await request('POST', '/api/auth/sign-in', { body: { email, password, ...(code ? { code } : {}) }, publicRoute: true });
    return { result: 'signed-in' };
  } catch (err) {
    if (!(err instanceof ApiError)) return { result: 'network' };
    if (err.code === 'mfa-required') {
      const options = (err.body as { passkeyOptions?: Record<string, unknown> } | undefined)?.passkeyOptions;
      return { result: 'mfa-required', ...(options ? { passkeyOptions: options } : {}) };
    }
    return throttledOrRefused(err);
  }
}

/**
 * The passkey step: the browser asks the authenticator (fingerprint, face, PIN) to sign the
 * challenge, and the node checks it. 'cancelled' when the user or the browser gave up.
 */
export async function signInWithPasskey(options: Record<string, unknown>): Promise<SignInStep | { result: 'cancelled' }> {
  // Loaded only when used: most sign-ins never touch a passkey.
  const { startAuthentication } = await import('@simplewebauthn/browser');
  let response;
  try {
    response = await startAuthentication({ optionsJSON: options as never });
  } catch {
    return { result: 'cancelled' };
  }
  try {
    await request('POST', '/api/auth/passkeys/authenticate/verify', { body: { response }, publicRoute: true });
    return { result: 'signed-in' };
  } catch (err) {
    if (!(err instanceof ApiError)) return { result: 'network' };
    return throttledOrRefused(err);
  }
}

function throttledOrRefused(err: ApiError): SignInStep {
  if (err.status !== 429) return { result: 'refused' };
  return err.retryAfterSeconds === undefined ? { result: 'throttled' } : { result: 'throttled', retryAfterSeconds: err.retryAfterSeconds };
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
