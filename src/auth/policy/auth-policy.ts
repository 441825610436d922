import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import { DEFAULT_PASSWORD_POLICY, parsePasswordPolicy, PasswordPolicyError, type PasswordPolicy, type PasswordPolicyIssue } from '../passwords/index.js';
import { ROLES, ROLES_REQUIRING_MFA, type Role } from '../roles.js';
import { canonicalTimeZone } from './clinic-time-zone.js';
import { SESSION_POLICY_LIMITS } from './policy-limits.js';

/**
 * The authentication policy an admin configures: passwords, which roles must use a second
 * factor, and how long sessions live. Stored in the database (auth_setting) so every node
 * applies the same values; each node reads it through a short cache.
 */
export interface SessionPolicy {
  /** Idle minutes per role before a session ends. */
  idleMinutes: Record<Role, number>;
  absoluteHours: number;
}

/** Settings of the clinic itself that the admin keeps with the policy. */
export interface ClinicSettings {
  /** IANA time zone; null: the installation's default (TELESALUD_CLINIC_TIME_ZONE, else UTC). */
  timeZone: string | null;
}

export interface AuthPolicy {
  password: PasswordPolicy;
  mfaRequired: Record<Role, boolean>;
  session: SessionPolicy;
  clinic: ClinicSettings;
}

export const DEFAULT_SESSION_POLICY: SessionPolicy = { idleMinutes: { patient: 30, clinician: 15, reception: 15, admin: 15 }, absoluteHours: 12 };

export const DEFAULT_AUTH_POLICY: AuthPolicy = {
  password: DEFAULT_PASSWORD_POLICY,
  mfaRequired: Object.fromEntries(ROLES.map((r) => [r, ROLES_REQUIRING_MFA.has(r)])) as Record<Role, boolean>,
  session: DEFAULT_SESSION_POLICY,
  clinic: { timeZone: null },
};

/** Bounds no admin setting crosses: a 1-minute idle timeout locks people out, a week-long one is no timeout. */
export { SESSION_POLICY_LIMITS } from './policy-limits.js';

/** How long a node trusts its copy of the policy: a change reaches every node within this. */
export const POLICY_CACHE_MS = 5_000;
const SETTING = 'auth-policy';

export class AuthPolicyError extends Error {
  constructor(readonly issues: PasswordPolicyIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.message}`).join('; '));
    this.name = 'AuthPolicyError';
  }
}

/**
 * Validates an admin's change (parsed JSON) against `base`: fields left out keep their value,
 * unknown fields and out-of-range values are refused, every problem reported at once.
 */
export function parseAuthPolicy(input: unknown, base: AuthPolicy = DEFAULT_AUTH_POLICY): AuthPolicy {
  const issues: PasswordPolicyIssue[] = [];
  if (!isObject(input)) throw new AuthPolicyError([{ field: '(policy)', message: 'must be an object with password, mfaRequired, sessions and/or clinic' }]);
  for (const key of Object.keys(input)) if (!['password', 'mfaRequired', 'sessions', 'clinic'].includes(key)) issues.push({ field: key, message: 'is not a policy section (password, mfaRequired, sessions, clinic)' });

  let password = base.password;
  if (input.password !== undefined) {
    try {
      password = parsePasswordPolicy(input.password, base.password);
    } catch (err) {
      if (!(err instanceof PasswordPolicyError)) throw err;
      issues.push(...err.issues.map((i) => ({ field: `password.${i.field}`, message: i.message })));
    }
  }

  const mfaRequired = { ...base.mfaRequired };
  if (input.mfaRequired !== undefined) {
    if (!isObject(input.mfaRequired)) issues.push({ field: 'mfaRequired', message: `must be an object with true/false per role: ${ROLES.join(', ')}` });
    else
      for (const [role, value] of Object.entries(input.mfaRequired)) {
        if (!isRole(role)) issues.push({ field: `mfaRequired.${role}`, message: `is not a role (roles: ${ROLES.join(', ')})` });
        else if (typeof value !== 'boolean') issues.push({ field: `mfaRequired.${role}`, message: 'must be true or false' });
        // Admins hold the keys to every account: their second factor is not optional.
        else if (role === 'admin' && !value) issues.push({ field: 'mfaRequired.admin', message: 'admins always use a second factor' });
        else mfaRequired[role] = value;
      }
  }

  const session: SessionPolicy = { idleMinutes: { ...base.session.idleMinutes }, absoluteHours: base.session.absoluteHours };
  // "sessions" in JSON: the shield (src/edge) takes a field named "session" for a planted session id.
  if (input.sessions !== undefined) {
    const given = input.sessions;
    if (!isObject(given)) issues.push({ field: 'sessions', message: 'must be an object with idleMinutes and/or absoluteHours' });
    else {
      for (const key of Object.keys(given)) if (key !== 'idleMinutes' && key !== 'absoluteHours') issues.push({ field: `sessions.${key}`, message: 'is not a session setting (idleMinutes, absoluteHours)' });
      const L = SESSION_POLICY_LIMITS;
      if (given.absoluteHours !== undefined) {
        if (isIntegerIn(given.absoluteHours, L.absoluteHours.min, L.absoluteHours.max)) session.absoluteHours = given.absoluteHours;
        else issues.push({ field: 'sessions.absoluteHours', message: `must be a whole number of hours from ${L.absoluteHours.min} to ${L.absoluteHours.max}` });
      }
      if (given.idleMinutes !== undefined) {
        if (!isObject(given.idleMinutes)) issues.push({ field: 'sessions.idleMinutes', message: `must be an object with minutes per role: ${ROLES.join(', ')}` });
        else
          for (const [role, value] of Object.entries(given.idleMinutes)) {
            if (!isRole(role)) issues.push({ field: `sessions.idleMinutes.${role}`, message: `is not a role (roles: ${ROLES.join(', ')})` });
            else if (isIntegerIn(value, L.idleMinutes.min, L.idleMinutes.max)) session.idleMinutes[role] = value;
            else issues.push({ field: `sessions.idleMinutes.${role}`, message: `must be a whole number of minutes from ${L.idleMinutes.min} to ${L.idleMinutes.max}` });
          }
      }
      for (const role of ROLES) {
        if (session.idleMinutes[role] > session.absoluteHours * 60 && !issues.some((i) => i.field.startsWith('sessions.'))) {
          issues.push({ field: `sessions.idleMinutes.${role}`, message: `must not be longer than the absolute lifetime (${session.absoluteHours} h)` });
        }
      }
    }
  }
  const clinic: ClinicSettings = { ...base.clinic };
  if (input.clinic !== undefined) {
    if (!isObject(input.clinic)) issues.push({ field: 'clinic', message: 'must be an object with timeZone' });
    else
      for (const [key, value] of Object.entries(input.clinic)) {
        if (key !== 'timeZone') issues.push({ field: `clinic.${key}`, message: 'is not a clinic setting (timeZone)' });
        // null (or empty) goes back to the installation's default.
        else if (value === null || value === '') clinic.timeZone = null;
        else {
          const zone = canonicalTimeZone(value);
          if (zone) clinic.timeZone = zone;
          else issues.push({ field: 'clinic.timeZone', message: 'must be an IANA time zone name such as America/Mexico_City or Europe/Madrid, or null for the installation default' });
        }
      }
  }
  if (issues.length > 0) throw new AuthPolicyError(issues);
  return { password, mfaRequired, session, clinic };
}

/** The policy as an admin reads and writes it (JSON). */
export function authPolicyJson(policy: AuthPolicy): Record<string, unknown> {
  return { password: { ...policy.password, expiryDays: { ...policy.password.expiryDays }, contextWords: [...policy.password.contextWords] }, mfaRequired: { ...policy.mfaRequired }, sessions: { idleMinutes: { ...policy.session.idleMinutes }, absoluteHours: policy.session.absoluteHours }, clinic: { timeZone: policy.clinic.timeZone } };
}

/** One node's view of the stored policy for one database, refreshed after POLICY_CACHE_MS. */
export class AuthPolicyStore {
  private cached: { policy: AuthPolicy; at: number } | undefined;
  private loading: Promise<AuthPolicy> | undefined;

  constructor(private readonly db: Kysely<Database>, private readonly cacheMs = POLICY_CACHE_MS) {}

  async current(): Promise<AuthPolicy> {
    if (this.cached && Date.now() - this.cached.at < this.cacheMs) return this.cached.policy;
    this.loading ??= this.load().finally(() => (this.loading = undefined));
    return this.loading;
  }

  private async load(): Promise<AuthPolicy> {
    const row = await this.db.selectFrom('auth_setting').select('value').where('name', '=', SETTING).executeTakeFirst();
    let policy = DEFAULT_AUTH_POLICY;
    if (row) {
      // Stored values were valid when written; parsing again over today's defaults keeps them so
      // if a floor has since risen, the policy falls back to the defaults rather than run weaker.
      try {
        policy = parseAuthPolicy(typeof row.value === 'string' ? JSON.parse(row.value) : row.value);
      } catch {
        policy = DEFAULT_AUTH_POLICY;
      }
    }
    this.cached = { policy, at: Date.now() };
    return policy;
  }

  /** Applies an admin's change over the stored policy; returns the new policy and the top-level fields changed. */
  async update(input: unknown, by: string): Promise<{ policy: AuthPolicy; changed: string[] }> {
    const result = await this.db.transaction().execute(async (tx) => {
      // The row exists before it is locked, so two admins changing different fields at once
      // (even the very first time) are applied one after the other and both changes stay.
      await tx
        .insertInto('auth_setting')
        .values({ name: SETTING, value: JSON.stringify(authPolicyJson(DEFAULT_AUTH_POLICY)), updated: new Date(), updated_by: by })
        .onConflict((oc) => oc.column('name').doNothing())
        .execute();
      const row = await tx.selectFrom('auth_setting').select('value').where('name', '=', SETTING).forUpdate().executeTakeFirstOrThrow();
      const base = safeParse(typeof row.value === 'string' ? JSON.parse(row.value) : row.value);
      const policy = parseAuthPolicy(input, base);
      await tx.updateTable('auth_setting').set({ value: JSON.stringify(authPolicyJson(policy)), updated: new Date(), updated_by: by }).where('name', '=', SETTING).execute();
      return { policy, changed: changedFields(authPolicyJson(base), authPolicyJson(policy)) };
    });
    // This node applies the change at once; the others when their cache runs out.
    this.cached = { policy: result.policy, at: Date.now() };
    return result;
  }
}

function safeParse(stored: unknown): AuthPolicy {
  try {
    return parseAuthPolicy(stored);
  } catch {
    return DEFAULT_AUTH_POLICY;
  }
}

function changedFields(before: Record<string, unknown>, after: Record<string, unknown>, prefix = ''): string[] {
  const out: string[] = [];
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const a = before[key];
    const b = after[key];
    if (isObject(a) && isObject(b)) out.push(...changedFields(a, b, `${prefix}${key}.`));
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${prefix}${key}`);
  }
  return out;
}

const stores = new WeakMap<Kysely<Database>, AuthPolicyStore>();

/** The policy store of this database handle: one cache per node, shared by every consumer in it. */
export function authPolicy(db: Kysely<Database>): AuthPolicyStore {
  let store = stores.get(db);
  if (!store) stores.set(db, (store = new AuthPolicyStore(db)));
  return store;
}

function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
