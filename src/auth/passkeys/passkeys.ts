import type { Kysely } from 'kysely';
import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type PublicKeyCredentialCreationOptionsJSON,
  type PublicKeyCredentialRequestOptionsJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { Database } from '../../db/schema.js';

/**
 * Passkeys (WebAuthn) as a second factor. The relying party is this service as browsers reach
 * it: RP id the host name of TELESALUD_PUBLIC_URL, origin its origin. Challenges live in the
 * database for CHALLENGE_SECONDS and are claimed (deleted) by the step that uses them, so any node
 * may serve the next step and none can be replayed.
 */
export interface RelyingParty {
  id: string;
  origin: string;
  name: string;
}

export const CHALLENGE_SECONDS = 300;
const MAX_PASSKEYS = 20;

export function relyingParty(publicUrl: string): RelyingParty {
  const url = new URL(publicUrl);
  return { id: url.hostname, origin: url.origin, name: 'telesalud' };
}

/** The sensitive actions a signed-in user proves themselves again for (src/auth/access/reauthenticate.ts). */
export const REAUTH_PURPOSES = ['break-glass', 'export', 'mfa-change'] as const;
export type ReauthPurpose = (typeof REAUTH_PURPOSES)[number];

type ChallengePurpose = Database['webauthn_challenge']['purpose'];
/** Who may answer a re-authentication challenge: the account, from the session it was issued to. */
interface ChallengeBinding {
  accountId: string;
  sessionId: string;
}

async function storeChallenge(db: Kysely<Database>, accountId: string, purpose: ChallengePurpose, challenge: string, now: Date, sessionId: string | null = null): Promise<void> {
  await db.deleteFrom('webauthn_challenge').where('expires', '<', now).execute();
  await db.insertInto('webauthn_challenge').values({ challenge, account_id: accountId, purpose, expires: new Date(now.getTime() + CHALLENGE_SECONDS * 1000), session_id: sessionId }).execute();
}

/**
 * The challenge a response answers (from its clientDataJSON), claimed: it can serve no second
 * attempt. With a binding only a challenge issued to that account and session is claimed (one of
 * another session stays where it is, for its own session to use).
 */
async function claimChallenge(db: Kysely<Database>, response: { response: { clientDataJSON: string } }, purpose: ChallengePurpose, now: Date, binding?: ChallengeBinding): Promise<{ challenge: string; accountId: string } | undefined> {
  let challenge: unknown;
  try {
    challenge = JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8'))?.challenge;
  } catch {
    return undefined;
  }
  if (typeof challenge !== 'string' || challenge.length > 200) return undefined;
  let claim = db.deleteFrom('webauthn_challenge').where('challenge', '=', challenge).where('purpose', '=', purpose).where('expires', '>', now);
  if (binding) claim = claim.where('account_id', '=', binding.accountId).where('session_id', '=', binding.sessionId);
  const row = await claim.returning('account_id').executeTakeFirst();
  return row ? { challenge, accountId: row.account_id } : undefined;
}

export async function registrationOptions(db: Kysely<Database>, rp: RelyingParty, account: { id: string; email: string }, now = new Date()): Promise<PublicKeyCredentialCreationOptionsJSON> {
  const existing = await db.selectFrom('passkey_credential').select(['id', 'transports']).where('account_id', '=', account.id).execute();
  const options = await generateRegistrationOptions({
    rpName: rp.name,
    rpID: rp.id,
    userName: account.email,
    userID: Buffer.from(account.id.replace(/-/g, ''), 'hex'),
    attestationType: 'none',
    excludeCredentials: existing.map((c) => ({ id: c.id, ...(c.transports ? { transports: c.transports.split(',') } : {}) })),
    authenticatorSelection: { residentKey: 'preferred', userVerification: 'preferred' },
    timeout: CHALLENGE_SECONDS * 1000,
  });
  await storeChallenge(db, account.id, 'register', options.challenge, now);
  return options;
}

export type PasskeyRegistration = { ok: true; id: string; label: string } | { ok: false; reason: string };

/** Verifies a new passkey for the account whose challenge it answers, and stores it. */
export async function registerPasskey(db: Kysely<Database>, rp: RelyingParty, accountId: string, response: RegistrationResponseJSON, label: string, now = new Date()): Promise<PasskeyRegistration> {
  const claimed = await claimChallenge(db, response, 'register', now);
  if (!claimed || claimed.accountId !== accountId) return { ok: false, reason: 'no-challenge' };
  let verified;
  try {
    verified = await verifyRegistrationResponse({ response, expectedChallenge: claimed.challenge, expectedOrigin: rp.origin, expectedRPID: rp.id, requireUserVerification: false });
  } catch {
    return { ok: false, reason: 'not-verified' };
  }
  if (!verified.verified) return { ok: false, reason: 'not-verified' };
  const { credential } = verified.registrationInfo;
  const count = await db.selectFrom('passkey_credential').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', accountId).executeTakeFirst();
  if (Number(count?.n ?? 0) >= MAX_PASSKEYS) return { ok: false, reason: 'too-many' };
  const inserted = await db
    .insertInto('passkey_credential')
    .values({ id: credential.id, account_id: accountId, public_key: Buffer.from(credential.publicKey), counter: credential.counter, transports: (credential.transports ?? []).join(','), label, created: now, last_used: null })
    .onConflict((oc) => oc.column('id').doNothing())
    .executeTakeFirst();
  if (Number(inserted.numInsertedOrUpdatedRows ?? 0) !== 1) return { ok: false, reason: 'already-registered' };
  return { ok: true, id: credential.id, label };
}

/** Options for the passkey step of a sign-in whose password was right (the challenge stands for that). */
export async function signInOptions(db: Kysely<Database>, rp: RelyingParty, accountId: string, now = new Date()): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
  return assertionOptions(db, rp, accountId, 'sign-in', null, now);
}

/**
 * Options for re-authenticating a signed-in user with a passkey before one sensitive action: the
 * challenge answers only for this account, this session and this action, once, within CHALLENGE_SECONDS.
 * Undefined when the account has no passkey.
 */
export async function reauthOptions(db: Kysely<Database>, rp: RelyingParty, binding: ChallengeBinding, purpose: ReauthPurpose, now = new Date()): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
  // One open challenge per session and action: asking again replaces it, so a session can't pile them up.
  await db.deleteFrom('webauthn_challenge').where('session_id', '=', binding.sessionId).where('account_id', '=', binding.accountId).where('purpose', '=', `reauth:${purpose}`).execute();
  return assertionOptions(db, rp, binding.accountId, `reauth:${purpose}`, binding.sessionId, now);
}

async function assertionOptions(db: Kysely<Database>, rp: RelyingParty, accountId: string, purpose: ChallengePurpose, sessionId: string | null, now: Date): Promise<PublicKeyCredentialRequestOptionsJSON | undefined> {
  const credentials = await db.selectFrom('passkey_credential').select(['id', 'transports']).where('account_id', '=', accountId).execute();
  if (credentials.length === 0) return undefined;
  const options = await generateAuthenticationOptions({
    rpID: rp.id,
    allowCredentials: credentials.map((c) => ({ id: c.id, ...(c.transports ? { transports: c.transports.split(',') } : {}) })),
    userVerification: 'preferred',
    timeout: CHALLENGE_SECONDS * 1000,
  });
  await storeChallenge(db, accountId, purpose, options.challenge, now, sessionId);
  return options;
}

/**
 * Verifies a passkey assertion against a sign-in challenge: a real signature check with the
 * stored public key, origin and RP id, and a signature counter that must move forward (a
 * cloned authenticator shows up as a counter that doesn't). `accountId` is known once the
 * challenge was claimed, so a failure can be counted against the account.
 */
export async function verifyPasskeySignIn(db: Kysely<Database>, rp: RelyingParty, response: AuthenticationResponseJSON, now = new Date()): Promise<{ ok: true; accountId: string } | { ok: false; accountId?: string }> {
  const claimed = await claimChallenge(db, response, 'sign-in', now);
  if (!claimed) return { ok: false };
  return (await assertionVerified(db, rp, response, claimed, now)) ? { ok: true, accountId: claimed.accountId } : { ok: false, accountId: claimed.accountId };
}

/**
 * Verifies a passkey assertion made to re-authenticate: its challenge must have been issued to this
 * account's session for this very action, and not yet used or expired; then the same signature
 * and counter checks as a sign-in.
 */
export async function verifyPasskeyReauth(db: Kysely<Database>, rp: RelyingParty, response: AuthenticationResponseJSON, binding: ChallengeBinding, purpose: ReauthPurpose, now = new Date()): Promise<boolean> {
  const claimed = await claimChallenge(db, response, `reauth:${purpose}`, now, binding);
  return claimed !== undefined && (await assertionVerified(db, rp, response, claimed, now));
}

/** The signature of a claimed challenge, by one of the account's stored passkeys, with a counter that moved forward. */
async function assertionVerified(db: Kysely<Database>, rp: RelyingParty, response: AuthenticationResponseJSON, claimed: { challenge: string; accountId: string }, now: Date): Promise<boolean> {
  const stored = await db.selectFrom('passkey_credential').selectAll().where('id', '=', response.id).where('account_id', '=', claimed.accountId).executeTakeFirst();
  if (!stored) return false;
  const counter = Number(stored.counter);
  let verified;
  try {
    verified = await verifyAuthenticationResponse({
      response,
      expectedChallenge: claimed.challenge,
      expectedOrigin: rp.origin,
      expectedRPID: rp.id,
      credential: { id: stored.id, publicKey: new Uint8Array(stored.public_key), counter, ...(stored.transports ? { transports: stored.transports.split(',') } : {}) },
      requireUserVerification: false,
    });
  } catch {
    return false;
  }
  if (!verified.verified) return false;
  // Compare-and-set: two assertions racing with the same counter can't both pass.
  const advanced = await db
    .updateTable('passkey_credential')
    .set({ counter: verified.authenticationInfo.newCounter, last_used: now })
    .where('id', '=', stored.id)
    .where('counter', '=', counter)
    .executeTakeFirst();
  return Number(advanced.numUpdatedRows) === 1;
}

/**
 * Removes one of the account's passkeys. With `keepOneFactor` (the policy requires a second factor
 * of the role) the last factor stays; when no factor remains, the recovery codes go too (they
 * stand in for a factor, they are not one). In one transaction, so two removals at once can't
 * leave an account that must have a factor without any.
 */
export async function removePasskey(db: Kysely<Database>, accountId: string, credentialId: string, options: { keepOneFactor: boolean }): Promise<'removed' | 'not-found' | 'last-factor'> {
  return db.transaction().execute(async (tx) => {
    const account = await tx.selectFrom('account').select('totp_secret_sealed').where('id', '=', accountId).forUpdate().executeTakeFirst();
    if (!account) return 'not-found';
    const passkeys = await tx.selectFrom('passkey_credential').select('id').where('account_id', '=', accountId).execute();
    if (!passkeys.some((p) => p.id === credentialId)) return 'not-found';
    const factorsLeft = passkeys.length - 1 + (account.totp_secret_sealed ? 1 : 0);
    if (factorsLeft === 0 && options.keepOneFactor) return 'last-factor';
    await tx.deleteFrom('passkey_credential').where('account_id', '=', accountId).where('id', '=', credentialId).execute();
    if (factorsLeft === 0) await tx.deleteFrom('recovery_code').where('account_id', '=', accountId).execute();
    return 'removed';
  });
}

export async function listPasskeys(db: Kysely<Database>, accountId: string): Promise<{ id: string; label: string; created: string; lastUsed: string | null }[]> {
  const rows = await db.selectFrom('passkey_credential').select(['id', 'label', 'created', 'last_used']).where('account_id', '=', accountId).orderBy('created').execute();
  return rows.map((r) => ({ id: r.id, label: r.label, created: new Date(r.created).toISOString(), lastUsed: r.last_used ? new Date(r.last_used).toISOString() : null }));
}
