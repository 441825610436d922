import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Actor } from '../actor.js';
import { parseAppScopes } from './app-scopes.js';
import { isResourceScope, parseScopes } from './smart-scopes.js';

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
export const digest = (secret: string) => createHash('sha256').update(secret).digest();
const CLIENT_ID_RE = /^tsc-[0-9a-f]{24}$/;

/** Whether a value has the shape of a client id (so it is safe to audit: a misplaced secret never has it). */
export const isClientId = (value: string) => CLIENT_ID_RE.test(value);

export class ClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClientError';
  }
}

export type ClientType = 'confidential' | 'public';

/** A system client (client credentials). */
export interface NewClient {
  client_id: string;
  client_secret: string;
  name: string;
  scope: string;
}

/** An app users sign in to (SMART App Launch). */
export interface NewAppClient {
  client_id: string;
  /** Absent for a public client: it has no secret. */
  client_secret?: string;
  name: string;
  scope: string;
  type: ClientType;
  redirect_uris: string[];
}

export interface ClientInfo {
  client_id: string;
  name: string;
  scope: string;
  status: string;
  created: string;
  type: ClientType;
  redirect_uris: string[];
}

export interface ClientInput {
  name: string;
  scopes: string;
  /** Given: an app users sign in to (authorization code + PKCE), sending codes only to these exact URIs. */
  redirectUris?: string[];
  /** A browser or phone app that cannot keep a secret; needs redirect URIs. */
  public?: boolean;
}

const MAX_REDIRECT_URIS = 10;
/** The loopback addresses a native app listens on (RFC 8252 §7.3), as URL.hostname spells them. */
const LOOPBACK_IPS = new Set(['127.0.0.1', '[::1]']);

/**
 * Whether a requested redirect URI is one of the registered ones: exactly, or for a registered
 * loopback URI (http, 127.0.0.1 or [::1]) the same but on any port, since a native app listens on
 * whatever port the system gives it (RFC 8252 §7.3). https and private-use URIs match exactly only.
 */
export function redirectUriRegistered(registered: readonly string[], requested: string): boolean {
  if (registered.includes(requested)) return true;
  let asked: URL;
  try {
    asked = new URL(requested);
  } catch {
    return false;
  }
  if (asked.protocol !== 'http:' || !LOOPBACK_IPS.has(asked.hostname) || asked.username || asked.password || requested.includes('#')) return false;
  const withoutPort = (u: URL) => `${u.protocol}//${u.hostname}${u.pathname}${u.search}`;
  return registered.some((uri) => {
    try {
      const known = new URL(uri);
      return known.protocol === 'http:' && LOOPBACK_IPS.has(known.hostname) && withoutPort(known) === withoutPort(asked);
    } catch {
      return false;
    }
  });
}

/**
 * Why a redirect URI can't be registered, or undefined. https, or a private-use scheme in reverse
 * domain form (a native app, RFC 8252 §7.1: `org.example.app:/callback`), or for a public client
 * (a native app) the loopback listener of RFC 8252 §7.3: `http://127.0.0.1/cb` or `http://[::1]/cb`,
 * any port accepted at sign-in (loopbackRedirectMatches). Not `localhost` (§8.3: it may resolve
 * elsewhere). Never a fragment (RFC 6749 §3.1.2).
 */
export function redirectUriProblem(uri: string, publicClient = false): string | undefined {
  if (uri.length > 1000) return 'is longer than 1000 characters';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'is not an absolute URI';
  }
  if (uri.includes('#')) return 'must not have a fragment';
  if (url.username || url.password) return 'must not carry credentials';
  if (url.protocol === 'https:') return url.hostname ? undefined : 'has no host';
  if (url.protocol === 'http:') {
    if (!LOOPBACK_IPS.has(url.hostname)) return 'uses http: use https (or, for a native app, a private-use scheme like org.example.app:/callback, or its loopback listener http://127.0.0.1/…)';
    return publicClient ? undefined : 'is a loopback address: only a public client (--public, a native app) may redirect to its own loopback listener';
  }
  if (/^[a-z][a-z0-9+-]*(\.[a-z0-9+-]+)+:$/.test(url.protocol)) return undefined;
  return 'must be https or a reverse-domain private-use scheme (org.example.app:/callback)';
}

export async function addClient(db: Kysely<Database>, input: ClientInput & { redirectUris?: undefined; public?: undefined }): Promise<NewClient>;
export async function addClient(db: Kysely<Database>, input: ClientInput): Promise<NewClient | NewAppClient>;
export async function addClient(db: Kysely<Database>, input: ClientInput): Promise<NewClient | NewAppClient> {
  const name = input.name.trim();
  if (name.length < 1 || name.length > 100 || /[\u0000-\u001f\u007f]/.test(name)) throw new ClientError('--name must have 1 to 100 printable characters');
  const redirectUris = [...new Set(input.redirectUris ?? [])];
  const app = redirectUris.length > 0;
  if (input.public && !app) throw new ClientError('--public needs at least one --redirect-uri: a public client is an app users sign in to');
  if (redirectUris.length > MAX_REDIRECT_URIS) throw new ClientError(`at most ${MAX_REDIRECT_URIS} --redirect-uri`);
  for (const uri of redirectUris) {
    const problem = redirectUriProblem(uri, input.public === true);
    if (problem) throw new ClientError(`--redirect-uri "${uri.slice(0, 100).replace(/[^\x20-\x7e]/g, '?')}" ${problem}`);
  }
  let scope: string;
  try {
    if (app) {
      const parsed = parseAppScopes(input.scopes);
      if (parsed.notGranted.length > 0) throw new Error(`${parsed.notGranted.join(', ')}: not granted by this server`);
      scope = parsed.scopes.join(' ');
    } else scope = parseScopes(input.scopes).scopes.join(' ');
  } catch (err) {
    const hint = !app && /only system\//.test((err as Error).message) ? ' (an app users sign in to is registered with --redirect-uri)' : '';
    throw new ClientError(`--scopes: ${(err as Error).message}${hint}`);
  }
  const type: ClientType = input.public ? 'public' : 'confidential';
  const id = `tsc-${randomBytes(12).toString('hex')}`;
  const secret = type === 'confidential' ? randomBytes(32).toString('base64url') : undefined;
  await db
    .insertInto('oauth_client')
    .values({ id, name, secret_hash: secret ? digest(secret) : null, scopes: scope, status: 'active', revoked_at: null, client_type: type, redirect_uris: redirectUris })
    .execute();
  if (!app) return { client_id: id, client_secret: secret!, name, scope };
  return { client_id: id, ...(secret ? { client_secret: secret } : {}), name, scope, type, redirect_uris: redirectUris };
}

export async function listClients(db: Kysely<Database>): Promise<ClientInfo[]> {
  const rows = await db.selectFrom('oauth_client').select(['id', 'name', 'scopes', 'status', 'created', 'client_type', 'redirect_uris']).orderBy('created').execute();
  return rows.map((r) => ({ client_id: r.id, name: r.name, scope: r.scopes, status: r.status, created: new Date(r.created).toISOString(), type: r.client_type, redirect_uris: r.redirect_uris }));
}

export interface AppClient {
  id: string;
  name: string;
  type: ClientType;
  redirectUris: string[];
  scopes: string;
}

/** The active app client (one with redirect URIs) of this id, or undefined. */
export async function findAppClient(db: Kysely<Database>, clientId: string): Promise<AppClient | undefined> {
  if (!CLIENT_ID_RE.test(clientId)) return undefined;
  const row = await db.selectFrom('oauth_client').select(['id', 'name', 'client_type', 'redirect_uris', 'scopes', 'status']).where('id', '=', clientId).executeTakeFirst();
  if (!row || row.status !== 'active' || row.redirect_uris.length === 0) return undefined;
  return { id: row.id, name: row.name, type: row.client_type, redirectUris: row.redirect_uris, scopes: row.scopes };
}

/** Revokes the client and every token it holds, on every node at once. Returns whether it was active. */
export async function revokeClient(db: Kysely<Database>, clientId: string): Promise<boolean> {
  if (!CLIENT_ID_RE.test(clientId)) return false;
  return db.transaction().execute(async (tx) => {
    const updated = await tx.updateTable('oauth_client').set({ status: 'revoked', revoked_at: new Date() }).where('id', '=', clientId).where('status', '=', 'active').executeTakeFirst();
    await tx.deleteFrom('oauth_access_token').where('client_id', '=', clientId).execute();
    await tx.deleteFrom('oauth_authorization_code').where('client_id', '=', clientId).execute();
    await tx.deleteFrom('oauth_refresh_token').where('client_id', '=', clientId).execute();
    return Number(updated.numUpdatedRows) > 0;
  });
}

/** The active client these credentials prove, or undefined. Compares digests in constant time. */
export async function authenticateClient(db: Kysely<Database>, clientId: string, secret: string): Promise<{ id: string; scopes: string; app: boolean } | undefined> {
  // Compare against a dummy digest when the client is unknown (or public: no secret), so timing tells nothing.
  const row = CLIENT_ID_RE.test(clientId)
    ? await db.selectFrom('oauth_client').select(['id', 'secret_hash', 'scopes', 'status', 'redirect_uris']).where('id', '=', clientId).executeTakeFirst()
    : undefined;
  const expected = row?.secret_hash ? Buffer.from(row.secret_hash) : DUMMY_DIGEST;
  const ok = timingSafeEqual(digest(secret), expected);
  return ok && row?.secret_hash && row.status === 'active' ? { id: row.id, scopes: row.scopes, app: row.redirect_uris.length > 0 } : undefined;
}
const DUMMY_DIGEST = randomBytes(32);

/** What an app's token acts for: the user who authorized it, the patient in context, the code it came from. */
export interface UserGrant {
  accountId: string;
  patient: string | null;
  grantHash: Buffer;
}

export async function issueAccessToken(db: Kysely<Database>, clientId: string, scope: string, now = new Date(), user?: UserGrant): Promise<{ token: string; expiresIn: number }> {
  const token = randomBytes(32).toString('base64url');
  await db
    .insertInto('oauth_access_token')
    .values({
      token_hash: digest(token),
      client_id: clientId,
      scopes: scope,
      issued: now,
      expires: new Date(now.getTime() + ACCESS_TOKEN_SECONDS * 1000),
      ...(user ? { account_id: user.accountId, patient: user.patient, grant_hash: user.grantHash } : {}),
    })
    .execute();
  // Each client sweeps its own expired tokens, so the table stays the size of what is live.
  await db.deleteFrom('oauth_access_token').where('client_id', '=', clientId).where('expires', '<', now).execute();
  return { token, expiresIn: ACCESS_TOKEN_SECONDS };
}

/**
 * The actor an access token stands for. A system client's token: the whole record, narrowed by
 * its scopes. An app's token: the user who authorized it, under that user's own access policy,
 * narrowed further by its scopes (the intersection of the two), and for a patient-level token
 * to the patient in context. Unknown, expired and revoked tokens, and tokens of a disabled
 * account, give undefined.
 */
export async function actorForAccessToken(db: Kysely<Database>, token: string, now = new Date()): Promise<Actor | undefined> {
  const row = await db
    .selectFrom('oauth_access_token')
    .innerJoin('oauth_client', 'oauth_client.id', 'oauth_access_token.client_id')
    .leftJoin('account', 'account.id', 'oauth_access_token.account_id')
    .select([
      'oauth_access_token.client_id',
      'oauth_access_token.scopes',
      'oauth_access_token.expires',
      'oauth_access_token.account_id',
      'oauth_access_token.patient',
      'oauth_client.status',
      'account.role',
      'account.fhir_ref',
      'account.status as account_status',
    ])
    .where('oauth_access_token.token_hash', '=', digest(token))
    .executeTakeFirst();
  if (!row || row.status !== 'active' || new Date(row.expires).getTime() <= now.getTime()) return undefined;
  const scopes = row.scopes.split(' ');
  // System scopes reach the whole record; the scopes then narrow it by type and interaction.
  if (row.account_id === null) return { ref: clientActorRef(row.client_id), scope: { kind: 'full' }, scopes };
  if (row.account_status !== 'active' || !row.role) return undefined;
  const resourceScopes = scopes.filter(isResourceScope);
  const client = clientActorRef(row.client_id);
  const patientLevel = resourceScopes.some((s) => s.startsWith('patient/'));
  // The access policy sees the person; an app never gets more than they would (no break-the-glass
  // either: emergency access is opened in telesalud itself, with a reason, not by an app).
  switch (row.role) {
    case 'patient': {
      const own = row.fhir_ref?.startsWith('Patient/') ? row.fhir_ref : undefined;
      const patients = own && (!patientLevel || row.patient === own) ? [own] : [];
      return { ref: own ?? `account:${row.account_id}`, scope: { kind: 'patient-compartment', patients }, scopes: resourceScopes, client, account: row.account_id };
    }
    case 'clinician':
      // Patient-level scopes need a patient in context, which staff tokens never have (see authorize).
      if (patientLevel) return undefined;
      return { ref: row.fhir_ref ?? `account:${row.account_id}`, scope: { kind: 'clinician', practitioner: row.fhir_ref?.startsWith('Practitioner/') ? row.fhir_ref : '', breakGlass: [] }, scopes: resourceScopes, client, account: row.account_id };
    case 'admin':
      if (patientLevel) return undefined;
      return { ref: row.fhir_ref ?? `account:${row.account_id}`, scope: { kind: 'admin' }, scopes: resourceScopes, client, account: row.account_id };
    default:
      // A role this module does not know (yet) reaches nothing through an app.
      return undefined;
  }
}
