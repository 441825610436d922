import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logging/logger.js';
import { canonicalBody, CHAIN_PREFIX, storableDetail, storableText } from './audit-chain.js';
import { CHECKPOINT_EVERY_ENTRIES, CHECKPOINT_INTERVAL_MS, signCheckpoint, type Checkpoint } from './audit-checkpoint.js';
import type { AuditSigningKey } from './audit-signing-key.js';
import { bytes } from '../db/bytes.js';
import { PREPARED } from '../db/database.js';

/** Accesses to health data, then security events. */
export type AuditAction =
  | 'read'
  | 'vread'
  | 'search'
  | 'history'
  | 'create'
  | 'update'
  | 'delete'
  | 'download'
  | 'upload'
  | 'seed'
  | 'sign-in'
  | 'sign-in-failed'
  | 'account-locked'
  // The account lifecycle (src/auth): invitations, password and MFA changes, sessions ended, admin actions, policy.
  | 'sign-out'
  | 'sessions-ended'
  | 'password-changed'
  | 'password-change-refused'
  | 'mfa-enrolled'
  | 'mfa-disabled'
  | 'mfa-reset'
  | 'recovery-codes-generated'
  | 'passkey-registered'
  | 'passkey-removed'
  | 'invitation-created'
  | 'invitation-accepted'
  | 'invitation-revoked'
  | 'account-unlocked'
  | 'account-disabled'
  | 'account-enabled'
  | 'policy-changed'
  // Video consultations: who joined, was refused, admitted, declined, removed; who ended a call or opened it to someone.
  | 'consult-join'
  | 'consult-admit'
  | 'consult-decline'
  | 'consult-remove'
  | 'consult-end'
  | 'consult-invite'
  | 'consult-guest-link'
  // Outgoing e-mail (src/notifications): a message that concerns a patient handed to the SMTP relay.
  | 'notification-sent'
  // OAuth clients of the FHIR API: tokens issued and refused, clients added and revoked.
  | 'token-issued'
  | 'token-refused'
  // SMART App Launch: a user approved (success) or denied (denied) an app's access, or a request was refused.
  | 'app-authorized'
  // A user withdrew an app's access (every token of every grant they gave it).
  | 'app-revoked'
  | 'client-added'
  | 'client-revoked'
  // Reading the audit trail is itself audited: searches, exports, a patient's view of who accessed their record.
  | 'audit-search'
  | 'audit-export'
  // Access policy: emergency access opened (break-the-glass), care assignments made and ended.
  | 'break-glass'
  // A clinician's emergency lookup of a patient outside their care (auth/access/emergency-lookup.ts).
  | 'emergency-lookup'
  | 'care-assigned'
  | 'care-unassigned'
  // The shield (src/edge): a request refused as an attack, a source banned for repeated ones.
  | 'shield-block'
  | 'shield-ban'
  // The API rate limits (src/edge/rate-limit-plugin.ts): a source or account held back, once per window.
  | 'rate-limited'
  // Patient rights (src/privacy): a whole record exported, telehealth consent given.
  | 'export'
  | 'consent-recorded'
  // Operations (src/audit retention, src/keys): the oldest audit entries removed; keys rotated and retired.
  | 'audit-truncated'
  | 'key-rotation-started'
  | 'key-rotation-finished'
  | 'key-retired'
  | 'audit-key-rotated';

export interface AuditEntry {
  actor: string;
  action: AuditAction;
  resourceType?: string;
  resourceId?: string;
  /** `Patient/<id>` whose record was touched, so a patient can see who accessed it. */
  patient?: string;
  /**
   * Every patient whose record one access showed (a search page, say): one entry for the whole
   * access instead of one per patient. Stored as `detail.patients` (indexed, migration 0016) when
   * there are several, as `patient` when there is one; give either this or `patient`.
   */
  patients?: readonly string[];
  outcome: 'success' | 'denied' | 'failed';
  source?: string;
  requestId?: string;
  detail?: Record<string, unknown>;
  /**
   * The break-the-glass grant this access rode on (or, on a `break-glass` entry, the grant it
   * opened). Stored as `detail.breakGlass`, so reviewers find every emergency access with
   * `detail ? 'breakGlass'`.
   */
  breakGlass?: string | readonly string[];
}

/**
 * The advisory lock that orders every append to the audit chain, across all nodes of a farm
 * (transaction-scoped: released at commit or rollback). Its number is "audit_ch" in ASCII; it
 * is taken inside audit_append_batch() (migration 0023; audit_append() of 0002 for nodes of
 * the previous release) and by the timed checkpoint here.
 */
export const AUDIT_CHAIN_LOCK = '7017846207087387496';

/**
 * When record() answers (TELESALUD_AUDIT_COMMIT): `behind` (a node's default) once the entry is queued
 * for the next group-commit append, which follows within QUEUED_FLUSH_MS; `before-answer` once
 * the entry is committed. Writes are audited inside their own transaction either way.
 */
export type AuditCommit = 'behind' | 'before-answer';
export const AUDIT_COMMITS: readonly AuditCommit[] = ['behind', 'before-answer'];

export interface AuditLogOptions {
  /** Signs checkpoints; without it the chain is still written, unsigned (a warning is logged once). */
  signingKey?: AuditSigningKey | undefined;
  /** `before-answer` unless given (commands, tests); a serving node takes TELESALUD_AUDIT_COMMIT, `behind` by default. */
  commit?: AuditCommit;
  /** Checkpoint when the chain crosses a multiple of this many entries. */
  checkpointEvery?: number;
  /** …and within this long of an entry no checkpoint covers. */
  checkpointIntervalMs?: number;
}

/** Entries in one group-commit append, at most. */
const MAX_GROUP_COMMIT = 500;

/**
 * An entry committed behind the answer waits at most this long for its append to start, which
 * gathers every access answered meanwhile: one round trip, one chain-lock turn and one
 * transaction serve tens of reads. It is also, with the append's own time, the window a killed
 * node can lose (see AuditLog).
 */
export const QUEUED_FLUSH_MS = 20;
/**
 * …or less, once this many are waiting. The database's cost per entry falls with the batch
 * (measured here, CPU of the PostgreSQL backend per entry: 35 µs in batches of 16, 23 µs in 64,
 * 20 µs in 128), and the count bounds how much one append carries on a busy node.
 */
export const QUEUED_BATCH = 128;
/**
 * Past this many entries waiting, or once the oldest has waited this long, record() waits for
 * the commit again: a slow or failing audit store holds accesses back (and fails them if it
 * stays down) instead of letting an unwritten backlog grow.
 */
export const QUEUED_LIMIT_ENTRIES = 2_000;
export const QUEUED_LIMIT_MS = 1_000;
/** After a failed append, queued entries are tried again after this long, doubling up to the cap. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2_000;

interface PendingEntry {
  entry: AuditEntry;
  /** When it was recorded (ms since the epoch). */
  at: number;
  /** The caller waiting for the commit; absent for an entry committed behind its answer. */
  done?: (err?: unknown) => void;
}

/** Entries already answered for and not yet committed (AuditLog.backlog()). */
export interface AuditBacklog {
  entries: number;
  oldestSeconds: number;
  /** Appends of answered entries that failed and are being retried, since the node started. */
  failedAppends: number;
}

interface Appended {
  /** The head before and after this append. */
  prevSeq: number;
  seq: number;
  hash: Buffer;
}

/**
 * Every access to health data is recorded before the data leaves, as the next link of one
 * hash chain (audit-chain.ts) shared by every node. Writes record inside their own transaction
 * (durable with the change); reads go through a group commit: entries that arrive in the same
 * turn of the event loop, or while the appends in flight are busy, are written together by the
 * next append, and each caller waits until its entry is committed. One round trip serves many
 * concurrent reads.
 *
 * On PostgreSQL two appends may be in flight at once (on two pooled connections): the second
 * crosses the network, is parsed and waits at the chain lock while the first commits, so a read
 * waits for about one append, not one and a half. The database still orders them (below); only
 * which of two concurrent batches comes first is not fixed, as between two nodes. PGlite runs
 * one statement at a time, so there one append is in flight and the rest gather behind it.
 *
 * Each append is one call of the database function audit_append_batch(): it takes the chain lock,
 * reads the head and inserts the entries at the next positions with their hashes, so
 * concurrent appenders, on one node or many, queue into one dense chain: no forks, no gaps (the
 * unique index on seq backs this up). The lock is held until the appending transaction ends.
 *
 * Committed behind the answer (AuditCommit `behind`, the default): record() answers once the
 * entry is queued, and the append follows within QUEUED_FLUSH_MS. Waiting for the commit
 * instead adds a database round trip to every audited read, and with the batches small enough
 * to keep that wait short, an append per few reads: measured on one 2-core machine, reads with
 * audit kept 0.57 of the throughput without it; behind the answer, an append serves tens of
 * reads. What it costs: a node killed (not stopped) loses the entries of its last
 * QUEUED_FLUSH_MS or so; a stop drains them, and one forced to exit first logs them (unwritten()). A
 * failing database does not let that window grow: appends are retried, and while any is
 * failing, or the queue passes QUEUED_LIMIT_*, accesses wait for their own commit again and
 * fail with it — an access that can't be audited still does not happen.
 */
export class AuditLog {
  private pending: PendingEntry[] = [];
  /** How many pending entries have a caller waiting for the commit. */
  private waiting = 0;
  private readonly commit: AuditCommit;
  /** Set while appends of answered entries fail: new entries wait for their commit meanwhile. */
  private retryMs = 0;
  private failedAppends = 0;
  /** The batches of the appends in flight: unwritten until they commit. */
  private batchesInFlight: PendingEntry[][] = [];
  /** Readers of the trail waiting for the entries recorded before them (settled()). */
  private settleWaiters: { entries: Set<PendingEntry>; wake: () => void }[] = [];
  /** Group-commit appends under way, a flush waiting for the next turn of the event loop, and who waits for all of them to end. */
  private inFlight = 0;
  /** `now`: on the next turn of the event loop; `later`: a timer (queued entries gathering, or a retry). */
  private flushScheduled: 'now' | 'later' | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  /** How many group-commit appends may be in flight: known after the first asks the database what it is. */
  private parallelAppends: number | undefined;
  private readonly db: Kysely<Database>;
  private readonly checkpointEvery: number;
  private readonly checkpointIntervalMs: number;
  /** When this node last wrote (or saw, in a timed check) a checkpoint. */
  private lastCheckpointAt = Date.now();
  /**
   * The newest position this node appended, and the newest a checkpoint it knows of covers:
   * positions, not a flag, since concurrent appends complete in any order.
   */
  private appendedSeq = 0;
  private coveredSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  private timedCheckpoint: Promise<void> | undefined;
  private warnedKeyMismatch = false;

  constructor(
    db: Kysely<Database>,
    private readonly logger: Logger,
    private readonly options: AuditLogOptions = {},
  ) {
    this.db = db;
    this.checkpointEvery = options.checkpointEvery ?? CHECKPOINT_EVERY_ENTRIES;
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS;
    this.commit = options.commit ?? 'before-answer';
    if (!options.signingKey) this.logger.warn('audit checkpoints are not signed: no audit signing key was given to this node');
  }

  /**
   * Append inside the caller's transaction: committed with the change or not at all. Call it
   * last, just before commit: from here to the commit this transaction holds the chain lock,
   * and taking other locks after it could deadlock with another appender. (The transaction must
   * not hold the lock long: every audited access of every node waits for it.)
   */
  async recordIn(tx: Transaction<Database>, entries: AuditEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const appended = await this.append(tx, entries, false);
    const cp = this.checkpointDue(appended);
    if (cp) await this.insertCheckpoint(tx, cp);
  }

  /**
   * Append through the group commit. Resolves once the entry is queued (AuditCommit `behind`,
   * while the queue is healthy) or committed (`before-answer`, or a queue held back). Never
   * await it inside a transaction: the batch needs a connection and the chain lock of its own.
   */
  record(entry: AuditEntry): Promise<void> {
    const at = Date.now();
    if (this.commit === 'behind' && this.queueHealthy(at)) {
      this.pending.push({ entry, at });
      this.scheduleFlush();
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, at, done: (err) => (err ? reject(err) : resolve()) });
      this.waiting++;
      this.scheduleFlush();
    });
  }

  private queueHealthy(now: number): boolean {
    const oldest = this.pending[0]?.at ?? this.batchesInFlight[0]?.[0]?.at ?? now;
    return this.retryMs === 0 && this.pending.length < QUEUED_LIMIT_ENTRIES && now - oldest < QUEUED_LIMIT_MS;
  }

  /** Entries answered for and not yet committed, for the metrics. */
  backlog(now = Date.now()): AuditBacklog {
    const unwritten = this.unwritten();
    const oldest = unwritten.reduce((min, e) => Math.min(min, e.at), now);
    return { entries: unwritten.length, oldestSeconds: (now - oldest) / 1000, failedAppends: this.failedAppends };
  }

  /**
   * The entries answered for and not yet committed, with when they were recorded: what a node
   * that must exit before its queue drains writes to its log (ids only, as every entry).
   */
  unwritten(): { entry: AuditEntry; at: number }[] {
    return [...this.batchesInFlight.flat(), ...this.pending].filter((p) => !p.done).map(({ entry, at }) => ({ entry, at }));
  }

  /**
   * Resolves once every entry recorded on this node before the call is committed (or has
   * failed), or after QUEUED_LIMIT_MS at most: readers of the trail (the audit search, "who
   * accessed my record") see this node's latest accesses. Other nodes' follow within
   * QUEUED_FLUSH_MS.
   */
  async settled(): Promise<void> {
    const entries = new Set([...this.pending, ...this.batchesInFlight.flat()]);
    if (entries.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((wake) => {
      this.settleWaiters.push({ entries, wake });
      timer = setTimeout(wake, QUEUED_LIMIT_MS);
      this.scheduleFlush();
    });
    clearTimeout(timer);
  }

  private wakeSettled(): void {
    if (this.settleWaiters.length === 0) return;
    const unwritten = new Set([...this.pending, ...this.batchesInFlight.flat()]);
    this.settleWaiters = this.settleWaiters.filter((waiter) => {
      for (const entry of waiter.entries) if (unwritten.has(entry)) return true;
      waiter.wake();
      return false;
    });
  }

  /**
   * A caller waiting for its commit: the next append starts on the next turn of the event loop,
   * not at once, so accesses answered by the same round of database replies share it. (On
   * PGlite, whose queries run back to back without yielding, that is every read queued behind
   * the one append in flight.) Only entries already answered for: the append waits
   * QUEUED_FLUSH_MS to gather more, or the retry pause after a failure.
   */
  private scheduleFlush(): void {
    if (this.pending.length === 0 || this.inFlight >= this.appendsAllowed()) return;
    const urgent = this.retryMs === 0 && (this.waiting > 0 || this.settleWaiters.length > 0 || this.pending.length >= QUEUED_BATCH);
    if (this.flushScheduled === 'now' || (this.flushScheduled === 'later' && !urgent)) return;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    const run = () => {
      this.flushScheduled = undefined;
      this.flushTimer = undefined;
      void this.flushBatch();
    };
    if (urgent) {
      this.flushScheduled = 'now';
      setImmediate(run);
    } else {
      this.flushScheduled = 'later';
      // Counted from the oldest entry waiting, so none waits longer than QUEUED_FLUSH_MS whatever came after it.
      const oldest = this.pending[0]!.at;
      this.flushTimer = setTimeout(run, this.retryMs || Math.max(0, oldest + QUEUED_FLUSH_MS - Date.now()));
    }
  }

  /**
   * A second append in flight shortens a waiting caller's wait (see the class comment); entries
   * answered already gain nothing from it, and one append at a time lets their batch grow.
   */
  private appendsAllowed(): number {
    return this.waiting > 0 ? (this.parallelAppends ?? 1) : 1;
  }

  private async flushBatch(): Promise<void> {
    if (this.pending.length === 0 || this.inFlight >= this.appendsAllowed()) return this.notifyIfIdle();
    const batch = this.pending.splice(0, MAX_GROUP_COMMIT);
    const answered = batch.filter((b) => !b.done);
    this.waiting -= batch.length - answered.length;
    this.batchesInFlight.push(batch);
    this.inFlight++;
    try {
      let appended: Appended;
      try {
        this.parallelAppends ??= await this.appendsInFlight();
        // One statement, committed on its own with synchronous_commit off: read audits wait for
        // the database to hold them, not for its disk flush. A database server crash could lose
        // the last moment of read audits (a suffix of the chain: what remains is still a valid
        // chain), as a killed node loses those it had not appended yet (see the class comment).
        appended = await this.append(this.db, batch.map(withAccessTime), true);
      } catch (err) {
        // An access that can't be audited does not happen: the callers waiting fail. Entries
        // already answered for go back to the head of the queue and are tried again.
        this.logger.error({ err: { message: (err as Error).message }, entries: batch.length, retried: answered.length }, 'audit write failed');
        for (const b of batch) b.done?.(err);
        if (answered.length > 0) {
          this.failedAppends++;
          this.pending.unshift(...answered);
          this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2 || RETRY_FIRST_MS);
        }
        return;
      } finally {
        this.batchesInFlight.splice(this.batchesInFlight.indexOf(batch), 1);
      }
      if (answered.length > 0) this.retryMs = 0;
      for (const b of batch) b.done?.();
      const cp = this.checkpointDue(appended);
      if (cp) {
        // Signed after the entries committed; a failure here loses no entry, and the timed check retries.
        await this.insertCheckpoint(this.db, cp).then(
          () => this.witness(cp),
          (err: Error) => {
            this.logger.error({ err: { message: err.message } }, 'audit checkpoint failed');
            this.coveredSeq = Math.min(this.coveredSeq, cp.seq - 1);
            this.scheduleTimedCheckpoint();
          },
        );
      }
    } finally {
      this.inFlight--;
      this.scheduleFlush();
      this.wakeSettled();
      this.notifyIfIdle();
    }
  }

  /** Two on PostgreSQL, one on PGlite (embedded, one statement at a time: a second would only queue). */
  private async appendsInFlight(): Promise<number> {
    const { rows } = await sql<{ v: string }>`select version() as v`.execute(this.db);
    return /wasm|emscripten/i.test(rows[0]?.v ?? '') ? 1 : 2;
  }

  private notifyIfIdle(): void {
    if (this.pending.length > 0 || this.inFlight > 0 || this.flushScheduled) return;
    for (const wake of this.idleWaiters.splice(0)) wake();
  }

  /** Hash and insert the entries at the head of the chain, in one call of audit_append_batch(). */
  private async append(db: Kysely<Database> | Transaction<Database>, entries: AuditEntry[], async: boolean): Promise<Appended> {
    // The time is set here, once per append, to the millisecond: the value the hash covers is the value stored.
    const recorded = new Date().toISOString();
    // Two texts for the whole batch (migration 0023): the canonical bodies the chain hashes, one
    // per line, and the same values as stored columns, in JSON.
    const bodies: string[] = [];
    const columns: Record<string, unknown>[] = [];
    for (const entry of entries) {
      const several = entry.patients && entry.patients.length > 1 ? { patients: entry.patients } : undefined;
      const extra = entry.breakGlass || several ? { ...entry.detail, ...several, ...(entry.breakGlass ? { breakGlass: entry.breakGlass } : {}) } : entry.detail;
      const fields = {
        recorded,
        actor: storableText(entry.actor),
        action: storableText(entry.action),
        resourceType: text(entry.resourceType),
        resourceId: text(entry.resourceId),
        patient: text(entry.patient ?? (entry.patients?.length === 1 ? entry.patients[0] : undefined)),
        outcome: storableText(entry.outcome),
        source: text(entry.source),
        requestId: text(entry.requestId),
        detail: storableDetail(extra),
      };
      bodies.push(canonicalBody(fields));
      columns.push({
        actor: fields.actor,
        action: fields.action,
        resource_type: fields.resourceType,
        resource_id: fields.resourceId,
        patient: fields.patient,
        outcome: fields.outcome,
        source: fields.source,
        request_id: fields.requestId,
        detail: fields.detail,
      });
    }
    // Prepared (db/database.ts): every audited access makes this call, its parse and plan are done once per connection.
    const { rows } = await sql<{ prev_seq: number | string; head_seq: number | string; head_hash: Uint8Array }>`${sql.raw(PREPARED)}select prev_seq, head_seq, head_hash from audit_append_batch(
        ${CHAIN_PREFIX}, ${recorded}::timestamptz, ${bodies.join('\n')}, ${JSON.stringify(columns)}::jsonb, ${async})`.execute(db as Kysely<Database>);
    const row = rows[0];
    if (!row) throw new Error('audit_append_batch returned nothing');
    return { prevSeq: Number(row.prev_seq), seq: Number(row.head_seq), hash: bytes(row.head_hash) };
  }

  /** A signed checkpoint of the new head, when this append crossed a multiple of checkpointEvery or the interval passed. */
  private checkpointDue(appended: Appended): Checkpoint | undefined {
    const key = this.options.signingKey;
    const now = new Date();
    const crossed = Math.floor(appended.seq / this.checkpointEvery) > Math.floor(appended.prevSeq / this.checkpointEvery);
    this.appendedSeq = Math.max(this.appendedSeq, appended.seq);
    if (key && (crossed || now.getTime() - this.lastCheckpointAt >= this.checkpointIntervalMs)) {
      // Bookkeeping now: should the checkpoint not commit, the next interval's check finds the head uncovered.
      this.lastCheckpointAt = now.getTime();
      this.coveredSeq = Math.max(this.coveredSeq, appended.seq);
      // A concurrent append may have landed past this one: its tail stays for the timed check.
      if (this.uncovered) this.scheduleTimedCheckpoint();
      else this.cancelTimer();
      return signCheckpoint(key, appended.seq, appended.hash, now);
    }
    this.scheduleTimedCheckpoint();
    return undefined;
  }

  private get uncovered(): boolean {
    return this.appendedSeq > this.coveredSeq;
  }

  private async insertCheckpoint(db: Kysely<Database> | Transaction<Database>, cp: Checkpoint): Promise<void> {
    // Another node's timed checkpoint may have signed the same position already: one is enough.
    await sql`insert into audit_checkpoint (seq, hash, signed_at, key_id, signature)
              values (${cp.seq}, ${cp.hash}, ${cp.signedAt}::timestamptz, ${cp.keyId}, ${cp.signature})
              on conflict (seq) do nothing`.execute(db as Kysely<Database>);
  }

  /**
   * Once committed, a checkpoint goes to the log too: a witness outside the database, so a
   * cut-off tail taken away together with its checkpoints can still be told from the logs.
   * (Not for checkpoints inside a caller's transaction, which may yet roll back.)
   */
  private witness(cp: Checkpoint): void {
    this.logger.info({ auditCheckpoint: { seq: cp.seq, hash: cp.hash.toString('hex'), keyId: cp.keyId, signedAt: cp.signedAt } }, 'audit checkpoint');
  }

  private scheduleTimedCheckpoint(): void {
    if (this.timer || !this.options.signingKey) return;
    const wait = Math.max(0, this.lastCheckpointAt + this.checkpointIntervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.checkpointIfUncovered();
    }, wait);
    this.timer.unref();
  }

  /**
   * Sign the chain head if no checkpoint covers it yet (another node may have). Runs after
   * CHECKPOINT_INTERVAL_MS without one and when the log drains at shutdown, so a quiet chain's
   * tail is signed too.
   */
  async checkpointIfUncovered(): Promise<void> {
    if (this.timedCheckpoint) return this.timedCheckpoint;
    const key = this.options.signingKey;
    if (!key || !this.uncovered) return;
    // Everything this node appended so far has committed or rolled back once the chain lock is ours.
    const upTo = this.appendedSeq;
    this.timedCheckpoint = (async () => {
      try {
        const cp = await this.db.transaction().execute(async (tx) => {
          await sql`select pg_advisory_xact_lock(${sql.raw(AUDIT_CHAIN_LOCK)})`.execute(tx);
          const head = await tx.selectFrom('audit_event').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
          const last = await tx.selectFrom('audit_checkpoint').select(['seq', 'key_id']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
          if (last && last.key_id !== key.keyId && !this.warnedKeyMismatch) {
            this.warnedKeyMismatch = true;
            this.logger.error(
              { ownKeyId: key.keyId, otherKeyId: last.key_id },
              'another node signs audit checkpoints with a different key: every node of a farm must use the same TELESALUD_AUDIT_SIGNING_KEY',
            );
          }
          this.lastCheckpointAt = Date.now();
          this.coveredSeq = Math.max(this.coveredSeq, upTo);
          if (!head || Number(head.seq) <= Number(last?.seq ?? 0)) return undefined;
          const signed = signCheckpoint(key, Number(head.seq), bytes(head.hash), new Date());
          await this.insertCheckpoint(tx, signed);
          return signed;
        });
        if (cp) this.witness(cp);
      } catch (err) {
        this.logger.error({ err: { message: (err as Error).message } }, 'audit checkpoint failed');
        this.coveredSeq = Math.min(this.coveredSeq, upTo - 1);
        this.scheduleTimedCheckpoint();
      } finally {
        this.timedCheckpoint = undefined;
      }
    })();
    return this.timedCheckpoint;
  }

  /** Wait for every queued entry to be written, then sign the tail (a clean stop leaves no unsigned tail). */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.inFlight > 0 || this.flushScheduled) await new Promise<void>((wake) => this.idleWaiters.push(wake));
    this.cancelTimer();
    await this.checkpointIfUncovered();
    this.cancelTimer();
  }

  private cancelTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

/**
 * An entry that waited more than a second for its append (a database outage, retried) keeps
 * when the access happened in `detail.accessedAt`: `recorded` is the time of the append.
 */
function withAccessTime(pending: PendingEntry): AuditEntry {
  if (Date.now() - pending.at < 1_000) return pending.entry;
  return { ...pending.entry, detail: { ...pending.entry.detail, accessedAt: new Date(pending.at).toISOString() } };
}

function text(value: string | undefined): string | null {
  return value === undefined ? null : storableText(value);
}
