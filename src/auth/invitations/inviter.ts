import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Who sent an invitation, as the invitee's page shows it: a name and a role, never an id or an email. */
export interface Inviter {
  name: string | null;
  role: 'clinician' | 'reception' | 'admin' | 'installation';
}

/**
 * The inviter behind an invitation's `invited_by` (an audit actor ref: `Practitioner/…` or
 * `account:…` for a person, `admin-token` for the installation's bootstrap token, `client:…`
 * for an integration).
 */
export async function inviterOf(db: Kysely<Database>, invitedBy: string): Promise<Inviter> {
  const byAccount = invitedBy.startsWith('account:');
  const accountId = invitedBy.slice('account:'.length);
  // Anyone else (the bootstrap token, the system, an integration) is the clinic itself to the invitee.
  if (!(byAccount ? UUID.test(accountId) : invitedBy.startsWith('Practitioner/'))) return { name: null, role: 'installation' };
  const row = await db
    .selectFrom('account')
    .select(['display_name', 'role'])
    .where(byAccount ? 'id' : 'fhir_ref', '=', byAccount ? accountId : invitedBy)
    .executeTakeFirst();
  return { name: row?.display_name ?? null, role: row?.role === 'admin' || row?.role === 'reception' ? row.role : 'clinician' };
}
