import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Kysely, Selectable } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Role } from '../roles.js';

/**
 * Invitations: a single-use, expiring link that lets someone set the password of an account made
 * for them (a patient linked to their Patient record, or staff). The link carries 32 random bytes;
 * only their SHA-256 is stored, so a database dump opens no account.
 */
export const INVITATION_DAYS = 7;
export const INVITATION_MAX_DAYS = 30;
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export type InvitationRow = Selectable<Database['invitation']>;

const hashToken = (token: string) => createHash('sha256').update(token).digest();

export async function createInvitation(
  db: Kysely<Database>,
  input: { email: string; role: Role; displayName: string | null; fhirRef: string | null; invitedBy: string; days?: number },
  now = new Date(),
): Promise<{ id: string; token: string; expiresAt: Date }> {
  const id = randomUUID();
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(now.getTime() + (input.days ?? INVITATION_DAYS) * 86_400_000);
  await db
    .insertInto('invitation')
    .values({ id, token_hash: hashToken(token), email: input.email, role: input.role, display_name: input.displayName, fhir_ref: input.fhirRef, invited_by: input.invitedBy, created: now, expires: expiresAt, used_at: null, account_id: null })
    .execute();
  return { id, token, expiresAt };
}

/** The invitation behind a token if it can still be accepted; unknown, used and expired all give undefined. */
export async function usableInvitation(db: Kysely<Database>, token: string, now = new Date()): Promise<InvitationRow | undefined> {
  if (!TOKEN.test(token)) return undefined;
  return db.selectFrom('invitation').selectAll().where('token_hash', '=', hashToken(token)).where('used_at', 'is', null).where('expires', '>', now).executeTakeFirst();
}

/** Takes the invitation for one acceptance: true for exactly one of any number of concurrent callers. */
export async function claimInvitation(db: Kysely<Database>, id: string, now = new Date()): Promise<boolean> {
  const claimed = await db.updateTable('invitation').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).where('expires', '>', now).executeTakeFirst();
  return Number(claimed.numUpdatedRows) === 1;
}

/** Gives a claimed invitation back when the acceptance failed for a reason the invitee can fix (a weak password). */
export async function releaseInvitation(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('invitation').set({ used_at: null }).where('id', '=', id).where('account_id', 'is', null).execute();
}

export async function markInvitationAccepted(db: Kysely<Database>, id: string, accountId: string): Promise<void> {
  await db.updateTable('invitation').set({ account_id: accountId }).where('id', '=', id).execute();
}
