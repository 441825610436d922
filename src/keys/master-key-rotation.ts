import { sql, type Kysely } from 'kysely';
import { resealAccountTotpSecret } from '../auth/accounts/account-keys.js';
import { replaceSecretFile } from '../config/secret-file.js';
import { bytes } from '../db/bytes.js';
import type { Database } from '../db/schema.js';
import { DocumentIntegrityError, rewrapKey } from '../documents/envelope-crypto.js';
import { formatKeyFile, newKek, UnknownKeyError, type KeyEncryptionKey, type KeyRing } from '../documents/key-ring.js';
import { outboxAssociatedData } from '../notifications/mail-outbox.js';
import { keyUsage, pendingOutboxUnder, pendingUnder, TOTP_COLUMNS, withKeysLock, type KeysStore, type KeyUse, type TotpColumn } from './key-usage.js';
import { recordKeyEvent } from './key-rotation-audit.js';

/**
 * `telesalud keys rotate`: a new key-encryption key goes first in the key file, then every document
 * key, queued e-mail (the outbox, src/notifications) and TOTP secret is re-wrapped under it, a batch at a time, while nodes keep serving. Each
 * batch is one UPDATE that only touches rows still as read (`… AND kek_id = <old>`), so a
 * concurrent change wins and nothing is lost. Progress lives in the rows themselves: whatever
 * still names an older key is what is left, so a crash is finished by running the pass again.
 */

export const DEFAULT_BATCH_SIZE = 500;
/** Full passes over the tables: a second catches rows a lagging node sealed under the old key meanwhile. */
const PASSES = 2;

export interface RewrapProgress {
  phase: 'documents' | 'totp';
  done: number;
  total: number;
}

export interface RewrapOptions {
  batchSize?: number;
  onProgress?: (progress: RewrapProgress) => void;
  /** Checked between batches: the pass stops cleanly, and `--resume` finishes it. */
  signal?: AbortSignal;
}

export interface RewrapSummary {
  targetKekId: string;
  documents: number;
  totpSecrets: number;
  batches: number;
  /** Rows naming a key this ring does not hold: they stay as they are (reported, never guessed at). */
  unknownKey: number;
  /** Rows whose wrapped key fails its integrity check under the key it names. */
  damaged: number;
  /** Left under older keys after the pass: sealed meanwhile by nodes that still use an older key file. */
  remaining: KeyUse;
  /** Queued e-mails whose sealed content was re-wrapped, and those still under an older key after the pass. */
  outbox: { rewrapped: number; remaining: number };
  stopped: boolean;
  seconds: number;
}

export interface RotateResult extends RewrapSummary {
  /** The key added by this run; undefined when it finished an earlier rotation instead. */
  newKekId?: string;
  previousKekId: string;
  keyFile: string;
}

export class KeyRotationRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyRotationRefused';
  }
}

/** The key file a ring re-reads, or a one-line refusal for keys given some other way. */
export function rotatableKeyFile(ring: KeyRing): string {
  const file = ring.source?.file;
  if (!file) {
    throw new KeyRotationRefused(
      'the master key comes from TELESALUD_MASTER_KEY, which telesalud can not rewrite: to rotate, put it in a key file instead (one base64 key a line, mode 0600; a secret manager can mount it), point TELESALUD_MASTER_KEY_FILE at it on every node, unset TELESALUD_MASTER_KEY, then run `telesalud keys rotate`',
    );
  }
  return file;
}

/**
 * Adds a new current key and re-wraps everything under it; when rows still name an older key the
 * ring holds (an earlier rotation interrupted, or `resume`), finishes that instead of adding another.
 */
export async function rotateMasterKey(store: KeysStore, ring: KeyRing, options: RewrapOptions & { resume?: boolean; comment?: string } = {}): Promise<RotateResult> {
  const keyFile = rotatableKeyFile(ring);
  return withKeysLock(store, async () => {
    // The file as it is now: keys another operator added since this process loaded it are kept.
    ring.reload();
    const previousKekId = ring.current().id;
    const usage = await keyUsage(store.db, ring);
    const pending = pendingUnder(usage, ring, previousKekId);
    const pendingOutbox = pendingOutboxUnder(usage, ring, previousKekId);
    let newKekId: string | undefined;
    const adding = !options.resume && pending.documents + pending.totpSecrets + pendingOutbox === 0;
    const kek = adding ? newKek() : undefined;
    // On record before anything changes: a rotation that cannot be audited does not start.
    await recordKeyEvent(store.db, {
      action: 'key-rotation-started',
      outcome: 'success',
      detail: {
        previousKekId,
        ...(kek ? { newKekId: kek.id } : { finishing: true }),
        toRewrap: kek ? pendingUnder(usage, ring, kek.id) : pending,
        outboxToRewrap: kek ? pendingOutboxUnder(usage, ring, kek.id) : pendingOutbox,
      },
    });
    if (kek) {
      const keks = [kek, ...ring.ids().map((id) => ring.byId(id))];
      await replaceSecretFile(keyFile, formatKeyFile(keks, options.comment ?? `rotated ${new Date().toISOString()}`));
      ring.reload();
      if (ring.current().id !== kek.id) throw new Error(`${keyFile}: re-reading the key file just written did not give the new key ${kek.id}`);
      newKekId = kek.id;
    }
    let summary: RewrapSummary;
    try {
      summary = await rewrapUnderCurrent(store.db, ring, options);
    } catch (err) {
      await recordKeyEvent(store.db, { action: 'key-rotation-finished', outcome: 'failed', detail: { targetKekId: ring.current().id, error: (err as Error).name } }).catch(() => undefined);
      throw err;
    }
    const { targetKekId, documents, totpSecrets, remaining, outbox, unknownKey, damaged, stopped } = summary;
    await recordKeyEvent(store.db, {
      action: 'key-rotation-finished',
      // Interrupted (resumable) or rows left under an older key: not done yet.
      outcome: !stopped && remaining.documents + remaining.totpSecrets + outbox.remaining === 0 ? 'success' : 'failed',
      detail: { targetKekId, previousKekId, rewrapped: { documents, totpSecrets }, remaining, outbox, unknownKey, damaged, interrupted: stopped },
    });
    return { ...summary, ...(newKekId ? { newKekId } : {}), previousKekId, keyFile };
  });
}

/** Re-wraps every document key, queued e-mail and TOTP secret that names another key than the ring's current one. */
export async function rewrapUnderCurrent(db: Kysely<Database>, ring: KeyRing, options: RewrapOptions = {}): Promise<RewrapSummary> {
  const started = performance.now();
  const target = ring.current();
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  const summary: RewrapSummary = {
    targetKekId: target.id,
    documents: 0,
    totpSecrets: 0,
    batches: 0,
    unknownKey: 0,
    damaged: 0,
    remaining: { documents: 0, totpSecrets: 0 },
    outbox: { rewrapped: 0, remaining: 0 },
    stopped: false,
    seconds: 0,
  };
  const stop = () => options.signal?.aborted === true;

  const docTotal = Number((await db.selectFrom('document_blob').select((eb) => eb.fn.countAll<number>().as('n')).where('kek_id', '<>', target.id).executeTakeFirst())?.n ?? 0);
  let docDone = 0;
  // A row that can not be re-wrapped is counted once, however many passes meet it.
  const skipped = new Set<string>();
  for (let pass = 0; pass < PASSES && !summary.stopped; pass++) {
    let after: string | undefined;
    let changed = 0;
    for (;;) {
      if (stop()) {
        summary.stopped = true;
        break;
      }
      let query = db.selectFrom('document_blob').select(['id', 'kek_id', 'wrapped_key']).where('kek_id', '<>', target.id).orderBy('id').limit(batchSize);
      if (after !== undefined) query = query.where('id', '>', after);
      const rows = await query.execute();
      if (rows.length === 0) break;
      after = rows.at(-1)!.id;
      const updates: Array<{ id: string; oldKek: string; wrappedKey: Buffer }> = [];
      for (const row of rows) {
        // The document id is the associated data every document key is wrapped with.
        const wrappedKey = rewrapOrCount(ring, target, row.id, row.kek_id, bytes(row.wrapped_key), row.id, skipped, summary);
        if (wrappedKey) updates.push({ id: row.id, oldKek: row.kek_id, wrappedKey });
      }
      const updated = await updateDocuments(db, target, updates);
      summary.documents += updated;
      changed += updated;
      docDone += rows.length;
      summary.batches++;
      options.onProgress?.({ phase: 'documents', done: Math.min(docDone, docTotal), total: docTotal });
    }
    if (changed === 0) break;
  }

  if (!summary.stopped) summary.outbox.rewrapped = await rewrapOutbox(db, ring, target, batchSize, summary, stop);

  for (const column of TOTP_COLUMNS) {
    if (summary.stopped) break;
    const resealed = await resealTotpColumn(db, ring, target, column, batchSize, options, summary, stop);
    summary.totpSecrets += resealed;
  }

  const usage = await keyUsage(db, ring);
  summary.remaining = pendingUnder(usage, ring, target.id);
  summary.outbox.remaining = pendingOutboxUnder(usage, ring, target.id);
  summary.seconds = (performance.now() - started) / 1000;
  return summary;
}

/**
 * A row's data key wrapped under the target instead, or undefined when it can't be: wrapped by a
 * key this ring lacks, or damaged. Such a row is counted once however many passes meet it, and
 * stays as it is for `keys status` to show.
 */
function rewrapOrCount(
  ring: KeyRing,
  target: KeyEncryptionKey,
  rowId: string,
  kekId: string,
  wrappedKey: Buffer,
  associatedData: string,
  skipped: Set<string>,
  summary: RewrapSummary,
): Buffer | undefined {
  try {
    return rewrapKey(ring, { kekId, wrappedKey }, associatedData, target.id).wrappedKey;
  } catch (err) {
    if (!(err instanceof UnknownKeyError || err instanceof DocumentIntegrityError)) throw err;
    if (skipped.has(rowId)) return undefined;
    skipped.add(rowId);
    if (err instanceof UnknownKeyError) summary.unknownKey++;
    else summary.damaged++;
    return undefined;
  }
}

/** One statement per batch; only rows that still name the key they were read with change. */
async function updateDocuments(db: Kysely<Database>, target: KeyEncryptionKey, updates: Array<{ id: string; oldKek: string; wrappedKey: Buffer }>): Promise<number> {
  if (updates.length === 0) return 0;
  const values = sql.join(updates.map((u) => sql`(${u.id}::uuid, ${u.oldKek}::text, ${u.wrappedKey}::bytea)`));
  const result = await sql<{ id: string }>`
    update document_blob d set kek_id = ${target.id}, wrapped_key = v.wrapped_key
      from (values ${values}) as v(id, old_kek, wrapped_key)
     where d.id = v.id and d.kek_id = v.old_kek
    returning d.id`.execute(db);
  return result.rows.length;
}

/**
 * Queued e-mails: their data keys re-wrapped like documents' (bound to `notification_outbox:<id>`),
 * so a message waiting for its next try still opens once the old key is retired. Sent and failed
 * rows hold no content (kek_id null) and are not touched. The queue is short (messages leave
 * within hours), so no progress is shown for it. Each update only changes a row still under the
 * key it was read with: a row sent (and erased) meanwhile stays erased.
 */
async function rewrapOutbox(db: Kysely<Database>, ring: KeyRing, target: KeyEncryptionKey, batchSize: number, summary: RewrapSummary, stop: () => boolean): Promise<number> {
  let rewrapped = 0;
  const skipped = new Set<string>();
  for (let pass = 0; pass < PASSES; pass++) {
    let after: string | undefined;
    let changed = 0;
    for (;;) {
      if (stop()) {
        summary.stopped = true;
        return rewrapped;
      }
      let query = db.selectFrom('notification_outbox').select(['id', 'kek_id', 'wrapped_key']).where('kek_id', 'is not', null).where('kek_id', '<>', target.id).orderBy('id').limit(batchSize);
      if (after !== undefined) query = query.where('id', '>', after);
      const rows = await query.execute();
      if (rows.length === 0) break;
      after = rows.at(-1)!.id;
      const updates: Array<{ id: string; oldKek: string; wrappedKey: Buffer }> = [];
      for (const row of rows) {
        if (!row.kek_id || !row.wrapped_key) continue;
        const wrappedKey = rewrapOrCount(ring, target, row.id, row.kek_id, bytes(row.wrapped_key), outboxAssociatedData(row.id), skipped, summary);
        if (wrappedKey) updates.push({ id: row.id, oldKek: row.kek_id, wrappedKey });
      }
      if (updates.length > 0) {
        const values = sql.join(updates.map((u) => sql`(${u.id}::uuid, ${u.oldKek}::text, ${u.wrappedKey}::bytea)`));
        const result = await sql<{ id: string }>`
          update notification_outbox o set kek_id = ${target.id}, wrapped_key = v.wrapped_key
            from (values ${values}) as v(id, old_kek, wrapped_key)
           where o.id = v.id and o.kek_id = v.old_kek
          returning o.id`.execute(db);
        rewrapped += result.rows.length;
        changed += result.rows.length;
      }
      summary.batches++;
    }
    if (changed === 0) break;
  }
  return rewrapped;
}

async function resealTotpColumn(
  db: Kysely<Database>,
  ring: KeyRing,
  target: KeyEncryptionKey,
  column: TotpColumn,
  batchSize: number,
  options: RewrapOptions,
  summary: RewrapSummary,
  stop: () => boolean,
): Promise<number> {
  const col = sql.ref(column);
  const done = `kek.${target.id}.%`;
  const total = Number((await sql<{ n: number }>`select count(*)::int as n from account where ${col} is not null and ${col} not like ${done}`.execute(db)).rows[0]?.n ?? 0);
  let resealedCount = 0;
  let seen = 0;
  let after: string | undefined;
  for (;;) {
    if (stop()) {
      summary.stopped = true;
      break;
    }
    const rows = (
      await sql<{ id: string; sealed: string }>`
        select id, ${col} as sealed from account
         where ${col} is not null and ${col} not like ${done} ${after === undefined ? sql`` : sql`and id > ${after}::uuid`}
         order by id limit ${batchSize}`.execute(db)
    ).rows;
    if (rows.length === 0) break;
    after = rows.at(-1)!.id;
    const updates: Array<{ id: string; old: string; sealed: string }> = [];
    for (const row of rows) {
      try {
        updates.push({ id: row.id, old: row.sealed, sealed: resealAccountTotpSecret(ring, row.sealed, row.id).sealed });
      } catch (err) {
        if (err instanceof UnknownKeyError) summary.unknownKey++;
        else summary.damaged++;
      }
    }
    if (updates.length > 0) {
      const values = sql.join(updates.map((u) => sql`(${u.id}::uuid, ${u.old}::text, ${u.sealed}::text)`));
      // Compared with the exact value read: a user enrolling a new authenticator meanwhile keeps theirs.
      const result = await sql<{ id: string }>`
        update account a set ${col} = v.sealed
          from (values ${values}) as v(id, old, sealed)
         where a.id = v.id and a.${col} = v.old
        returning a.id`.execute(db);
      resealedCount += result.rows.length;
    }
    seen += rows.length;
    summary.batches++;
    options.onProgress?.({ phase: 'totp', done: Math.min(seen, total), total });
  }
  return resealedCount;
}

export interface RetireResult {
  retired: string[];
  kept: string[];
  keyFile: string;
}

/**
 * `telesalud keys retire`: drops from the key file every key but the current one, refusing (and
 * changing nothing) while any row still names one — a document, a TOTP secret or a queued e-mail. Checked again after writing, so a row sealed
 * under a retired key by a lagging node in that moment puts its key back instead of losing it.
 */
export async function retireUnusedKeys(store: KeysStore, ring: KeyRing): Promise<RetireResult> {
  const keyFile = rotatableKeyFile(ring);
  return withKeysLock(store, async () => {
    ring.reload();
    const current = ring.current();
    const usage = await keyUsage(store.db, ring);
    const pending = pendingUnder(usage, ring, current.id);
    const pendingOutbox = pendingOutboxUnder(usage, ring, current.id);
    const old = ring.ids().filter((id) => id !== current.id);
    const refuse = async (message: string): Promise<never> => {
      await recordKeyEvent(store.db, { action: 'key-retired', outcome: 'denied', detail: { currentKekId: current.id, notRetired: old, pending, pendingOutbox } });
      throw new KeyRotationRefused(message);
    };
    if (pending.documents + pending.totpSecrets + pendingOutbox > 0) return refuse(stillUsedLine(usage, ring, current.id));
    if (usage.unopenableTotp > 0) {
      return refuse(`${usage.unopenableTotp} TOTP secret(s) open with no key of ${keyFile}: nothing retired (retiring could lose the key they need)`);
    }
    if (old.length === 0) return { retired: [], kept: [current.id], keyFile };
    const all = ring.ids().map((id) => ring.byId(id));
    await replaceSecretFile(keyFile, formatKeyFile([current], `retired ${old.join(', ')} on ${new Date().toISOString()}`));
    const usageAfter = await keyUsage(store.db, ring);
    const again = pendingUnder(usageAfter, ring, current.id);
    const againOutbox = pendingOutboxUnder(usageAfter, ring, current.id);
    if (again.documents + again.totpSecrets + againOutbox > 0) {
      await replaceSecretFile(keyFile, formatKeyFile(all, `restored: a node sealed under an old key during retire`));
      ring.reload();
      await recordKeyEvent(store.db, { action: 'key-retired', outcome: 'failed', detail: { currentKekId: current.id, notRetired: old, restored: true, pending: again, pendingOutbox: againOutbox } });
      throw new KeyRotationRefused(
        `a node sealed ${again.documents} document(s), ${again.totpSecrets} TOTP secret(s) and ${againOutbox} queued e-mail(s) under an old key while retiring: the keys are back in ${keyFile}; give every node the current key file, run \`telesalud keys rotate --resume\`, then retire`,
      );
    }
    ring.reload();
    await recordKeyEvent(store.db, { action: 'key-retired', outcome: 'success', detail: { retired: old, currentKekId: current.id } });
    return { retired: old, kept: [current.id], keyFile };
  });
}

function stillUsedLine(usage: Awaited<ReturnType<typeof keyUsage>>, ring: KeyRing, currentId: string): string {
  const held = new Set(ring.ids());
  const ids = new Set([...usage.byKek.keys(), ...usage.outboxByKek.keys()]);
  const parts = [...ids]
    .filter((id) => id !== currentId && held.has(id))
    .map((id) => ({ id, use: usage.byKek.get(id) ?? { documents: 0, totpSecrets: 0 }, mails: usage.outboxByKek.get(id) ?? 0 }))
    .filter(({ use, mails }) => use.documents + use.totpSecrets + mails > 0)
    // Queued e-mails named only when there are some: they leave within hours, so often there are none.
    .map(({ id, use, mails }) => `key ${id} still wraps ${use.documents} document(s) and ${use.totpSecrets} TOTP secret(s)${mails > 0 ? ` and seals ${mails} queued e-mail(s)` : ''}`);
  return `nothing retired: ${parts.join('; ')}. Run \`telesalud keys rotate --resume\` (after every node has the current key file), then retire`;
}
