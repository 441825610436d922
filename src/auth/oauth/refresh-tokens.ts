import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { lockGrant } from './connected-apps.js';
import { digest } from './oauth-clients.js';

/**
 * How long an app keeps access without the user approving it again: the family's first refresh
 * token sets it, and rotation never extends it (a lost phone's app stops within this time at the
 * latest; revoking the client, or disabling the account, stops it at once).
 */
export const REFRESH_TOKEN_DAYS = 30;

export interface RefreshGrant {
  family: Buffer;
  clientId: string;
  accountId: string;
  scopes: string;
  patient: string | null;
  expires: Date;
}

export type RefreshOutcome = { kind: 'refreshed'; grant: RefreshGrant } | { kind: 'unknown' } | { kind: 'expired' } | { kind: 'reused' };

/** A new refresh token of this family (only its digest is stored). */
export async function issueRefreshToken(db: Kysely<Database>, grant: RefreshGrant, now = new Date()): Promise<string> {
  const token = randomBytes(32).toString('base64url');
  await db
    .insertInto('oauth_refresh_token')
    .values({ token_hash: digest(token), family: grant.family, client_id: grant.clientId, account_id: grant.accountId, scopes: grant.scopes, patient: grant.patient, issued: now, expires: grant.expires, used: null })
    .execute();
  return token;
}

export const newFamilyExpiry = (now: Date) => new Date(now.getTime() + REFRESH_TOKEN_DAYS * 86_400_000);

/**
 * Spends a refresh token, once (one statement: of two nodes only one wins). A token presented a
 * second time means two parties hold it: the whole family ends, refresh and access tokens alike
 * (OAuth 2.0 Security BCP §4.14.2).
 */
export async function useRefreshToken(db: Kysely<Database>, token: string, now = new Date()): Promise<RefreshOutcome> {
  if (token.length < 1 || token.length > 256) return { kind: 'unknown' };
  const hash = digest(token);
  const row = await db.updateTable('oauth_refresh_token').set({ used: now }).where('token_hash', '=', hash).where('used', 'is', null).returningAll().executeTakeFirst();
  if (!row) {
    const spent = await db.selectFrom('oauth_refresh_token').select('family').where('token_hash', '=', hash).executeTakeFirst();
    if (!spent) return { kind: 'unknown' };
    await revokeFamily(db, Buffer.from(spent.family));
    return { kind: 'reused' };
  }
  if (new Date(row.expires).getTime() <= now.getTime()) return { kind: 'expired' };
  // Spent tokens are kept until the family expires, so a replay is still recognised; then swept.
  await db.deleteFrom('oauth_refresh_token').where('expires', '<', now).execute();
  return { kind: 'refreshed', grant: { family: Buffer.from(row.family), clientId: row.client_id, accountId: row.account_id, scopes: row.scopes, patient: row.patient, expires: new Date(row.expires) } };
}

/**
 * Ends a grant after a replay (of its code or of a refresh token): its code row, refresh tokens and
 * access tokens, under the grant's lock (connected-apps.ts). Issuing takes the same lock and checks
 * that the code row (or a refresh token) still exists, so a redemption or refresh racing this one
 * either issued before and loses its tokens here, or comes after and issues nothing: the missing
 * code row is the marker that refuses every later issuance for this grant.
 */
export async function revokeFamily(db: Kysely<Database>, family: Buffer): Promise<void> {
  await db.transaction().execute(async (tx) => {
    await lockGrant(tx, family);
    await tx.deleteFrom('oauth_authorization_code').where('code_hash', '=', family).execute();
    await tx.deleteFrom('oauth_refresh_token').where('family', '=', family).execute();
    await tx.deleteFrom('oauth_access_token').where('grant_hash', '=', family).execute();
  });
}
