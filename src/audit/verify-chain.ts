import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { chainedFieldsOf, chainHash, GENESIS_HASH, type StoredAuditFields } from './audit-chain.js';
import { CHECKPOINT_EVERY_ENTRIES, checkCheckpointSignature, type Checkpoint } from './audit-checkpoint.js';
import type { AuditVerifyingKey } from './audit-signing-key.js';
import { bytes } from '../db/bytes.js';
import { checkRetentionSignature, readRetentionRecords, retentionTableExists, type RetentionRecord } from './audit-retention-record.js';

export type AuditProblemKind = 'altered' | 'inserted' | 'deleted' | 'bad-checkpoint';

export interface AuditChainProblem {
  /** Chain position of the first entry found altered, inserted or deleted (or of the bad checkpoint). 0: a row outside the chain. */
  seq: number;
  kind: AuditProblemKind;
  detail: string;
  /** audit_event.id of the row concerned, when there is one. */
  id?: number;
}

export interface AuditChainReport {
  ok: boolean;
  /** Entries checked (the chain as it stood when verification began). */
  entries: number;
  /** Signed checkpoints checked and found good. */
  checkpoints: number;
  /** Newest checkpoint checked, 0 if none. */
  lastCheckpointSeq: number;
  firstProblem?: AuditChainProblem;
  /**
   * Ranges removed by retention (oldest first): the walk starts after the last one, from the
   * signed checkpoint that anchors it. Absent when the chain still starts at seq 1.
   */
  removed?: RemovedRange[];
  /** Not proof of tampering, but worth an operator's attention (a disabled guard trigger, an unsigned tail). */
  warnings: string[];
}

/** What `audit verify` says about one removal. */
export interface RemovedRange {
  firstSeq: number;
  lastSeq: number;
  entries: number;
  /** Entries recorded before this instant were due for removal. */
  horizon: string;
  removedAt: string;
  archiveSha256: string | null;
}

export interface VerifyAuditChainOptions {
  /** Public keys whose checkpoint signatures are trusted. A checkpoint by any other key is bad. */
  keys: AuditVerifyingKey[];
  /** Rows read per query: memory stays bounded whatever the chain's length. */
  pageSize?: number;
  onProgress?: (checked: number, total: number) => void;
  /** Stop at this position (retention checks the range it is about to remove). */
  upToSeq?: number;
}

interface EntryRow extends StoredAuditFields {
  id: number;
  seq: number;
  prev_hash: Uint8Array | null;
  hash: Uint8Array | null;
}

const DEFAULT_PAGE = 5000;

/**
 * Walks the whole chain in seq order, a page at a time, and stops at the first problem:
 * positions must be dense from 1, every hash must be SHA-256(prev_hash ‖ canonical entry),
 * every prev_hash the hash before it, and every checkpoint validly signed by a trusted key
 * over the hash the chain has at its position. Checkpoints past the end of the chain mean
 * its tail was cut off.
 */
export async function verifyAuditChain(database: Kysely<Database>, options: VerifyAuditChainOptions): Promise<AuditChainReport> {
  const { report, removalsSeen } = await verifyOnce(database, options);
  // A retention removal that committed while we walked (a node's daily run) makes entries vanish
  // under the walk: not tampering. Walk again from the new anchor rather than raise a false alarm.
  if (!report.ok && (await readRetentionRecords(database)).length !== removalsSeen) return (await verifyOnce(database, options)).report;
  return report;
}

async function verifyOnce(database: Kysely<Database>, options: VerifyAuditChainOptions): Promise<{ report: AuditChainReport; removalsSeen: number }> {
  let removalsSeen = 0;
  const report = await walkChain(database, options, (n) => {
    removalsSeen = n;
  });
  return { report, removalsSeen };
}

async function walkChain(database: Kysely<Database>, options: VerifyAuditChainOptions, sawRemovals: (n: number) => void): Promise<AuditChainReport> {
  const db = database;
  const pageSize = options.pageSize ?? DEFAULT_PAGE;
  const keys = new Map(options.keys.map((k) => [k.keyId, k]));
  const warnings = await guardWarnings(database);

  let entries = 0;
  let checkpoints = 0;
  let lastCheckpointSeq = 0;
  let removed: RemovedRange[] = [];
  const report = (firstProblem?: AuditChainProblem): AuditChainReport => ({
    ok: firstProblem === undefined,
    entries,
    checkpoints,
    lastCheckpointSeq,
    ...(firstProblem ? { firstProblem } : {}),
    ...(removed.length > 0 ? { removed } : {}),
    warnings,
  });

  // A row without a place in the chain (only possible once the NOT NULL constraint is gone).
  const outside = await db.selectFrom('audit_event').select('id').where(sql<boolean>`seq is null`).limit(1).executeTakeFirst();
  if (outside) return report({ seq: 0, id: Number(outside.id), kind: 'inserted', detail: `row id ${outside.id} has no place in the chain (its seq is empty)` });

  // Where the chain starts: seq 1 from the genesis value, or after the last retention removal
  // from the hash its signed anchor checkpoint vouches for.
  const start = await retentionAnchor(database, keys);
  sawRemovals(start.removed.length);
  removed = start.removed;
  if (start.problem) return report(start.problem);
  if (start.anchor) {
    checkpoints = 1;
    lastCheckpointSeq = start.anchor.seq;
    // Nothing may be left, or come back, inside a removed range.
    const inside = await db.selectFrom('audit_event').select(['id', 'seq']).where('seq', '<=', start.anchor.seq).orderBy('seq').limit(1).executeTakeFirst();
    if (inside) {
      return report({ seq: Number(inside.seq), id: Number(inside.id), kind: 'inserted', detail: `entry ${inside.seq} (row id ${inside.id}) lies in the range 1…${start.anchor.seq} that retention removed` });
    }
  }
  const anchorSeq = start.anchor?.seq ?? 0;

  // The chain as it stands now; entries appended while we walk are left for the next run.
  const currentHead = Number((await db.selectFrom('audit_event').select((eb) => eb.fn.max('seq').as('seq')).executeTakeFirst())?.seq ?? 0);
  const headSeq = options.upToSeq === undefined ? currentHead : Math.min(currentHead, options.upToSeq);

  const checkpointPages = pagedCheckpoints(database, pageSize, headSeq, anchorSeq);
  let nextCheckpoint = await checkpointPages.next();

  let expected = anchorSeq + 1;
  let prevHash: Buffer = start.anchor ? start.anchor.hash : GENESIS_HASH;
  let prevPrevHash: Buffer | undefined;
  // A checkpoint that disagrees with the chain is held for one more entry: that entry may name
  // the change more precisely (an insertion or a re-hashed entry at the checkpoint's position).
  let held: AuditChainProblem | undefined;
  let heldFor = 0;
  const fail = (problem: AuditChainProblem) => report(held && held.seq < problem.seq ? held : problem);
  const page = (fromSeq: number, fromId: number) => {
    const rows = sql<EntryRow>`
      select id, seq, recorded, actor, action, resource_type, resource_id, patient, outcome, source, request_id, detail, prev_hash, hash
        from audit_event
       where seq >= ${fromSeq} and (seq > ${fromSeq} or id > ${fromId}) and seq <= ${headSeq}
       order by seq, id
       limit ${pageSize}`
      .execute(database)
      .then((r) => r.rows);
    rows.catch(() => undefined); // a prefetch left behind by an early return must not become an unhandled rejection
    return rows;
  };
  let nextPage = anchorSeq > 0 ? page(anchorSeq, Number.MAX_SAFE_INTEGER) : page(0, 0);
  for (;;) {
    const rows = await nextPage;
    // The database reads the next page while this one is hashed.
    const last = rows.at(-1);
    nextPage = last && rows.length === pageSize ? page(Number(last.seq), Number(last.id)) : Promise.resolve([]);
    if (rows.length === 0) break;
    for (const row of rows) {
      if (held) heldFor++;
      const seq = Number(row.seq);
      const id = Number(row.id);
      if (seq < expected) return fail({ seq, id, kind: 'inserted', detail: `a second entry at seq ${seq} (row id ${id}): only one entry can hold a position` });
      if (seq > expected) {
        const missing = seq - expected;
        return fail({ seq: expected, kind: 'deleted', detail: missing === 1 ? `entry ${expected} is missing: the chain goes from ${expected - 1} to ${seq}` : `entries ${expected}…${seq - 1} are missing (${missing})` });
      }
      const stored = row.hash ? bytes(row.hash) : undefined;
      const storedPrev = row.prev_hash ? bytes(row.prev_hash) : undefined;
      if (!stored || !storedPrev) return fail({ seq, id, kind: 'altered', detail: `entry ${seq} has lost its hash` });

      const fields = chainedFieldsOf(row, Number(row.seq));
      if (!chainHash(storedPrev, fields).equals(stored)) {
        // Told apart for the operator: an entry moved by one position is the trace of an insertion or deletion before it.
        if (seq > 1 && chainHash(storedPrev, { ...fields, seq: seq - 1 }).equals(stored)) {
          return fail({ seq: seq - 1, kind: 'inserted', detail: `entry ${seq - 1} was inserted: the entry that held seq ${seq - 1} was moved to ${seq}` });
        }
        if (chainHash(storedPrev, { ...fields, seq: seq + 1 }).equals(stored)) {
          return fail({ seq, kind: 'deleted', detail: `entry ${seq} was deleted and the entries after it moved down by one` });
        }
        return fail({ seq, id, kind: 'altered', detail: `entry ${seq} (row id ${id}) no longer matches its hash` });
      }
      if (!storedPrev.equals(prevHash)) {
        if (seq === 1) return fail({ seq, id, kind: 'altered', detail: 'entry 1 does not start the chain (its prev_hash is not the genesis value)' });
        if (prevPrevHash && storedPrev.equals(prevPrevHash)) {
          return fail({ seq: seq - 1, kind: 'inserted', detail: `entry ${seq - 1} was inserted: entry ${seq} links to the entry before it` });
        }
        return fail({ seq: seq - 1, kind: 'altered', detail: `entry ${seq - 1} was changed and its hash recomputed: entry ${seq} still links to the original` });
      }
      if (held && heldFor >= 1) return report(held);

      while (nextCheckpoint && nextCheckpoint.seq <= seq) {
        const cp = nextCheckpoint;
        const signature = checkCheckpointSignature(keys, cp);
        if (!signature.ok) return fail({ seq: cp.seq, kind: 'bad-checkpoint', detail: `checkpoint at seq ${cp.seq}: ${signature.reason}` });
        // (A checkpoint below `seq` would name a position the walk did not find: a gap, reported above.)
        if (!cp.hash.equals(stored)) {
          held ??= {
            seq: cp.seq,
            kind: 'altered',
            detail: `the chain was rewritten with recomputed hashes between seq ${lastCheckpointSeq + 1} and ${cp.seq}: at ${cp.seq} it no longer has the hash signed at ${cp.signedAt}`,
          };
        } else if (!held) {
          checkpoints++;
          lastCheckpointSeq = cp.seq;
        }
        nextCheckpoint = await checkpointPages.next();
      }

      if (!held) entries++;
      expected++;
      prevPrevHash = prevHash;
      prevHash = stored;
    }
    options.onProgress?.(entries, headSeq);
  }
  if (held) return report(held);
  if (options.upToSeq !== undefined) return report();
  if (entries < headSeq - anchorSeq) {
    return report({ seq: expected, kind: 'deleted', detail: `entries ${expected}…${headSeq} disappeared while the chain was being verified` });
  }

  // Checkpoints past the head: newer than the walk (fine) or the trace of a cut-off tail.
  const beyond: Checkpoint[] = [];
  for (let after = headSeq; ; ) {
    const page = await checkpointPage(database, after, pageSize);
    if (page.length === 0) break;
    for (const cp of page) {
      const signature = checkCheckpointSignature(keys, cp);
      if (!signature.ok) return report({ seq: cp.seq, kind: 'bad-checkpoint', detail: `checkpoint at seq ${cp.seq}: ${signature.reason}` });
      // Only the first and the last matter; keep memory bounded.
      if (beyond.length < 2) beyond.push(cp);
      else beyond[1] = cp;
    }
    after = page.at(-1)!.seq;
  }
  if (beyond.length > 0) {
    // Read after the checkpoints: the entries of every checkpoint seen are committed by now.
    const nowHead = Number((await db.selectFrom('audit_event').select((eb) => eb.fn.max('seq').as('seq')).executeTakeFirst())?.seq ?? 0);
    const cut = beyond.find((cp) => cp.seq > nowHead);
    if (cut) {
      return report({
        seq: nowHead + 1,
        kind: 'deleted',
        detail: `the chain ends at seq ${nowHead}, but a checkpoint signed at ${cut.signedAt} vouches for seq ${cut.seq}: the entries after ${nowHead} were deleted`,
      });
    }
  }

  const unsigned = headSeq - Math.max(lastCheckpointSeq, anchorSeq);
  if (unsigned > CHECKPOINT_EVERY_ENTRIES) warnings.push(`the last ${unsigned} entries are covered by no signed checkpoint (expected one every ${CHECKPOINT_EVERY_ENTRIES}): checkpoints stopped or were removed`);
  return report();
}

async function checkpointPage(db: Kysely<Database>, afterSeq: number, limit: number, upTo?: number): Promise<Checkpoint[]> {
  const rows = (
    await sql<{ seq: number; hash: Uint8Array | null; signed_at: Date | string; key_id: string; signature: Uint8Array | null }>`
      select seq, hash, signed_at, key_id, signature from audit_checkpoint
       where seq > ${afterSeq} ${upTo === undefined ? sql`` : sql`and seq <= ${upTo}`}
       order by seq limit ${limit}`.execute(db)
  ).rows;
  return rows.map((r) => ({
    seq: Number(r.seq),
    hash: r.hash ? bytes(r.hash) : Buffer.alloc(0),
    signedAt: new Date(r.signed_at).toISOString(),
    keyId: r.key_id ?? '',
    signature: r.signature ? bytes(r.signature) : Buffer.alloc(0),
  }));
}

/** The checkpoints up to `upTo`, one at a time, read a page at a time. */
function pagedCheckpoints(db: Kysely<Database>, pageSize: number, upTo: number, from = 0): { next(): Promise<Checkpoint | undefined> } {
  let page: Checkpoint[] = [];
  let index = 0;
  let after = from;
  let done = false;
  return {
    async next() {
      if (index >= page.length && !done) {
        page = await checkpointPage(db, after, pageSize, upTo);
        index = 0;
        if (page.length < pageSize) done = true;
        if (page.length) after = page.at(-1)!.seq;
      }
      return page[index++];
    },
  };
}

interface ChainStart {
  anchor?: Checkpoint;
  removed: RemovedRange[];
  problem?: AuditChainProblem;
}

/**
 * The retention records, each signed by a trusted audit key and together covering 1…n without a
 * gap, and the checkpoint at n that anchors the rest: present, validly signed, with the hash the
 * last record names. Anything else is reported as the problem it is.
 */
async function retentionAnchor(db: Kysely<Database>, keys: ReadonlyMap<string, AuditVerifyingKey>): Promise<ChainStart> {
  const records: RetentionRecord[] = await readRetentionRecords(db);
  const removed: RemovedRange[] = records.map((r) => ({ firstSeq: r.firstSeq, lastSeq: r.lastSeq, entries: r.entriesRemoved, horizon: r.horizon, removedAt: r.removedAt, archiveSha256: r.archiveSha256 }));
  if (records.length === 0) return { removed };
  let next = 1;
  for (const r of records) {
    const signature = checkRetentionSignature(keys, r);
    if (!signature.ok) return { removed, problem: { seq: r.firstSeq, kind: 'bad-checkpoint', detail: `the record of the removal of entries ${r.firstSeq}…${r.lastSeq}: ${signature.reason}` } };
    if (r.firstSeq !== next) {
      return {
        removed,
        problem: r.firstSeq > next
          ? { seq: next, kind: 'deleted', detail: `entries ${next}…${r.firstSeq - 1} are missing: no retention record accounts for them` }
          : { seq: r.firstSeq, kind: 'bad-checkpoint', detail: `two retention records claim seq ${r.firstSeq}` },
      };
    }
    next = r.lastSeq + 1;
  }
  const last = records.at(-1)!;
  const [anchor] = await checkpointPage(db, last.lastSeq - 1, 1, last.lastSeq);
  if (!anchor) {
    return { removed, problem: { seq: last.lastSeq, kind: 'deleted', detail: `the checkpoint at seq ${last.lastSeq} that anchors the chain after the removal of ${last.firstSeq}…${last.lastSeq} (on ${last.removedAt}) is missing` } };
  }
  const signature = checkCheckpointSignature(keys, anchor);
  if (!signature.ok) return { removed, problem: { seq: anchor.seq, kind: 'bad-checkpoint', detail: `anchor checkpoint at seq ${anchor.seq}: ${signature.reason}` } };
  if (!anchor.hash.equals(last.lastHash)) {
    return { removed, problem: { seq: anchor.seq, kind: 'bad-checkpoint', detail: `the anchor checkpoint at seq ${anchor.seq} does not hold the hash of the last removed entry recorded on ${last.removedAt}` } };
  }
  return { anchor, removed };
}

/** The append-only triggers should be there and enabled; their absence is not tampering by itself, but it invites it. */
async function guardWarnings(db: Kysely<Database>): Promise<string[]> {
  const rows = (
    await sql<{ tgname: string; tgenabled: string }>`
      select tgname, tgenabled from pg_trigger
       where tgrelid in ('audit_event'::regclass, 'audit_checkpoint'::regclass, to_regclass('audit_retention')) and not tgisinternal`.execute(db)
  ).rows;
  const warnings: string[] = [];
  const guarded = ['audit_event', 'audit_checkpoint', ...((await retentionTableExists(db)) ? ['audit_retention'] : [])];
  for (const name of guarded.flatMap((t) => [`${t}_append_only`, `${t}_no_truncate`])) {
    const trigger = rows.find((r) => r.tgname === name);
    if (!trigger) warnings.push(`the trigger ${name} that keeps the audit trail append-only is missing`);
    else if (trigger.tgenabled === 'D') warnings.push(`the trigger ${name} that keeps the audit trail append-only is disabled`);
  }
  return warnings;
}
