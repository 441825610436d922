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
    reauthenticated_at: Date | string;
    source: string | null;
    user_agent: string | null;
  };
  sign_in_throttle: { source: string; failures: number; window_start: Date | string };
  resource_history: {
    resource_type: string;
    id: string;
    version_id: number;
    last_updated: Date | string;
    deleted: boolean;
    content: unknown;
  };
  search_string: { resource_type: string; resource_id: string; code: string; value: string };
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
}
