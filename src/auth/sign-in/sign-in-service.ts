import type { Kysely, Selectable } from 'kysely';
import { sql } from 'kysely';
import type { AuditAction, AuditLog } from '../../audit/audit-log.js';
import type { Database } from '../../db/schema.js';
import type { KeyRing } from '../../documents/key-ring.js';
import { openAccountTotpSecret } from '../accounts/account-keys.js';
import { consumeRecoveryCode } from '../mfa/recovery-codes.js';
import { verifyTotp } from '../mfa/totp.js';
import { verifyPassword } from '../passwords/index.js';
import { authPolicy } from '../policy/auth-policy.js';
import { passwordExpiryOf } from '../accounts/account-passwords.js';
import type { ReauthPurpose } from '../passkeys/passkeys.js';
import type { Role } from '../roles.js';
import type { SessionRestriction, SessionStore } from '../sessions/session-store.js';

type AccountRow = Selectable<Database['account']>;

/** What a second factor can be, in the order a sign-in form offers them. */
export type SecondFactorMethod = 'totp' | 'passkey' | 'recovery-code';

export type SignInResult =
  | {
      kind: 'signed-in';
      account: { id: string; email: string; role: Role; fhirRef: string | null };
      token: string;
      csrfToken: string;
      expires: Date;
      /** Set when the session may only change the password or enrol a second factor. */
      restriction: SessionRestriction | null;
      /** Within the warning period (or past it): when the password expires. */
      passwordExpiresAt?: Date;
    }
  /** The password was right; a second factor is needed. Said only after a correct password. */
  | { kind: 'mfa-required'; accountId: string; methods: SecondFactorMethod[] }
  /** Wrong email, password or code, or a paused account: one answer for all, so nothing is revealed. */
  | { kind: 'refused' }
  | { kind: 'throttled'; retryAfterSeconds: number };

/** What a signed-in user gives to prove again who they are: the password and at most one second factor. */
export interface ReauthProof {
  password: string;
  /** A code from the authenticator app, or a recovery code (used up by a success). */
  code?: string | undefined;
  /** Checks the passkey assertion given against a challenge of this session and action (claiming it). */
  passkey?: (() => Promise<boolean>) | undefined;
}

export type ReauthResult =
  | { ok: true; method: 'password' | SecondFactorMethod }
  /** Wrong password or factor, a factor the account has not enrolled, or an inactive account: one answer. */
  | { ok: false; reason: 'refused' }
  /** Too many failures: the same wait a sign-in would get. */
  | { ok: false; reason: 'throttled'; retryAfterSeconds: number }
  /** The policy requires a second factor for the role and the account has none. */
  | { ok: false; reason: 'enrol-second-factor' }
  /** Both a code and a passkey: one factor is asked for; nothing was checked or counted. */
  | { ok: false; reason: 'one-factor-only' };

type Security = (action: AuditAction, outcome: 'success' | 'failed' | 'denied', detail?: Record<string, unknown>) => Promise<void>;

/** Guessing defences, shared by every node through the database. */
export const SIGN_IN_LIMITS = {
  /** Failures of one account before each further attempt waits (2^(n-free) s, at most maxDelaySeconds). */
  freeFailures: 3,
  maxDelaySeconds: 60,
  /** Failures of one account that pause it for lockMinutes. */
  lockAfter: 10,
  lockMinutes: 15,
  /** Failures from one source address within sourceWindowMinutes before it must wait. */
  sourceLimit: 30,
  sourceWindowMinutes: 15,
};

export class SignInService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly sessions: SessionStore,
    private readonly audit: AuditLog,
    private readonly keyRing: KeyRing,
  ) {}

  async signIn(input: { email: string; password: string; code?: string }, origin: { source: string; userAgent?: string; requestId: string }, now = new Date()): Promise<SignInResult> {
    const email = input.email.trim().toLowerCase();
    const sourceWait = await this.sourceWait(origin.source, now);
    if (sourceWait > 0) return { kind: 'throttled', retryAfterSeconds: sourceWait };

    const account = await this.db.selectFrom('account').selectAll().where('email', '=', email).executeTakeFirst();
    const security = this.securityLog(account, origin);

    if (account && this.accountWait(account, now) > 0) {
      // Paused: refuse without checking the password, so guessing gains nothing, and say nothing more.
      await this.countSourceFailure(origin.source, now);
      await security('sign-in-failed', 'denied', { reason: 'paused' });
      return { kind: 'refused' };
    }

    // Without an account this still verifies against a dummy hash: a wrong email costs the same time as a wrong password.
    const passwordOk = await verifyPassword(account?.password_hash ?? null, input.password);
    if (!account || !passwordOk || account.status !== 'active') {
      await this.countFailure(account?.id, origin.source, now, security);
      return { kind: 'refused' };
    }

    const role = account.role as Role;
    const policy = await authPolicy(this.db).current();
    const methods = await this.secondFactors(account);
    let restriction: SessionRestriction | null = null;
    let method = 'password';
    if (methods.length > 0) {
      if (!input.code) return { kind: 'mfa-required', accountId: account.id, methods };
      const used = await this.secondFactorOk(account, input.code, now);
      if (!used) {
        await this.countFailure(account.id, origin.source, now, security);
        return { kind: 'refused' };
      }
      method = used;
    } else if (policy.mfaRequired[role]) {
      // The policy wants a second factor and none is enrolled yet (new account, admin reset, policy
      // just changed): the password gets a session that can do nothing but enrol one.
      restriction = 'mfa-enrolment';
    }
    return this.finishSignIn(account, origin, now, method, restriction);
  }

  /**
   * The second step of a passkey sign-in, once the assertion was verified against the challenge
   * that a correct password earned: the account must still be active and not paused.
   */
  async signInWithPasskey(accountId: string, origin: { source: string; userAgent?: string; requestId: string }, now = new Date()): Promise<SignInResult> {
    const account = await this.db.selectFrom('account').selectAll().where('id', '=', accountId).executeTakeFirst();
    if (!account || account.status !== 'active' || this.accountWait(account, now) > 0) {
      await this.countFailure(account?.id, origin.source, now, this.securityLog(account, origin));
      return { kind: 'refused' };
    }
    return this.finishSignIn(account, origin, now, 'passkey', null);
  }

  private async finishSignIn(account: AccountRow, origin: { source: string; userAgent?: string; requestId: string }, now: Date, method: string, restriction: SessionRestriction | null): Promise<SignInResult> {
    const role = account.role as Role;
    await this.db.updateTable('account').set({ failed_sign_ins: 0, locked_until: null, last_failed_at: null }).where('id', '=', account.id).execute();
    const expiry = await passwordExpiryOf(this.db, account, now);
    // An expired password must be changed before anything else; enrolment (if due) comes first.
    const effective = restriction ?? (expiry.expired ? 'password-expired' : null);
    const session = await this.sessions.create({ id: account.id, role }, origin, now, effective);
    await this.securityLog(account, origin)('sign-in', 'success', { method, ...(effective ? { restriction: effective } : {}) });
    return {
      kind: 'signed-in',
      account: { id: account.id, email: account.email, role, fhirRef: account.fhir_ref },
      ...session,
      restriction: effective,
      ...(expiry.expiresAt && (expiry.warn || expiry.expired) ? { passwordExpiresAt: expiry.expiresAt } : {}),
    };
  }

  /** The second factors this account has enrolled, as a sign-in form offers them. */
  async secondFactors(account: Pick<AccountRow, 'id' | 'totp_secret_sealed'>): Promise<SecondFactorMethod[]> {
    const passkeys = await this.db.selectFrom('passkey_credential').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', account.id).executeTakeFirst();
    const codes = await this.db.selectFrom('recovery_code').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', account.id).where('used_at', 'is', null).executeTakeFirst();
    const methods: SecondFactorMethod[] = [];
    if (account.totp_secret_sealed) methods.push('totp');
    if (Number(passkeys?.n ?? 0) > 0) methods.push('passkey');
    // Recovery codes stand in for a factor; alone they are not one.
    if (methods.length > 0 && Number(codes?.n ?? 0) > 0) methods.push('recovery-code');
    return methods;
  }

  /**
   * Re-authentication of a signed-in user for a sensitive action: the password plus one of the
   * account's enrolled second factors, checked exactly as sign-in checks them (TOTP replay guard,
   * single-use recovery codes, passkey challenge claimed once), with the same waits and failure
   * counting, so a stolen session can't guess faster than sign-in allows. An account without a
   * second factor gives the password alone unless the policy requires one for its role — then it
   * must enrol one first (which itself needs only the password: purpose 'mfa-change').
   */
  async reauthenticate(accountId: string, purpose: ReauthPurpose, proof: ReauthProof, origin: { source: string; requestId: string }, now = new Date()): Promise<ReauthResult> {
    if (proof.code !== undefined && proof.passkey) return { ok: false, reason: 'one-factor-only' };
    const account = await this.db.selectFrom('account').selectAll().where('id', '=', accountId).executeTakeFirst();
    if (!account) return { ok: false, reason: 'refused' };
    const log = this.securityLog(account, origin);
    const attempted = proof.passkey ? 'passkey' : proof.code !== undefined ? 'code' : 'password';
    // Never the code: what kind of proof was tried, for which action.
    const security: Security = (action, outcome, detail) => log(action, outcome, { ...detail, reauthentication: true, purpose, method: attempted });

    const wait = this.accountWait(account, now);
    if (wait > 0) {
      await security('sign-in-failed', 'denied', { reason: 'paused' });
      return { ok: false, reason: 'throttled', retryAfterSeconds: wait };
    }
    const methods = await this.secondFactors(account);
    if (methods.length === 0 && purpose !== 'mfa-change' && (await authPolicy(this.db).current()).mfaRequired[account.role as Role]) {
      // Refused before the password is looked at: nothing to guess here, and nothing counted.
      await security('sign-in-failed', 'denied', { reason: 'no-second-factor' });
      return { ok: false, reason: 'enrol-second-factor' };
    }

    let method: 'password' | SecondFactorMethod | undefined;
    if (account.status === 'active' && (await verifyPassword(account.password_hash, proof.password))) {
      // A factor must be one the account has: a code or a passkey offered where none is enrolled fails.
      if (methods.length === 0) method = attempted === 'password' ? 'password' : undefined;
      else if (proof.passkey) method = methods.includes('passkey') && (await proof.passkey()) ? 'passkey' : undefined;
      else if (proof.code !== undefined) method = await this.secondFactorOk(account, proof.code, now);
    }
    if (!method) {
      await this.countFailure(account.id, origin.source, now, security);
      return { ok: false, reason: 'refused' };
    }
    await this.db.updateTable('account').set({ failed_sign_ins: 0, locked_until: null, last_failed_at: null }).where('id', '=', account.id).execute();
    return { ok: true, method };
  }

  /**
   * The signed-in user's current password, for a password change: counted like a sign-in failure
   * when wrong (a stolen session can't guess faster than sign-in allows), refused while paused.
   */
  async confirmPassword(accountId: string, password: string, origin: { source: string; requestId: string }, now = new Date()): Promise<boolean> {
    const account = await this.db.selectFrom('account').selectAll().where('id', '=', accountId).executeTakeFirst();
    if (!account) return false;
    const security = this.securityLog(account, origin);
    if (this.accountWait(account, now) > 0) {
      await security('sign-in-failed', 'denied', { reason: 'paused', reauthentication: true });
      return false;
    }
    if (account.status === 'active' && (await verifyPassword(account.password_hash, password))) return true;
    await this.countFailure(account.id, origin.source, now, (action, outcome, detail) => security(action, outcome, { ...detail, reauthentication: true }));
    return false;
  }

  /** A failed step of a sign-in that is not a password (a passkey assertion): counted against the account and the source. */
  async recordFailure(accountId: string | undefined, origin: { source: string; requestId: string }, now = new Date()): Promise<void> {
    const account = accountId ? await this.db.selectFrom('account').selectAll().where('id', '=', accountId).executeTakeFirst() : undefined;
    await this.countFailure(account?.id, origin.source, now, this.securityLog(account, origin));
  }

  /**
   * Public endpoints that take a secret (an invitation token) share the sign-in's per-source
   * budget: seconds to wait before the next attempt, 0 when free.
   */
  async throttleWait(source: string, now = new Date()): Promise<number> {
    return this.sourceWait(source, now);
  }

  async countSourceFailureOf(source: string, now = new Date()): Promise<void> {
    await this.countSourceFailure(source, now);
  }

  private securityLog(account: AccountRow | undefined, origin: { source: string; requestId: string }): Security {
    return (action, outcome, detail) =>
      this.audit.record({ actor: account ? `account:${account.id}` : 'anonymous', action, outcome, source: origin.source, requestId: origin.requestId, ...(account?.fhir_ref?.startsWith('Patient/') ? { patient: account.fhir_ref } : {}), ...(detail ? { detail } : {}) });
  }

  /** Which factor the code proved ('totp' or 'recovery-code'), or undefined. */
  private async secondFactorOk(account: AccountRow, code: string, now: Date): Promise<'totp' | 'recovery-code' | undefined> {
    if (account.totp_secret_sealed && /^\s*\d[\d\s]{5,8}$/.test(code)) {
      const secret = openAccountTotpSecret(this.keyRing, account.totp_secret_sealed, account.id);
      const result = verifyTotp(secret, code, { lastUsedStep: account.totp_last_step, now });
      if (!result.ok) return undefined;
      // The replay guard holds across nodes: only one sign-in may advance the step.
      const advanced = await this.db
        .updateTable('account')
        .set({ totp_last_step: result.step })
        .where('id', '=', account.id)
        .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', result.step)]))
        .executeTakeFirst();
      return Number(advanced.numUpdatedRows) === 1 ? 'totp' : undefined;
    }
    const codes = await this.db.selectFrom('recovery_code').select(['position', 'hash', 'used_at']).where('account_id', '=', account.id).orderBy('position').execute();
    const index = consumeRecoveryCode(code, codes.map((c) => (c.used_at ? null : c.hash)));
    if (index < 0) return undefined;
    const used = await this.db
      .updateTable('recovery_code')
      .set({ used_at: now })
      .where('account_id', '=', account.id)
      .where('position', '=', codes[index]!.position)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(used.numUpdatedRows) === 1 ? 'recovery-code' : undefined;
  }

  /** Seconds this account must wait before its next attempt: progressive delay, then a temporary lock. */
  private accountWait(account: AccountRow, now: Date): number {
    const lockedUntil = account.locked_until ? new Date(account.locked_until).getTime() : 0;
    if (lockedUntil > now.getTime()) return Math.ceil((lockedUntil - now.getTime()) / 1000);
    const excess = account.failed_sign_ins - SIGN_IN_LIMITS.freeFailures;
    if (excess < 0 || !account.last_failed_at) return 0;
    const delay = Math.min(2 ** excess, SIGN_IN_LIMITS.maxDelaySeconds) * 1000;
    const waitUntil = new Date(account.last_failed_at).getTime() + delay;
    return waitUntil > now.getTime() ? Math.ceil((waitUntil - now.getTime()) / 1000) : 0;
  }

  private async countFailure(accountId: string | undefined, source: string, now: Date, security: Security): Promise<void> {
    await this.countSourceFailure(source, now);
    if (!accountId) {
      await security('sign-in-failed', 'failed');
      return;
    }
    const updated = await this.db
      .updateTable('account')
      .set((eb) => ({ failed_sign_ins: eb('failed_sign_ins', '+', 1), last_failed_at: now }))
      .where('id', '=', accountId)
      .returning('failed_sign_ins')
      .executeTakeFirstOrThrow();
    await security('sign-in-failed', 'failed', { failures: updated.failed_sign_ins });
    if (updated.failed_sign_ins >= SIGN_IN_LIMITS.lockAfter && updated.failed_sign_ins % SIGN_IN_LIMITS.lockAfter === 0) {
      await this.db.updateTable('account').set({ locked_until: new Date(now.getTime() + SIGN_IN_LIMITS.lockMinutes * 60_000) }).where('id', '=', accountId).execute();
      await security('account-locked', 'denied', { minutes: SIGN_IN_LIMITS.lockMinutes });
    }
  }

  private async sourceWait(source: string, now: Date): Promise<number> {
    const row = await this.db.selectFrom('sign_in_throttle').selectAll().where('source', '=', source).executeTakeFirst();
    if (!row) return 0;
    const windowEnd = new Date(row.window_start).getTime() + SIGN_IN_LIMITS.sourceWindowMinutes * 60_000;
    if (windowEnd <= now.getTime() || row.failures < SIGN_IN_LIMITS.sourceLimit) return 0;
    return Math.ceil((windowEnd - now.getTime()) / 1000);
  }

  private async countSourceFailure(source: string, now: Date): Promise<void> {
    const windowStart = new Date(now.getTime() - SIGN_IN_LIMITS.sourceWindowMinutes * 60_000);
    await sql`
      insert into sign_in_throttle (source, failures, window_start) values (${source}, 1, ${now})
      on conflict (source) do update set
        failures = case when sign_in_throttle.window_start < ${windowStart} then 1 else sign_in_throttle.failures + 1 end,
        window_start = case when sign_in_throttle.window_start < ${windowStart} then ${now} else sign_in_throttle.window_start end`.execute(this.db);
  }
}
