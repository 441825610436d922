import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Database } from '../db/schema.js';
import { openDocument, sealDocument } from '../documents/envelope-crypto.js';
import { UnknownKeyError, type KeyRing } from '../documents/key-ring.js';
import type { MailContent, MailTemplate } from './mail-templates.js';

/**
 * The outbox of e-mail (migration 0018). A message is written in the transaction of the action
 * that causes it; any node of the farm delivers it. A node claims due messages with
 * `for update skip locked` and a lease, so two nodes never hold the same message; a node that
 * dies mid-send leaves a lease that runs out, and the message is tried again (the only path on
 * which a message can go twice: delivery is at least once). Every claim counts an attempt, and
 * that count fences the claim: a node whose lease ran out and was taken over can no longer
 * change the row. The content — address, link with its token, times, the patient it concerns —
 * is sealed under the master key (re-wrapped by `telesalud keys rotate`, see src/keys) and erased
 * once the message is sent or given up on.
 */

/** A claimed message, opened: what the delivering node sends. */
export interface ClaimedMail {
  id: string;
  template: MailTemplate;
  /** Counting this one; also the claim's fence (the row's `attempts` while this claim holds it). */
  attempt: number;
  /** Undefined when the sealed content could not be opened; `unreadable` says why. */
  content: MailContent | undefined;
  /**
   * `unknown-key`: sealed under a key this node's key file lacks (a node behind a rotation; another
   * node, or this one once its file is updated, can open it). `damaged`: it can only fail.
   */
  unreadable?: 'unknown-key' | 'damaged';
  /** Taken from a node whose lease ran out mid-send: it may already have reached the recipient once. */
  claimedAgain: boolean;
}

/** Bound into each message's sealed content and wrapped key: a row's seal does not open on another row. */
export const outboxAssociatedData = (id: string) => `notification_outbox:${id}`;

export class MailOutbox {
  constructor(private readonly db: Kysely<Database>, private readonly keyRing: KeyRing) {}

  /** Queues a message in `tx` (the caller's transaction, or the database itself); answers its id. */
  async enqueue(tx: Kysely<Database>, content: MailContent, now = new Date()): Promise<string> {
    const id = randomUUID();
    const sealed = sealDocument(this.keyRing, Buffer.from(JSON.stringify(content), 'utf8'), outboxAssociatedData(id));
    await tx
      .insertInto('notification_outbox')
      .values({
        id,
        template: content.template,
        status: 'pending',
        attempts: 0,
        next_attempt_at: now,
        lease_until: null,
        created: now,
        sent_at: null,
        last_error: null,
        kek_id: sealed.kekId,
        wrapped_key: sealed.wrappedKey,
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
        tag: sealed.tag,
      })
      .execute();
    return id;
  }

  /**
   * Takes up to `limit` due messages for this node for `leaseMs`: pending ones whose time has come,
   * and ones whose sender's lease ran out (a node that stopped mid-send). Rows another node is
   * claiming right now are skipped, not waited for.
   */
  async claimDue(limit: number, leaseMs: number, now = new Date()): Promise<ClaimedMail[]> {
    const rows = await this.db.transaction().execute(async (tx) => {
      const due = await tx
        .selectFrom('notification_outbox')
        .select(['id', 'template', 'status', 'attempts', 'kek_id', 'wrapped_key', 'nonce', 'ciphertext', 'tag'])
        .where((eb) => eb.or([eb.and([eb('status', '=', 'pending'), eb('next_attempt_at', '<=', now)]), eb.and([eb('status', '=', 'sending'), eb('lease_until', '<', now)])]))
        .orderBy('next_attempt_at')
        .limit(limit)
        .forUpdate()
        .skipLocked()
        .execute();
      if (due.length === 0) return [];
      await tx
        .updateTable('notification_outbox')
        .set({ status: 'sending', lease_until: new Date(now.getTime() + leaseMs), attempts: sql`attempts + 1` })
        .where('id', 'in', due.map((r) => r.id))
        .execute();
      return due;
    });
    return rows.map((row) => ({ id: row.id, template: row.template as MailTemplate, attempt: row.attempts + 1, claimedAgain: row.status === 'sending', ...this.open(row) }));
  }

  private open(row: { id: string; kek_id: string | null; wrapped_key: Buffer | null; nonce: Buffer | null; ciphertext: Buffer | null; tag: Buffer | null }): Pick<ClaimedMail, 'content' | 'unreadable'> {
    if (!row.kek_id || !row.wrapped_key || !row.nonce || !row.ciphertext || !row.tag) return { content: undefined, unreadable: 'damaged' };
    try {
      const plain = openDocument(this.keyRing, { kekId: row.kek_id, wrappedKey: row.wrapped_key, nonce: row.nonce, ciphertext: row.ciphertext, tag: row.tag }, outboxAssociatedData(row.id));
      return { content: JSON.parse(plain.toString('utf8')) as MailContent };
    } catch (err) {
      return { content: undefined, unreadable: err instanceof UnknownKeyError ? 'unknown-key' : 'damaged' };
    }
  }

  /** The row while this claim still holds it: `status = 'sending'` and no later claim since (see ClaimedMail.attempt). */
  private held(claim: Pick<ClaimedMail, 'id' | 'attempt'>) {
    return this.db.updateTable('notification_outbox').where('id', '=', claim.id).where('status', '=', 'sending').where('attempts', '=', claim.attempt);
  }

  /**
   * Extends the claim to `leaseMs` from `now`, just before sending: a message late in a batch gets
   * a whole lease for its own exchange. False when the claim was lost (its lease ran out and
   * another node took the message): then this node must not send it.
   */
  async renew(claim: Pick<ClaimedMail, 'id' | 'attempt'>, leaseMs: number, now = new Date()): Promise<boolean> {
    const result = await this.held(claim).set({ lease_until: new Date(now.getTime() + leaseMs) }).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Sent: the content is erased; the row stays as the record that it went (and when). `alsoIn` runs
   * in the same transaction (the audit entry of the sending), so the row says "sent" exactly when
   * that is on record. Answers false when the claim had been lost meanwhile: the row is left to
   * the node that holds it now, and `alsoIn` still runs (the message did go).
   */
  async markSent(claim: Pick<ClaimedMail, 'id' | 'attempt'>, now = new Date(), alsoIn?: (tx: Transaction<Database>) => Promise<void>): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const result = await tx
        .updateTable('notification_outbox')
        .set({ status: 'sent', sent_at: now, lease_until: null, last_error: null, ...ERASED })
        .where('id', '=', claim.id)
        .where('status', '=', 'sending')
        .where('attempts', '=', claim.attempt)
        .executeTakeFirst();
      await alsoIn?.(tx);
      return Number(result.numUpdatedRows) === 1;
    });
  }

  /** Hands a claimed message back untried (its node is stopping): due again now, for any node. */
  async release(claim: Pick<ClaimedMail, 'id' | 'attempt'>): Promise<void> {
    await this.held(claim).set({ status: 'pending', lease_until: null, attempts: sql`greatest(attempts - 1, 0)` }).execute();
  }

  /** Tried again at `nextAttemptAt`; `error` is a code (smtp-451, ECONNECTION), never a server's text. */
  async markRetry(claim: Pick<ClaimedMail, 'id' | 'attempt'>, nextAttemptAt: Date, error: string): Promise<void> {
    await this.held(claim).set({ status: 'pending', next_attempt_at: nextAttemptAt, lease_until: null, last_error: error }).execute();
  }

  /** Given up on: the content is erased too, so the link in it can no longer leak from here. */
  async markFailed(claim: Pick<ClaimedMail, 'id' | 'attempt'>, error: string): Promise<void> {
    await this.held(claim).set({ status: 'failed', lease_until: null, last_error: error, ...ERASED }).execute();
  }

  /** How many messages are in each state (for the admin's figures). */
  async counts(): Promise<Record<'pending' | 'sending' | 'sent' | 'failed', number>> {
    const rows = await this.db.selectFrom('notification_outbox').select(['status', (eb) => eb.fn.countAll<string>().as('n')]).groupBy('status').execute();
    const counts = { pending: 0, sending: 0, sent: 0, failed: 0 };
    for (const row of rows) counts[row.status] = Number(row.n);
    return counts;
  }
}

const ERASED = { kek_id: null, wrapped_key: null, nonce: null, ciphertext: null, tag: null } as const;
