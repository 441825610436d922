import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import { LAUNCH_PATIENT, OFFLINE_ACCESS } from './app-scopes.js';
import { isClientId } from './oauth-clients.js';
import { isResourceScope, parseResourceScope, type Interaction } from './smart-scopes.js';

/**
 * The apps a person has let act for them (SMART App Launch), as that person sees and ends them.
 *
 * A grant is what one approval started: its authorization code, the access tokens redeemed from it
 * and, with offline_access, its family of refresh tokens (all keyed by the code's digest: the
 * family). There is no table of grants: an app holds a grant exactly as long as one of those rows
 * can still give or carry access, so the list is read from them and can never show an app that
 * no longer has access, nor miss one that has.
 *
 * Revoking: access tokens are opaque and every request looks its token up in the database
 * (oauth-clients.ts actorForAccessToken: one primary-key lookup that already checks the client and
 * the account), so deleting the rows stops them on every node at the next request — no cache to
 * invalidate, no revocation list to share, and nothing added to the hot path. What needs care is a
 * token being issued while the grant is revoked: issuing (token-service.ts) and revoking take the
 * same per-grant advisory lock, and issuing checks under it that the grant still exists. Whichever
 * comes second sees what the first did: a revoked grant issues nothing more.
 */

/** The advisory-lock class of grants (two-int form, so it can't meet the audit chain's one-bigint lock). */
const GRANT_LOCK_CLASS = 0x6f617574; // "oaut"

/** Takes the grant's lock for the rest of the transaction. */
export async function lockGrant(tx: Transaction<Database>, family: Buffer): Promise<void> {
  await sql`select pg_advisory_xact_lock(${GRANT_LOCK_CLASS}::int4, ${family.readInt32BE(0)}::int4)`.execute(tx);
}

/** One kind of resource the app may reach, as the approval page showed it (web/src/auth/AuthorizePage.tsx words it). */
export interface GrantedScope {
  level: 'patient' | 'user';
  type: string;
  interactions: Interaction[];
}

export interface ConnectedApp {
  clientId: string;
  name: string;
  scopes: GrantedScope[];
  launchPatient: boolean;
  /** It holds a refresh token: it keeps access without the person until `accessUntil`. */
  offlineAccess: boolean;
  /** The latest approval still in force. */
  approved: Date;
  /** When it last got a token (an access token lives 10 minutes: the app was using the record around then). */
  lastUsed: Date;
  /** When its access ends unless the person approves it again. */
  accessUntil: Date;
}

interface GrantRow {
  client_id: string;
  family: Buffer;
  scopes: string;
  issued: Date | string;
  expires: Date | string;
  kind: 'code' | 'access' | 'refresh';
  live: boolean;
}

/** Every row of this account's grants (optionally one app's), live or spent, with whether it still gives access. */
async function grantRows(db: Kysely<Database> | Transaction<Database>, accountId: string, now: Date, clientId?: string): Promise<GrantRow[]> {
  const forClient = clientId === undefined ? sql`` : sql`and client_id = ${clientId}`;
  const result = await sql<GrantRow>`
    select client_id, code_hash as family, scopes, issued, expires, 'code' as kind, (redeemed is null and expires > ${now}) as live
      from oauth_authorization_code where account_id = ${accountId} ${forClient}
    union all
    select client_id, grant_hash as family, scopes, issued, expires, 'access' as kind, (expires > ${now}) as live
      from oauth_access_token where account_id = ${accountId} and grant_hash is not null ${forClient}
    union all
    select client_id, family, scopes, issued, expires, 'refresh' as kind, (used is null and expires > ${now}) as live
      from oauth_refresh_token where account_id = ${accountId} ${forClient}`.execute(db);
  return result.rows.map((r) => ({ ...r, family: Buffer.from(r.family) }));
}

/** The apps holding a grant for this account, most recently used first. */
export async function listConnectedApps(db: Kysely<Database>, accountId: string, now = new Date()): Promise<ConnectedApp[]> {
  const rows = await grantRows(db, accountId, now);
  // A grant counts while one of its rows can still give access; its spent rows then date it.
  const liveFamilies = new Set(rows.filter((r) => r.live).map((r) => r.family.toString('hex')));
  const byClient = new Map<string, GrantRow[]>();
  for (const row of rows) {
    if (!liveFamilies.has(row.family.toString('hex'))) continue;
    byClient.set(row.client_id, [...(byClient.get(row.client_id) ?? []), row]);
  }
  if (byClient.size === 0) return [];
  const names = await db.selectFrom('oauth_client').select(['id', 'name']).where('id', 'in', [...byClient.keys()]).where('status', '=', 'active').execute();
  const apps: ConnectedApp[] = [];
  for (const { id, name } of names) {
    const appRows = byClient.get(id)!;
    const time = (v: Date | string) => new Date(v).getTime();
    // Approved: when each grant began (its earliest row), the latest of those.
    const started = new Map<string, number>();
    for (const r of appRows) {
      const key = r.family.toString('hex');
      started.set(key, Math.min(started.get(key) ?? Infinity, time(r.issued)));
    }
    const tokens = appRows.filter((r) => r.kind !== 'code');
    const live = appRows.filter((r) => r.live);
    const words = new Set(appRows.flatMap((r) => r.scopes.split(' ')));
    apps.push({
      clientId: id,
      name,
      scopes: describeScopes(words),
      launchPatient: words.has(LAUNCH_PATIENT),
      offlineAccess: live.some((r) => r.kind === 'refresh'),
      approved: new Date(Math.max(...started.values())),
      lastUsed: new Date(Math.max(...(tokens.length ? tokens : appRows).map((r) => time(r.issued)))),
      accessUntil: new Date(Math.max(...live.map((r) => time(r.expires)))),
    });
  }
  return apps.sort((a, b) => b.lastUsed.getTime() - a.lastUsed.getTime());
}

/** The resource scopes among these words, one entry per level and type, their interactions merged. */
function describeScopes(words: Set<string>): GrantedScope[] {
  const merged = new Map<string, GrantedScope>();
  for (const word of words) {
    if (word === OFFLINE_ACCESS || !isResourceScope(word)) continue;
    let grant;
    try {
      grant = parseResourceScope(word, ['patient', 'user']);
    } catch {
      continue; // a type this version no longer knows: it reaches nothing, so it is not shown as reachable
    }
    const key = `${grant.level}/${grant.type}`;
    const seen = merged.get(key);
    const interactions = new Set<Interaction>([...(seen?.interactions ?? []), ...grant.interactions]);
    merged.set(key, { level: grant.level as 'patient' | 'user', type: grant.type, interactions: (['c', 'r', 'u', 'd', 's'] as const).filter((i) => interactions.has(i)) });
  }
  return [...merged.values()];
}

/**
 * Ends every grant this account gave this app: its unredeemed codes, access tokens and refresh
 * tokens, at once. Another account's grants are never touched. Answers how many grants ended
 * (0: this account gave the app none, and nothing changed).
 */
export async function revokeConnectedApp(db: Kysely<Database>, accountId: string, clientId: string, now = new Date()): Promise<number> {
  if (!isClientId(clientId)) return 0;
  return db.transaction().execute(async (tx) => {
    const rows = await grantRows(tx, accountId, now, clientId);
    const families = [...new Map(rows.map((r) => [r.family.toString('hex'), r.family])).values()];
    const live = new Set(rows.filter((r) => r.live).map((r) => r.family.toString('hex')));
    if (live.size === 0) return 0;
    // In one order everywhere, so two revocations never wait on each other in a circle; issuing takes one lock only.
    families.sort(Buffer.compare);
    for (const family of families) await lockGrant(tx, family);
    await tx.deleteFrom('oauth_authorization_code').where('account_id', '=', accountId).where('client_id', '=', clientId).execute();
    await tx.deleteFrom('oauth_refresh_token').where('account_id', '=', accountId).where('client_id', '=', clientId).execute();
    await tx.deleteFrom('oauth_access_token').where('account_id', '=', accountId).where('client_id', '=', clientId).execute();
    return live.size;
  });
}

/** Under the grant's lock: whether it may still issue tokens (revocation deletes every row of it; a spent row still counts). */
export async function grantStillExists(tx: Transaction<Database>, family: Buffer, via: 'authorization_code' | 'refresh_token'): Promise<boolean> {
  const row =
    via === 'authorization_code'
      ? await tx.selectFrom('oauth_authorization_code').select('code_hash').where('code_hash', '=', family).executeTakeFirst()
      : await tx.selectFrom('oauth_refresh_token').select('family').where('family', '=', family).limit(1).executeTakeFirst();
  return row !== undefined;
}
