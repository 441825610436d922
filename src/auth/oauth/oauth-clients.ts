import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Actor } from '../actor.js';
import { parseScopes } from './smart-scopes.js';

/** How long an access token lives: short, so a leaked one is worth little; clients just ask again. */
export const ACCESS_TOKEN_SECONDS = 600;

/** The audit trail's name for a client: `client:<client_id>` (an id, never its display name). */
export const clientActorRef = (clientId: string) => `client:${clientId}`;

/**
 * Secrets and tokens are 32 random bytes and only their SHA-256 is stored. A slow password hash
 * (argon2id) protects low-entropy human passwords from guessing; against 256 random bits guessing
 * is hopeless anyway, and a 64 MiB hash on every token request would hand anyone able to reach
 * the endpoint a cheap way to exhaust the node's memory and CPU.
 */
const digest = (secret: string) => createHash('sha256').update(secret).digest();
const CLIENT_ID_RE = /^tsc-[0-9a-f]{24}$/;

/** Whether a value has the shape of a client id (so it is safe to audit: a misplaced secret never has it). */
export const isClientId = (value: string) => CLIENT_ID_RE.test(value);

export class ClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientError';
  }
}

export interface NewClient {
  client_id: string;
  client_secret: string;
  name: string;
  scope: string;
}

export interface ClientInfo {
  client_id: string;
  name: string;
  scope: string;
  status: string;
  created: string;
}

export async function addClient(db: Kysely<Database>, input: { name: string; scopes: string }): Promise<NewClient> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100 || /[\u0000-\u001f\u007f]/.test(name)) throw new ClientError('--name must have 1 to 100 printable characters');
  let scope: string;
  try {
    scope = parseScopes(input.scopes).scopes.join(' ');
  } catch (err) {
    throw new ClientError(`--scopes: ${(err as Error).message}`);
  }
  const id = `tsc-${randomBytes(12).toString('hex')}`;
  const secret = randomBytes(32).toString('base64url');
  await db.insertInto('oauth_client').values({ id, name, secret_hash: digest(secret), scopes: scope, status: 'active', revoked_at: null }).execute();
  return { client_id: id, client_secret: secret, name, scope };
}

export async function listClients(db: Kysely<Database>): Promise<ClientInfo[]> {
  const rows = await db.selectFrom('oauth_client').select(['id', 'name', 'scopes', 'status', 'created']).orderBy('created').execute();
  return rows.map((r) => ({ client_id: r.id, name: r.name, scope: r.scopes, status: r.status, created: new Date(r.created).toISOString() }));
}

/** Revokes the client and every token it holds, on every node at once. Returns whether it was active. */
export async function revokeClient(db: Kysely<Database>, clientId: string): Promise<boolean> {
  if (!CLIENT_ID_RE.test(clientId)) return false;
  return db.transaction().execute(async (tx) => {
    const updated = await tx.updateTable('oauth_client').set({ status: 'revoked', revoked_at: new Date() }).where('id', '=', clientId).where('status', '=', 'active').executeTakeFirst();
    await tx.deleteFrom('oauth_access_token').where('client_id', '=', clientId).execute();
    return Number(updated.numUpdatedRows) > 0;
  });
}

/** The active client these credentials prove, or undefined. Compares digests in constant time. */
export async function authenticateClient(db: Kysely<Database>, clientId: string, secret: string): Promise<{ id: string; scopes: string } | undefined> {
  // Compare against a dummy digest when the client is unknown, so timing tells nothing.
  const row = CLIENT_ID_RE.test(clientId)
    ? await db.selectFrom('oauth_client').select(['id', 'secret_hash', 'scopes', 'status']).where('id', '=', clientId).executeTakeFirst()
    : undefined;
  const expected = row ? Buffer.from(row.secret_hash) : DUMMY_DIGEST;
  const ok = timingSafeEqual(digest(secret), expected);
  return ok && row && row.status === 'active' ? { id: row.id, scopes: row.scopes } : undefined;
}
const DUMMY_DIGEST = randomBytes(32);

export async function issueAccessToken(db: Kysely<Database>, clientId: string, scope: string, now = new Date()): Promise<{ token: string; expiresIn: number }> {
  const token = randomBytes(32).toString('base64url');
  await db
    .insertInto('oauth_access_token')
    .values({ token_hash: digest(token), client_id: clientId, scopes: scope, issued: now, expires: new Date(now.getTime() + ACCESS_TOKEN_SECONDS * 1000) })
    .execute();
  // Each client sweeps its own expired tokens, so the table stays the size of what is live.
  await db.deleteFrom('oauth_access_token').where('client_id', '=', clientId).where('expires', '<', now).execute();
  return { token, expiresIn: ACCESS_TOKEN_SECONDS };
}

/**
 * The actor an access token stands for: a system-level client narrowed to its scopes. Unknown,
 * expired and revoked tokens give undefined.
 */
export async function actorForAccessToken(db: Kysely<Database>, token: string, now = new Date()): Promise<Actor | undefined> {
  const row = await db
    .selectFrom('oauth_access_token')
    .innerJoin('oauth_client', 'oauth_client.id', 'oauth_access_token.client_id')
    .select(['oauth_access_token.client_id', 'oauth_access_token.scopes', 'oauth_access_token.expires', 'oauth_client.status'])
    .where('oauth_access_token.token_hash', '=', digest(token))
    .executeTakeFirst();
  if (!row || row.status !== 'active' || new Date(row.expires).getTime() <= now.getTime()) return undefined;
  // System scopes reach the whole record; the scopes then narrow it by type and interaction.
  return { ref: clientActorRef(row.client_id), scope: { kind: 'full' }, scopes: row.scopes.split(' ') };
}
