import { createHash, randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { authPolicy, type SessionPolicy } from '../policy/auth-policy.js';
import type { Role } from '../roles.js';

export { DEFAULT_SESSION_POLICY, type SessionPolicy } from '../policy/auth-policy.js';

/** `__Host-` binds the cookie to this exact origin: no Domain, Path=/, Secure required. */
export const SESSION_COOKIE = '__Host-telesalud_session';

/**
 * A session that may do one thing only before it becomes a full session: change an expired
 * password, or enrol the second factor the policy requires. Routes say which they allow
 * (`allowedWhile` in their config); everything else answers 403 with the restriction as error.
 */
export type SessionRestriction = 'password-expired' | 'mfa-enrolment';

/** last_seen is written at most this often, so a busy page does not write on every request. */
const TOUCH_EVERY_MS = 30_000;

export interface SessionAccount {
  id: string;
  email: string;
  role: Role;
  fhirRef: string | null;
}

export interface ActiveSession {
  account: SessionAccount;
  /** Short public id of the session (prefix of the token hash), for listing and ending sessions. */
  id: string;
  csrfToken: string;
  /** The last re-authentication for a sensitive action in this session (not the sign-in); null before the first. */
  reauthenticatedAt: Date | null;
  restriction: SessionRestriction | null;
  passwordChangedAt: Date | null;
}

export interface NewSession {
  token: string;
  csrfToken: string;
  expires: Date;
}

export const sessionId = (tokenHash: Buffer) => tokenHash.subarray(0, 8).toString('hex');
const hashToken = (token: string) => createHash('sha256').update(token).digest();

/**
 * Server-side sessions in the database: the cookie carries a random token, the table its hash,
 * so every node can serve every session and ending one takes effect everywhere at once.
 * Timeouts come from the admin's policy (fixed per session when it starts); `policy` pins them (tests).
 */
export class SessionStore {
  constructor(private readonly db: Kysely<Database>, private readonly policy?: SessionPolicy) {}

  private async sessionPolicy(): Promise<SessionPolicy> {
    return this.policy ?? (await authPolicy(this.db).current()).session;
  }

  /** `reauthenticatedAt` carries a re-authentication over to the session that replaces the one it was made in. */
  async create(account: { id: string; role: Role }, origin: { source: string; userAgent?: string }, now = new Date(), restriction: SessionRestriction | null = null, reauthenticatedAt: Date | null = null): Promise<NewSession> {
    const policy = await this.sessionPolicy();
    const token = randomBytes(32).toString('base64url');
    const csrfToken = randomBytes(24).toString('base64url');
    const expires = new Date(now.getTime() + policy.absoluteHours * 3600_000);
    await this.db
      .insertInto('session')
      .values({
        token_hash: hashToken(token),
        account_id: account.id,
        csrf_token: csrfToken,
        created: now,
        last_seen: now,
        idle_timeout_seconds: policy.idleMinutes[account.role] * 60,
        expires,
        reauthenticated_at: reauthenticatedAt,
        source: origin.source,
        user_agent: origin.userAgent?.slice(0, 300) ?? null,
        restriction,
      })
      .execute();
    return { token, csrfToken, expires };
  }

  /**
   * The live session behind a cookie token, or undefined: unknown, idle too long, past its
   * lifetime, its account disabled, or started before the account's password last changed.
   */
  async resolve(token: string | undefined, now = new Date()): Promise<ActiveSession | undefined> {
    if (!token || token.length > 100) return undefined;
    const tokenHash = hashToken(token);
    const row = await this.db
      .selectFrom('session')
      .innerJoin('account', 'account.id', 'session.account_id')
      .select([
        'session.created',
        'session.last_seen',
        'session.idle_timeout_seconds',
        'session.expires',
        'session.csrf_token',
        'session.reauthenticated_at',
        'session.restriction',
        'account.id',
        'account.email',
        'account.role',
        'account.fhir_ref',
        'account.status',
        'account.password_changed_at',
      ])
      .where('session.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (!row) return undefined;
    const lastSeen = new Date(row.last_seen).getTime();
    const passwordChangedAt = row.password_changed_at ? new Date(row.password_changed_at) : null;
    const stale = passwordChangedAt !== null && new Date(row.created).getTime() < passwordChangedAt.getTime();
    if (row.status !== 'active' || stale || now.getTime() >= new Date(row.expires).getTime() || now.getTime() - lastSeen >= row.idle_timeout_seconds * 1000) {
      await this.db.deleteFrom('session').where('token_hash', '=', tokenHash).execute();
      return undefined;
    }
    if (now.getTime() - lastSeen >= TOUCH_EVERY_MS) {
      await this.db.updateTable('session').set({ last_seen: now }).where('token_hash', '=', tokenHash).execute();
    }
    return {
      account: { id: row.id, email: row.email, role: row.role as Role, fhirRef: row.fhir_ref },
      id: sessionId(tokenHash),
      csrfToken: row.csrf_token,
      reauthenticatedAt: row.reauthenticated_at ? new Date(row.reauthenticated_at) : null,
      restriction: (row.restriction as SessionRestriction | null) ?? null,
      passwordChangedAt,
    };
  }

  async end(token: string): Promise<void> {
    await this.db.deleteFrom('session').where('token_hash', '=', hashToken(token)).execute();
  }

  /** Ends one of the account's sessions by its public id. Returns whether one was ended. */
  async endById(accountId: string, id: string): Promise<boolean> {
    if (!/^[0-9a-f]{16}$/.test(id)) return false;
    const result = await this.db
      .deleteFrom('session')
      .where('account_id', '=', accountId)
      .where((eb) => eb.fn('substr', [eb.fn('encode', ['token_hash', eb.val('hex')]), eb.val(1), eb.val(16)]), '=', id)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** Records a successful re-authentication in one of the account's sessions (by its public id). */
  async markReauthenticated(accountId: string, id: string, at = new Date()): Promise<void> {
    if (!/^[0-9a-f]{16}$/.test(id)) return;
    await this.db
      .updateTable('session')
      .set({ reauthenticated_at: at })
      .where('account_id', '=', accountId)
      .where((eb) => eb.fn('substr', [eb.fn('encode', ['token_hash', eb.val('hex')]), eb.val(1), eb.val(16)]), '=', id)
      .execute();
  }

  /** Password change and admin action end every session of the account. Returns how many ended. */
  async endAll(accountId: string): Promise<number> {
    const result = await this.db.deleteFrom('session').where('account_id', '=', accountId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  /**
   * Ends every session of the account, the caller's too, and starts a new one in its place: after a
   * credential change nothing issued before it still works, and a fixated session id dies.
   */
  async replaceAll(account: { id: string; role: Role }, origin: { source: string; userAgent?: string }, now = new Date(), restriction: SessionRestriction | null = null, reauthenticatedAt: Date | null = null): Promise<{ session: NewSession; ended: number }> {
    const ended = await this.endAll(account.id);
    return { session: await this.create(account, origin, now, restriction, reauthenticatedAt), ended };
  }

  async list(accountId: string): Promise<{ id: string; created: Date; lastSeen: Date; source: string | null; userAgent: string | null }[]> {
    const rows = await this.db.selectFrom('session').select(['token_hash', 'created', 'last_seen', 'source', 'user_agent']).where('account_id', '=', accountId).orderBy('last_seen', 'desc').execute();
    return rows.map((r) => ({ id: sessionId(Buffer.from(r.token_hash)), created: new Date(r.created), lastSeen: new Date(r.last_seen), source: r.source, userAgent: r.user_agent }));
  }
}
