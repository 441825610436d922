/** Who an account is to the clinic. Every role-dependent rule reads its roles from here. */
export const ROLES = ['patient', 'clinician', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Staff sign in with a second factor; patients are offered one. */
export const ROLES_REQUIRING_MFA: ReadonlySet<Role> = new Set(['clinician', 'admin']);
