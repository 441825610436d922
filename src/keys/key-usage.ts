import { sql, type Kysely } from 'kysely';
import { totpSecretKekId } from '../auth/accounts/account-keys.js';
import type { Database } from '../db/schema.js';
import type { Store } from '../db/database.js';
import type { KeyRing } from '../documents/key-ring.js';

/** The two account columns that hold a sealed TOTP secret (in use, and waiting for its first code). */
export const TOTP_COLUMNS = ['totp_secret_sealed', 'totp_pending_sealed'] as const;
export type TotpColumn = (typeof TOTP_COLUMNS)[number];

export interface KeyUse {
  documents: number;
  totpSecrets: number;
}

export interface KeyUsage {
  /** Per KEK id, in the ring's order first, then ids only the database names. */
  byKek: Map<string, KeyUse>;
  /** TOTP secrets (from before key ids were recorded) that no key of the ring opens. */
  unopenableTotp: number;
  /** Per KEK id, e-mails still queued (their content sealed) in the outbox: sent or failed ones hold nothing. */
  outboxByKek: Map<string, number>;
}

/** Who uses which key: counted from the rows themselves, so it is right whatever happened before. */
export async function keyUsage(db: Kysely<Database>, ring: KeyRing): Promise<KeyUsage> {
  const byKek = new Map<string, KeyUse>(ring.ids().map((id) => [id, { documents: 0, totpSecrets: 0 }]));
  const use = (id: string) => byKek.get(id) ?? byKek.set(id, { documents: 0, totpSecrets: 0 }).get(id)!;

  const documents = await db.selectFrom('document_blob').select(['kek_id', (eb) => eb.fn.countAll<number>().as('n')]).groupBy('kek_id').execute();
  for (const row of documents) use(row.kek_id).documents += Number(row.n);

  let unopenableTotp = 0;
  for (const column of TOTP_COLUMNS) {
    const tagged = await sql<{ kek_id: string; n: number }>`
      select substr(${sql.ref(column)}, 5, 16) as kek_id, count(*)::int as n from account
       where ${sql.ref(column)} like 'kek.%' group by 1`.execute(db);
    for (const row of tagged.rows) use(row.kek_id).totpSecrets += Number(row.n);
    // Untagged values are few (staff accounts sealed before this format): find their key by opening them.
    const untagged = await sql<{ id: string; sealed: string }>`
      select id, ${sql.ref(column)} as sealed from account where ${sql.ref(column)} is not null and ${sql.ref(column)} not like 'kek.%'`.execute(db);
    for (const row of untagged.rows) {
      const kekId = totpSecretKekId(ring, row.sealed, row.id);
      if (kekId) use(kekId).totpSecrets++;
      else unopenableTotp++;
    }
  }
  const outbox = await db.selectFrom('notification_outbox').select(['kek_id', (eb) => eb.fn.countAll<number>().as('n')]).where('kek_id', 'is not', null).groupBy('kek_id').execute();
  const outboxByKek = new Map(outbox.map((row) => [row.kek_id!, Number(row.n)]));
  return { byKek, unopenableTotp, outboxByKek };
}

/** Rows still under a key other than `currentId` that the ring holds: an unfinished rotation. */
export function pendingUnder(usage: KeyUsage, ring: KeyRing, currentId: string): KeyUse {
  const held = new Set(ring.ids());
  const total = { documents: 0, totpSecrets: 0 };
  for (const [id, use] of usage.byKek) {
    if (id === currentId || !held.has(id)) continue;
    total.documents += use.documents;
    total.totpSecrets += use.totpSecrets;
  }
  return total;
}

/** Queued e-mails still sealed under a key other than `currentId` that the ring holds. */
export function pendingOutboxUnder(usage: KeyUsage, ring: KeyRing, currentId: string): number {
  const held = new Set(ring.ids());
  let total = 0;
  for (const [id, n] of usage.outboxByKek) if (id !== currentId && held.has(id)) total += n;
  return total;
}

/** KEK ids that rows name but the ring does not hold: those rows can not be opened here. */
export function unknownKeys(usage: KeyUsage, ring: KeyRing): Array<[string, KeyUse]> {
  const held = new Set(ring.ids());
  return [...usage.byKek].filter(([id, use]) => !held.has(id) && use.documents + use.totpSecrets > 0);
}

export type KeysStore = Pick<Store, 'db' | 'kind'>;

const KEYS_LOCK = '7017846207087387497';

/**
 * One keys command at a time per database. On PostgreSQL a session advisory lock held on a
 * connection of its own (the work uses the pool); PGlite admits one process, and the data-dir
 * lock already keeps a second command out.
 */
export async function withKeysLock<T>(store: KeysStore, work: () => Promise<T>): Promise<T> {
  if (store.kind !== 'postgres') return work();
  return store.db.connection().execute(async (conn) => {
    const got = await sql<{ ok: boolean }>`select pg_try_advisory_lock(${KEYS_LOCK}::bigint) as ok`.execute(conn);
    if (!got.rows[0]?.ok) throw new Error('another `telesalud keys` command is running on this database: wait for it to finish');
    try {
      return await work();
    } finally {
      await sql`select pg_advisory_unlock(${KEYS_LOCK}::bigint)`.execute(conn);
    }
  });
}
