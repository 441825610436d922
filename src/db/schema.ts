import type { ColumnType, Generated } from 'kysely';

/** Tables with a fixed shape. Resource tables are addressed through the resource type registry. */
export interface Database {
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
  audit_event: {
    id: Generated<number>;
    recorded: ColumnType<Date, Date | string | undefined, never>;
    actor: string;
    action: string;
    resource_type: string | null;
    resource_id: string | null;
    patient: string | null;
    outcome: string;
    source: string | null;
    request_id: string | null;
    detail: unknown;
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
