import { createHash } from 'node:crypto';
import { link, open, rm } from 'node:fs/promises';
import { sql, type Kysely } from 'kysely';
import { bytes } from '../db/bytes.js';
import type { Database } from '../db/schema.js';
import type { AuditEntry, AuditLog } from './audit-log.js';
import { readRetentionRecords, signRetention, MIN_AUDIT_RETENTION_DAYS, type UnsignedRetention } from './audit-retention-record.js';
import type { AuditSigningKey, AuditVerifyingKey } from './audit-signing-key.js';
import { verifyAuditChain } from './verify-chain.js';

const DAY_MS = 86_400_000;

/**
 * Retention of the audit trail (audit entries and the security events that share it: sign-in
 * failures, shield blocks…): checkpoint and truncate. Entries recorded before a horizon are
 * removed only up to the newest signed checkpoint that lies entirely before it, so what remains
 * starts at a position a signature vouches for; the removal is recorded (audit_retention,
 * signed) and is itself an audit entry. See migration 0013 for the database side.
 */

/** The removal a horizon allows right now, or undefined when nothing can go yet. */
export interface RetentionPlan {
  firstSeq: number;
  /** The anchor: a signed checkpoint's position; it and everything before it go, the checkpoint stays. */
  lastSeq: number;
  lastHash: Buffer;
  horizon: Date;
  entries: number;
}

export class AuditRetentionRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuditRetentionRefused';
  }
}

/** The horizon for a retention of `days`, refusing fewer than MIN_AUDIT_RETENTION_DAYS. */
export function retentionHorizon(days: number, now = new Date()): Date {
  if (!Number.isInteger(days) || days < MIN_AUDIT_RETENTION_DAYS) throw new AuditRetentionRefused(`audit retention must be at least ${MIN_AUDIT_RETENTION_DAYS} days, got ${days}`);
  return new Date(now.getTime() - days * DAY_MS);
}

/** Refuses a horizon closer to now than MIN_AUDIT_RETENTION_DAYS (the CLI's `--before DATE`). */
export function checkHorizon(before: Date, now = new Date()): void {
  if (Number.isNaN(before.getTime())) throw new AuditRetentionRefused('not a date: give --before as YYYY-MM-DD or an ISO date-time');
  if (now.getTime() - before.getTime() < MIN_AUDIT_RETENTION_DAYS * DAY_MS) {
    throw new AuditRetentionRefused(`--before ${before.toISOString()} would remove entries younger than ${MIN_AUDIT_RETENTION_DAYS} days: the audit trail is kept at least that long`);
  }
}

export async function planAuditRetention(db: Kysely<Database>, before: Date): Promise<RetentionPlan | undefined> {
  const records = await readRetentionRecords(db);
  const firstSeq = (records.at(-1)?.lastSeq ?? 0) + 1;
  const head = Number((await db.selectFrom('audit_event').select((eb) => eb.fn.max('seq').as('seq')).executeTakeFirst())?.seq ?? 0);
  // Every entry before the first one recorded at or after the horizon is older than it. At least
  // one entry always stays: appends continue from the head.
  const firstYoung = await db.selectFrom('audit_event').select((eb) => eb.fn.min('seq').as('seq')).where('seq', '>=', firstSeq).where('recorded', '>=', before).executeTakeFirst();
  const limit = firstYoung?.seq != null ? Number(firstYoung.seq) : head;
  const anchor = await sql<{ seq: number; hash: Uint8Array }>`
    select c.seq, c.hash from audit_checkpoint c join audit_event e on e.seq = c.seq and e.hash = c.hash
     where c.seq >= ${firstSeq} and c.seq < ${limit}
     order by c.seq desc limit 1`.execute(db);
  const row = anchor.rows[0];
  if (!row) return undefined;
  const lastSeq = Number(row.seq);
  return { firstSeq, lastSeq, lastHash: bytes(row.hash), horizon: before, entries: lastSeq - firstSeq + 1 };
}

export const ARCHIVE_FORMAT = 'telesalud-audit-archive/1';

export interface ArchiveResult {
  file: string;
  entries: number;
  checkpoints: number;
  sha256: string;
}

/**
 * Writes the entries of a plan (and the checkpoints among them, the anchor included) to `file` as
 * JSON lines: a header, one line per entry with its stored fields and hashes, one per checkpoint,
 * and a closing line with the counts. The chain in it can be recomputed offline (audit-chain.ts)
 * and its last hash matches the signed anchor that stays in the database. Written beside and
 * linked into place (never half a file, never over an existing one), mode 0600: it names patients and staff.
 */
export async function archiveAuditRange(db: Kysely<Database>, plan: RetentionPlan, file: string, pageSize = 5000): Promise<ArchiveResult> {
  const tmp = `${file}.${process.pid}.tmp`;
  const hash = createHash('sha256');
  const out = await open(tmp, 'wx', 0o600);
  const write = async (value: unknown) => {
    const line = `${JSON.stringify(value)}\n`;
    hash.update(line);
    await out.write(line);
  };
  let entries = 0;
  let checkpoints = 0;
  try {
    await write({ format: ARCHIVE_FORMAT, firstSeq: plan.firstSeq, lastSeq: plan.lastSeq, horizon: plan.horizon.toISOString(), exportedAt: new Date().toISOString() });
    for (let after = plan.firstSeq - 1; after < plan.lastSeq; ) {
      const rows = await db
        .selectFrom('audit_event')
        .select(['seq', 'recorded', 'actor', 'action', 'resource_type', 'resource_id', 'patient', 'outcome', 'source', 'request_id', 'detail', 'prev_hash', 'hash'])
        .where('seq', '>', after)
        .where('seq', '<=', plan.lastSeq)
        .orderBy('seq')
        .limit(pageSize)
        .execute();
      if (rows.length === 0) break;
      for (const r of rows) {
        await write({
          entry: {
            seq: Number(r.seq),
            recorded: new Date(r.recorded).toISOString(),
            actor: r.actor,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            patient: r.patient,
            outcome: r.outcome,
            source: r.source,
            request_id: r.request_id,
            detail: r.detail ?? null,
            prev_hash: bytes(r.prev_hash).toString('hex'),
            hash: bytes(r.hash).toString('hex'),
          },
        });
        entries++;
      }
      after = Number(rows.at(-1)!.seq);
    }
    const cps = await db.selectFrom('audit_checkpoint').selectAll().where('seq', '>=', plan.firstSeq).where('seq', '<=', plan.lastSeq).orderBy('seq').execute();
    for (const c of cps) {
      await write({ checkpoint: { seq: Number(c.seq), hash: bytes(c.hash).toString('hex'), signed_at: new Date(c.signed_at).toISOString(), key_id: c.key_id, signature: bytes(c.signature).toString('base64') } });
      checkpoints++;
    }
    if (entries !== plan.entries) throw new Error(`the archive holds ${entries} entries where ${plan.entries} were expected (${plan.firstSeq}…${plan.lastSeq}): nothing archived`);
    await write({ end: { entries, checkpoints } });
    await out.sync();
    await out.close();
    // A hard link, not a rename: an archive already at `file` is never replaced (EEXIST).
    await link(tmp, file);
    await rm(tmp, { force: true });
  } catch (err) {
    await out.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  return { file, entries, checkpoints, sha256: hash.digest('hex') };
}

export interface RetentionRun {
  /** Who asked: `system:audit-retention` for the service's daily run, `system:audit-truncate` for the CLI. */
  actor: string;
  source: string;
  requestId: string;
  before: Date;
  /** Archive the range here first; the removal records the archive's SHA-256. */
  archiveFile?: string;
  onProgress?: (checked: number, total: number) => void;
}

export interface RetentionResult {
  /** Undefined: nothing could be removed (no signed checkpoint lies entirely before the horizon). */
  plan?: RetentionPlan;
  entriesRemoved: number;
  checkpointsRemoved: number;
  archive?: ArchiveResult;
  removedAt?: string;
}

/**
 * Removes the range a horizon allows, after checking it: the range must verify against its
 * signed checkpoints first, or nothing is removed — the evidence of tampering is not what
 * retention should erase. The removal and its audit entry commit together.
 */
export async function applyAuditRetention(
  deps: { db: Kysely<Database>; audit: AuditLog; signingKey: AuditSigningKey | undefined; verifyingKeys: AuditVerifyingKey[] },
  run: RetentionRun,
): Promise<RetentionResult> {
  const { db, audit } = deps;
  const entryBase = { actor: run.actor, source: run.source, requestId: run.requestId, action: 'audit-truncated' } satisfies Partial<AuditEntry>;
  const refuse = async (reason: string, detail: Record<string, unknown>): Promise<never> => {
    await audit.record({ ...entryBase, outcome: 'failed', detail: { ...detail, reason } });
    throw new AuditRetentionRefused(reason);
  };
  if (!deps.signingKey) return refuse('no audit signing key: a removal must be signed, like the checkpoint that anchors what stays', { before: run.before.toISOString() });
  const plan = await planAuditRetention(db, run.before);
  if (!plan) return { entriesRemoved: 0, checkpointsRemoved: 0 };
  const range = { firstSeq: plan.firstSeq, lastSeq: plan.lastSeq, horizon: plan.horizon.toISOString() };

  const keys = [...deps.verifyingKeys];
  if (!keys.some((k) => k.keyId === deps.signingKey!.keyId)) keys.push(deps.signingKey);
  const check = await verifyAuditChain(db, { keys, upToSeq: plan.lastSeq, ...(run.onProgress ? { onProgress: run.onProgress } : {}) });
  if (!check.ok) {
    const p = check.firstProblem!;
    return refuse(`the audit chain is broken at seq ${p.seq} (${p.kind}): nothing removed; investigate with \`telesalud audit verify\``, range);
  }
  if (check.lastCheckpointSeq !== plan.lastSeq) return refuse(`the checkpoint at seq ${plan.lastSeq} did not verify: nothing removed`, range);

  const archive = run.archiveFile ? await archiveAuditRange(db, plan, run.archiveFile) : undefined;
  const removedAt = new Date().toISOString();
  const unsigned: UnsignedRetention = { firstSeq: plan.firstSeq, lastSeq: plan.lastSeq, lastHash: plan.lastHash, horizon: plan.horizon.toISOString(), removedAt, archiveSha256: archive?.sha256 ?? null };
  const { keyId, signature } = signRetention(deps.signingKey, unsigned);
  const removed = await db.transaction().execute(async (tx) => {
    const { rows } = await sql<{ entries_removed: number | string; checkpoints_removed: number | string }>`
      select entries_removed, checkpoints_removed from audit_retention_truncate(
        ${unsigned.firstSeq}, ${unsigned.lastSeq}, ${unsigned.lastHash}, ${unsigned.horizon}::timestamptz, ${removedAt}::timestamptz,
        ${unsigned.archiveSha256}, ${keyId}, ${signature})`.execute(tx);
    const counts = { entries: Number(rows[0]?.entries_removed ?? 0), checkpoints: Number(rows[0]?.checkpoints_removed ?? 0) };
    // Last in the transaction: it takes the chain lock (see AuditLog.recordIn).
    await audit.recordIn(tx, [
      {
        ...entryBase,
        outcome: 'success',
        detail: { ...range, entries: counts.entries, checkpoints: counts.checkpoints, ...(archive ? { archiveSha256: archive.sha256 } : {}) },
      },
    ]);
    return counts;
  });
  return { plan, entriesRemoved: removed.entries, checkpointsRemoved: removed.checkpoints, removedAt, ...(archive ? { archive } : {}) };
}
