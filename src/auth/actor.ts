/**
 * Who is asking. Every read and write of the record is made on behalf of an Actor; the access
 * policy (auth/access/access-policy.ts) decides from the actor's scope what it may see and
 * change — this is the one place identity plugs into.
 */
export type AccessScope =
  /** The whole record: the system itself, and the bootstrap admin token (the installer's break-in key). */
  | { kind: 'full' }
  /** A patient (or a guest): only resources in these patients' compartments, and only the writes a patient is expected to make. */
  | { kind: 'patient-compartment'; patients: string[] }
  /** A clinician: the patients they have a care relationship with, plus emergency (break-the-glass) grants. */
  | { kind: 'clinician'; practitioner: string; breakGlass: BreakGlassAccess[] }
  /** Reception (front desk): every patient's demographics and appointments, to register, book and invite; no clinical content. */
  | { kind: 'reception' }
  /** An administrator: accounts, configuration and administrative data, but no clinical content. */
  | { kind: 'admin' };

/** A live break-the-glass grant: access to one patient, every use flagged in the audit trail. */
export interface BreakGlassAccess {
  grantId: string;
  /** `Patient/<id>` */
  patient: string;
  expires: Date;
}

export interface Actor {
  /** Stable id for the audit trail, e.g. `admin-token`, `Practitioner/…`, `Patient/…`. Never a name. */
  ref: string;
  scope: AccessScope;
  /** OAuth access tokens only: the SMART resource scopes of the token (system/, or patient/ and user/ for an app acting for a user; auth/oauth/smart-scopes.ts), a further narrowing. */
  scopes?: string[];
}

export interface RequestOrigin {
  requestId: string;
  source: string;
}

export const SYSTEM_ACTOR: Actor = { ref: 'system', scope: { kind: 'full' } };
