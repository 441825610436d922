import type { ColumnType, Generated } from 'kysely';

/** Tables with a fixed shape. Resource tables are addressed through the resource type registry. */
export interface Database {
  account: {
    id: string;
    email: string;
    role: string;
    display_name: string | null;
    fhir_ref: string | null;
    status: string;
    password_hash: string | null;
    password_changed_at: Date | string | null;
    totp_secret_sealed: string | null;
    totp_last_step: number | null;
    failed_sign_ins: number;
    last_failed_at: Date | string | null;
    locked_until: Date | string | null;
    created: ColumnType<Date, Date | string | undefined, never>;
    /** Migration 0008: a TOTP secret shown to the user, waiting for its first code. */
    totp_pending_sealed: ColumnType<string | null, string | null | undefined, string | null>;
  };
  password_history: { account_id: string; hash: string; changed_at: Date | string };
  recovery_code: { account_id: string; position: number; hash: string; used_at: Date | string | null };
  session: {
    token_hash: Buffer;
    account_id: string;
    csrf_token: string;
    created: Date | string;
    last_seen: Date | string;
    idle_timeout_seconds: number;
    expires: Date | string;
    /** Migration 0020: the last re-authentication for a sensitive action; null until there is one (sign-in is not one). */
    reauthenticated_at: ColumnType<Date | string | null, Date | string | null | undefined, Date | string | null>;
    source: string | null;
    user_agent: string | null;
    /** Migration 0008: null, or the one thing this session may do ('password-expired', 'mfa-enrolment'). */
    restriction: ColumnType<string | null, string | null | undefined, string | null>;
  };
  sign_in_throttle: { source: string; failures: number; window_start: Date | string };
  /** Migration 0008: the admin's authentication policy; invitations; passkeys and their single-use challenges. */
  auth_setting: { name: string; value: unknown; updated: Date | string; updated_by: string };
  invitation: {
    id: string;
    token_hash: Buffer;
    email: string;
    role: string;
    display_name: string | null;
    fhir_ref: string | null;
    invited_by: string;
    created: Date | string;
    expires: Date | string;
    used_at: Date | string | null;
    account_id: string | null;
    /** Migration 0014: a revoked invitation answers like an expired one. */
    revoked_at: ColumnType<Date | string | null, Date | string | null | undefined, Date | string | null>;
    revoked_by: ColumnType<string | null, string | null | undefined, string | null>;
  };
  passkey_credential: { id: string; account_id: string; public_key: Buffer; counter: ColumnType<string | number, number, number>; transports: string; label: string; created: Date | string; last_used: Date | string | null };
  /** Migration 0017: re-authentication challenges name their action in `purpose` and the session they were issued to. */
  webauthn_challenge: {
    challenge: string;
    account_id: string;
    purpose: 'register' | 'sign-in' | 'reauth:break-glass' | 'reauth:export' | 'reauth:mfa-change';
    expires: Date | string;
    session_id: ColumnType<string | null, string | null | undefined, string | null>;
  };
  /** Migration 0005: clinicians put in charge of patients, and emergency access grants. */
  care_assignment: { practitioner: string; patient: string; assigned_by: string; reason: 'created-patient' | 'assigned'; created: ColumnType<Date, Date | string | undefined, never> };
  break_glass_grant: { id: string; practitioner: string; patient: string; account_id: string; reason: string; granted: Date | string; expires: Date | string };
  /** Migration 0006: OAuth 2.0 clients of the FHIR API; only digests of secrets and tokens are stored. */
  oauth_client: {
    id: string;
    name: string;
    /** Null for a public client (migration 0019): it has no secret. */
    secret_hash: Buffer | null;
    scopes: string;
    status: string;
    created: ColumnType<Date, Date | string | undefined, never>;
    revoked_at: Date | string | null;
    /** Migration 0019: SMART App Launch clients. */
    client_type: ColumnType<'confidential' | 'public', 'confidential' | 'public' | undefined, never>;
    redirect_uris: ColumnType<string[], string[] | undefined, string[]>;
  };
  oauth_access_token: {
    token_hash: Buffer;
    client_id: string;
    scopes: string;
    issued: Date | string;
    expires: Date | string;
    /** Migration 0019: the account an app's token acts for, its launch patient, and the code it came from. */
    account_id: ColumnType<string | null, string | null | undefined, never>;
    patient: ColumnType<string | null, string | null | undefined, never>;
    grant_hash: ColumnType<Buffer | null, Buffer | null | undefined, never>;
  };
  /** Migration 0019: refresh tokens (offline_access), rotated; `family` is the code they all descend from. */
  oauth_refresh_token: {
    token_hash: Buffer;
    family: Buffer;
    client_id: string;
    account_id: string;
    scopes: string;
    patient: string | null;
    issued: Date | string;
    expires: Date | string;
    used: Date | string | null;
  };
  /** Migration 0019: authorization codes of SMART App Launch (single use, 60 s), by SHA-256. */
  oauth_authorization_code: {
    code_hash: Buffer;
    client_id: string;
    account_id: string;
    redirect_uri: string;
    scopes: string;
    code_challenge: string;
    patient: string | null;
    issued: Date | string;
    expires: Date | string;
    redeemed: Date | string | null;
  };
  oauth_token_throttle: { source: string; failures: number; window_start: Date | string };
  resource_history: {
    resource_type: string;
    id: string;
    version_id: number;
    last_updated: Date | string;
    deleted: boolean;
    content: unknown;
  };
  /** last_updated: the resource's, copied so string search orders by recency from the index (0021); null only when the resource row is missing. */
  search_string: { resource_type: string; resource_id: string; code: string; value: string; last_updated: ColumnType<Date | string | null, string | undefined, string> };
  appointment_booking: { appointment_id: string; participant: string; during: string };
  /** Migration 0002 chains the entries: seq is the dense position, hash covers prev_hash and the entry. */
  audit_event: {
    id: Generated<number>;
    seq: number;
    recorded: ColumnType<Date, string, never>;
    actor: string;
    action: string;
    resource_type: string | null;
    resource_id: string | null;
    patient: string | null;
    outcome: string;
    source: string | null;
    request_id: string | null;
    detail: unknown;
    prev_hash: Uint8Array;
    hash: Uint8Array;
  };
  audit_checkpoint: {
    seq: number;
    hash: Uint8Array;
    signed_at: ColumnType<Date, string, never>;
    key_id: string;
    signature: Uint8Array;
  };
  /** Migration 0013: one signed row per retention removal of a chain prefix (first_seq…last_seq). */
  audit_retention: {
    id: Generated<number>;
    first_seq: number;
    last_seq: number;
    last_hash: Uint8Array;
    horizon: ColumnType<Date, string, never>;
    removed_at: ColumnType<Date, string, never>;
    entries_removed: number;
    checkpoints_removed: number;
    archive_sha256: string | null;
    key_id: string;
    signature: Uint8Array;
  };
  document_blob: {
    id: string;
    content_type: string;
    size: number;
    sha256: string;
    kek_id: string;
    wrapped_key: Buffer;
    nonce: Buffer;
    tag: Buffer;
    ciphertext: Buffer;
    created: ColumnType<Date, Date | undefined, never>;
  };
  /** Migration 0004: single-use guest links (token hashed), invitations of a second clinician, daily traffic. */
  consult_guest_link: {
    id: string;
    token_hash: Buffer;
    appointment_id: string;
    label: string;
    created_by: string;
    created: Date | string;
    expires: Date | string;
    used_at: Date | string | null;
  };
  consult_invitation: { appointment_id: string; practitioner_ref: string; invited_by: string; created: Date | string };
  /** Migration 0015 added the relayed part (bytes over TURN relays, as the browsers report it). */
  consult_traffic_daily: {
    day: string;
    sent_bytes: ColumnType<string | number, number, number>;
    received_bytes: ColumnType<string | number, number, number>;
    relayed_sent_bytes: ColumnType<string | number, number | undefined, number>;
    relayed_received_bytes: ColumnType<string | number, number | undefined, number>;
  };
  /** Migration 0011: which version of the privacy notice a patient accepted for telehealth, when, through which account. */
  telehealth_consent: { patient_ref: string; notice_version: string; accepted_at: Date | string; account_id: string; source: string };
  /** Migration 0018: outgoing e-mail, its content sealed (src/notifications/mail-outbox.ts). */
  notification_outbox: {
    id: string;
    template: string;
    status: 'pending' | 'sending' | 'sent' | 'failed';
    attempts: number;
    next_attempt_at: Date | string;
    lease_until: Date | string | null;
    created: Date | string;
    sent_at: Date | string | null;
    last_error: string | null;
    kek_id: string | null;
    wrapped_key: Buffer | null;
    nonce: Buffer | null;
    ciphertext: Buffer | null;
    tag: Buffer | null;
  };
}
