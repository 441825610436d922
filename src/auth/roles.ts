/** Who an account is to the clinic. Every role-dependent rule reads its roles from here. */
export const ROLES = ['patient', 'clinician', 'reception', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Roles of the clinic's own people: they sign in to a workspace, not to the patient portal. */
export const STAFF_ROLES: ReadonlySet<Role> = new Set(['clinician', 'reception', 'admin']);

/**
 * By default staff sign in with a second factor and patients are offered one. The value in force
 * is the admin's stored policy (policy/auth-policy.ts, `mfaRequired`), which starts from this.
 */
export const ROLES_REQUIRING_MFA: ReadonlySet<Role> = new Set(['clinician', 'reception', 'admin']);
