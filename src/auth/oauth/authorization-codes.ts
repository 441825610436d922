import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { ACCESS_TOKEN_SECONDS, digest } from './oauth-clients.js';
import { revokeFamily } from './refresh-tokens.js';

/** How long an authorization code may wait for its redemption: the app redeems it at once. */
export const CODE_SECONDS = 60;

/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
const VERIFIER_RE = /^[A-Za-z0-9\-._~]{43,128}$/;
/** BASE64URL(SHA-256(verifier)) without padding is always 43 characters. */
export const CHALLENGE_RE = /^[A-Za-z0-9_-]{43}$/;

export interface NewCode {
  clientId: string;
  accountId: string;
  redirectUri: string;
  scopes: string;
  codeChallenge: string;
  /** `Patient/<id>` of the launch context, when launch/patient was granted. */
  patient: string | null;
}

export interface RedeemedCode extends NewCode {
  codeHash: Buffer;
}

export type Redemption = { kind: 'redeemed'; code: RedeemedCode } | { kind: 'unknown' } | { kind: 'expired' } | { kind: 'reused' };

/** Stores a new code (its digest only) and answers the code itself, for the redirect. */
export async function issueCode(db: Kysely<Database>, input: NewCode, now = new Date()): Promise<string> {
  const code = randomBytes(32).toString('base64url');
  await db
    .insertInto('oauth_authorization_code')
    .values({
      code_hash: digest(code),
      client_id: input.clientId,
      account_id: input.accountId,
      redirect_uri: input.redirectUri,
      scopes: input.scopes,
      code_challenge: input.codeChallenge,
      patient: input.patient,
      issued: now,
      expires: new Date(now.getTime() + CODE_SECONDS * 1000),
      redeemed: null,
    })
    .execute();
  // Redeemed and expired codes are kept as long as a token from them may live (for reuse detection), then swept.
  await db.deleteFrom('oauth_authorization_code').where('expires', '<', new Date(now.getTime() - ACCESS_TOKEN_SECONDS * 1000)).execute();
  return code;
}

/**
 * Marks the code redeemed, once, in one statement: of two nodes redeeming the same code at the
 * same moment exactly one gets it. Whatever the caller then finds wrong (client, redirect URI,
 * verifier), the code is spent: each code gets one try. A second use revokes every token the
 * first one gave, refresh tokens included (RFC 6749 §4.1.2: the code may have been stolen), under
 * the grant's lock; it also deletes the code row, so a first use still issuing at that moment gets
 * nothing (and a third use answers `unknown`: there is nothing left to revoke).
 */
export async function redeemCode(db: Kysely<Database>, code: string, now = new Date()): Promise<Redemption> {
  if (code.length < 1 || code.length > 256) return { kind: 'unknown' };
  const codeHash = digest(code);
  const row = await db
    .updateTable('oauth_authorization_code')
    .set({ redeemed: now })
    .where('code_hash', '=', codeHash)
    .where('redeemed', 'is', null)
    .returningAll()
    .executeTakeFirst();
  if (!row) {
    const spent = await db.selectFrom('oauth_authorization_code').select('code_hash').where('code_hash', '=', codeHash).executeTakeFirst();
    if (!spent) return { kind: 'unknown' };
    await revokeFamily(db, codeHash);
    return { kind: 'reused' };
  }
  if (new Date(row.expires).getTime() <= now.getTime()) return { kind: 'expired' };
  return {
    kind: 'redeemed',
    code: { codeHash, clientId: row.client_id, accountId: row.account_id, redirectUri: row.redirect_uri, scopes: row.scopes, codeChallenge: row.code_challenge, patient: row.patient },
  };
}

/** Whether the verifier is the one the challenge was made from (S256, RFC 7636 §4.6), in constant time. */
export function verifierMatches(verifier: string, challenge: string): boolean {
  if (!VERIFIER_RE.test(verifier)) return false;
  const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
  const expected = Buffer.from(challenge);
  return computed.length === expected.length && timingSafeEqual(computed, expected);
}
