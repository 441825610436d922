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

/** The invitation behind a token if it can still be accepted; unknown, used, revoked and expired all give undefined. */
export async function usableInvitation(db: Kysely<Database>, token: string, now = new Date()): Promise<InvitationRow | undefined> {
  if (!TOKEN.test(token)) return undefined;
  return db.selectFrom('invitation').selectAll().where('token_hash', '=', hashToken(token)).where('used_at', 'is', null).where('revoked_at', 'is', null).where('expires', '>', now).executeTakeFirst();
}

/** Takes the invitation for one acceptance: true for exactly one of any number of concurrent callers. */
export async function claimInvitation(db: Kysely<Database>, id: string, now = new Date()): Promise<boolean> {
  // Revocation takes the same row with the same kind of guarded update: one of the two wins.
  const claimed = await db.updateTable('invitation').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).where('revoked_at', 'is', null).where('expires', '>', now).executeTakeFirst();
  return Number(claimed.numUpdatedRows) === 1;
}

/** Gives a claimed invitation back when the acceptance failed for a reason the invitee can fix (a weak password). */
export async function releaseInvitation(db: Kysely<Database>, id: string): Promise<void> {
  await db.updateTable('invitation').set({ used_at: null }).where('id', '=', id).where('account_id', 'is', null).execute();
}

export async function markInvitationAccepted(db: Kysely<Database>, id: string, accountId: string): Promise<void> {
  await db.updateTable('invitation').set({ account_id: accountId }).where('id', '=', id).execute();
}

/** A pending invitation as its inviter or an admin sees it: never the token or its digest. */
export interface PendingInvitation {
  id: string;
  email: string;
  role: Role;
  displayName: string | null;
  /** `Patient/<id>` for a patient's invitation, else null. */
  patientRef: string | null;
  invitedBy: string;
  created: Date;
  expires: Date;
}

export const PENDING_LIST_MAX = 500;

/**
 * Invitations still open (not accepted, not revoked, not expired), newest first; only those sent
 * by `invitedBy` when given (a clinician sees their own).
 */
export async function pendingInvitations(db: Kysely<Database>, filter: { invitedBy?: string; limit?: number } = {}, now = new Date()): Promise<PendingInvitation[]> {
  let query = db
    .selectFrom('invitation')
    .select(['id', 'email', 'role', 'display_name', 'fhir_ref', 'invited_by', 'created', 'expires'])
    .where('used_at', 'is', null)
    .where('revoked_at', 'is', null)
    .where('expires', '>', now);
  if (filter.invitedBy !== undefined) query = query.where('invited_by', '=', filter.invitedBy);
  const rows = await query.orderBy('created', 'desc').orderBy('id').limit(Math.min(filter.limit ?? PENDING_LIST_MAX, PENDING_LIST_MAX)).execute();
  return rows.map((r) => ({
    id: r.id,
    email: r.email,
    role: r.role as Role,
    displayName: r.display_name,
    patientRef: r.fhir_ref?.startsWith('Patient/') ? r.fhir_ref : null,
    invitedBy: r.invited_by,
    created: new Date(r.created),
    expires: new Date(r.expires),
  }));
}

export type RevokeOutcome = { kind: 'revoked'; invitation: InvitationRow } | { kind: 'not-found' } | { kind: 'not-pending'; invitation: InvitationRow };

/**
 * Revokes a pending invitation; `onlyInvitedBy` limits it to the inviter's own (a clinician).
 * One guarded update, so an acceptance racing it either wins (and the revocation says
 * not-pending) or finds the link gone.
 */
export async function revokeInvitation(db: Kysely<Database>, id: string, by: string, onlyInvitedBy?: string, now = new Date()): Promise<RevokeOutcome> {
  let update = db.updateTable('invitation').set({ revoked_at: now, revoked_by: by }).where('id', '=', id).where('used_at', 'is', null).where('revoked_at', 'is', null).where('expires', '>', now);
  if (onlyInvitedBy !== undefined) update = update.where('invited_by', '=', onlyInvitedBy);
  const revoked = await update.returningAll().executeTakeFirst();
  if (revoked) return { kind: 'revoked', invitation: revoked };
  const row = await db.selectFrom('invitation').selectAll().where('id', '=', id).executeTakeFirst();
  // Someone else's invitation is, to a clinician, no invitation at all.
  if (!row || (onlyInvitedBy !== undefined && row.invited_by !== onlyInvitedBy)) return { kind: 'not-found' };
  return { kind: 'not-pending', invitation: row };
}
