import { api } from '../app/api.js';

/** The sensitive actions the server re-authenticates for (src/auth/passkeys/passkeys.ts REAUTH_PURPOSES). */
export type ReauthPurpose = 'break-glass' | 'export' | 'mfa-change';

/**
 * A passkey assertion for one sensitive action: the node issues a challenge bound to this session
 * and this action, and the authenticator (fingerprint, face, PIN) signs it. The request it goes
 * with carries it as `passkey`, beside the password. Undefined when the user or the browser gave up;
 * an ApiError when the node refused to issue a challenge (409 `no-passkey`).
 */
export async function passkeyAssertion(purpose: ReauthPurpose): Promise<Record<string, unknown> | undefined> {
  const options = await api<Record<string, unknown>>('POST', '/api/auth/reauth/passkey/options', { purpose });
  // Loaded only when used: most re-authentications are a typed code.
  const { startAuthentication } = await import('@simplewebauthn/browser');
  try {
    return (await startAuthentication({ optionsJSON: options as never })) as unknown as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Whether the signed-in account has a passkey to re-authenticate with (GET /api/auth/mfa: counts only). */
export async function hasPasskey(): Promise<boolean> {
  const mfa = await api<{ passkeys?: number }>('GET', '/api/auth/mfa');
  return (mfa.passkeys ?? 0) > 0;
}
