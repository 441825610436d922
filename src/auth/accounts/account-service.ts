import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { KeyRing } from '../../documents/key-ring.js';
import type { Repository } from '../../records/repository.js';
import { newTotpSecret } from '../mfa/totp.js';
import { checkPassword, hashPassword, type PasswordProblem } from '../passwords/index.js';
import { authPolicy } from '../policy/auth-policy.js';
import { ROLES, type Role } from '../roles.js';
import { sealAccountTotpSecret } from './account-keys.js';
import { personalInputs } from './account-passwords.js';

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,189}\.[^\s@]{2,63}$/;

export class AccountError extends Error {
  constructor(readonly code: string, message: string, readonly problems?: PasswordProblem[]) {
    super(message);
    this.name = 'AccountError';
  }
}

export interface NewAccount {
  id: string;
  email: string;
  role: Role;
  patientId?: string;
  practitionerId?: string;
  /** base32, returned once when the role requires MFA. */
  totpSecret?: string;
}

/**
 * Creates an account with the FHIR resource it stands for (a patient's Patient, a clinician's
 * Practitioner) and, for roles the policy in force requires MFA of, a TOTP secret: enrolled at
 * once (`user add`: the secret is printed) or, with `totp: 'pending'` (an invitation), waiting
 * for the user's first code. `fhirRef` links an existing resource instead of creating one.
 */
export async function createAccount(
  db: Kysely<Database>,
  records: Repository,
  keyRing: KeyRing,
  input: { email: string; role: string; name?: string; password: string; fhirRef?: string; totp?: 'enrolled' | 'pending' },
): Promise<NewAccount> {
  const email = input.email.trim().toLowerCase();
  if (!EMAIL.test(email)) throw new AccountError('bad-email', `"${input.email}" is not an email address`);
  if (!(ROLES as readonly string[]).includes(input.role)) throw new AccountError('bad-role', `role must be one of ${ROLES.join(', ')}`);
  const role = input.role as Role;
  const name = input.name?.trim();
  if (name !== undefined && (name.length === 0 || name.length > 200)) throw new AccountError('bad-name', 'name must have 1 to 200 characters');
  const policy = await authPolicy(db).current();
  const check = await checkPassword(input.password, { policy: policy.password, userInputs: personalInputs(email, name), previousHashes: [] });
  if (!check.ok) throw new AccountError('weak-password', `the password is not accepted: ${check.problems.map((p) => p.code).join(', ')}`, check.problems);
  if (await db.selectFrom('account').select('id').where('email', '=', email).executeTakeFirst()) throw new AccountError('exists', `an account for ${email} already exists`);

  const id = randomUUID();
  const passwordHash = await hashPassword(input.password);
  const humanName = name ? [{ text: name, ...splitName(name) }] : undefined;
  let fhirRef: string | undefined;
  let resourceIds: Pick<NewAccount, 'patientId' | 'practitionerId'> = {};
  if (input.fhirRef) {
    fhirRef = input.fhirRef;
    const [type, resourceId] = input.fhirRef.split('/') as [string, string];
    resourceIds = type === 'Patient' ? { patientId: resourceId } : type === 'Practitioner' ? { practitionerId: resourceId } : {};
  } else if (role === 'patient') {
    const patient = await records.create({ resourceType: 'Patient', active: true, ...(humanName ? { name: humanName } : {}), telecom: [{ system: 'email', value: email }] });
    fhirRef = `Patient/${patient.id}`;
    resourceIds = { patientId: patient.id };
  } else if (role === 'clinician') {
    const practitioner = await records.create({ resourceType: 'Practitioner', active: true, ...(humanName ? { name: humanName } : {}), telecom: [{ system: 'email', value: email }] });
    fhirRef = `Practitioner/${practitioner.id}`;
    resourceIds = { practitionerId: practitioner.id };
  }
  const totpSecret = policy.mfaRequired[role] ? newTotpSecret() : undefined;
  const pending = input.totp === 'pending';
  const now = new Date();
  await db.transaction().execute(async (tx) => {
    await tx
      .insertInto('account')
      .values({
        id,
        email,
        role,
        display_name: name ?? null,
        fhir_ref: fhirRef ?? null,
        status: 'active',
        password_hash: passwordHash,
        password_changed_at: now,
        totp_secret_sealed: totpSecret && !pending ? sealAccountTotpSecret(keyRing, totpSecret, id) : null,
        totp_pending_sealed: totpSecret && pending ? sealAccountTotpSecret(keyRing, totpSecret, id) : null,
        totp_last_step: null,
        failed_sign_ins: 0,
        last_failed_at: null,
        locked_until: null,
      })
      .execute();
    await tx.insertInto('password_history').values({ account_id: id, hash: passwordHash, changed_at: now }).execute();
  });
  return { id, email, role, ...resourceIds, ...(totpSecret ? { totpSecret } : {}) };
}

function splitName(name: string): { family?: string; given?: string[] } {
  const parts = name.split(/\s+/);
  if (parts.length < 2) return { family: name };
  return { given: [parts[0]!], family: parts.slice(1).join(' ') };
}
