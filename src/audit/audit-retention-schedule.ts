import type { FastifyInstance } from 'fastify';
import type { AppContext } from '../server/app-context.js';
import { applyAuditRetention, retentionHorizon } from './audit-retention.js';
import { loadAuditSigningKey, loadAuditVerifyingKeys } from './audit-signing-key.js';

const DAY_MS = 86_400_000;
/** First run a while after start (not during a rolling restart's busiest minutes), spread over the farm's nodes. */
const FIRST_RUN_MS = 10 * 60_000;
const SPREAD_MS = 10 * 60_000;

/**
 * With TELESALUD_AUDIT_RETENTION_DAYS set, each node applies the retention once a day: entries
 * older than the horizon are removed up to a signed checkpoint (audit-retention.ts). Nodes of a
 * farm may run at once: the database serialises removals and the later one finds nothing left
 * to remove, or starts from the new anchor. A failure is logged (ids and counts only) and
 * recorded as a failed `audit-truncated` entry; the next day tries again.
 */
export function scheduleAuditRetention(
  app: FastifyInstance,
  ctx: Pick<AppContext, 'config' | 'store' | 'audit' | 'logger'>,
  timing: { firstRunMs: number; everyMs: number } = { firstRunMs: FIRST_RUN_MS + Math.floor(Math.random() * SPREAD_MS), everyMs: DAY_MS },
): void {
  const days = ctx.config.auditRetentionDays;
  if (days === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  const runOnce = async () => {
    try {
      const [signingKey, verifyingKeys] = await Promise.all([
        loadAuditSigningKey({ envValue: ctx.config.auditSigningKey, dataDir: ctx.config.dataDir, createIfMissing: false }),
        loadAuditVerifyingKeys({ envValue: ctx.config.auditSigningKey, dataDir: ctx.config.dataDir }),
      ]);
      const result = await applyAuditRetention(
        { db: ctx.store.db, audit: ctx.audit, signingKey, verifyingKeys },
        { actor: 'system:audit-retention', source: 'scheduler', requestId: 'audit-retention', before: retentionHorizon(days) },
      );
      if (result.plan) ctx.logger.info({ auditRetention: { firstSeq: result.plan.firstSeq, lastSeq: result.plan.lastSeq, entries: result.entriesRemoved, days } }, 'audit retention removed the oldest entries');
    } catch (err) {
      const message = (err as Error).message;
      // Another node of the farm removed the same range a moment before: nothing is wrong.
      if (/the chain now starts at seq/.test(message)) ctx.logger.info('audit retention: another node has just applied it');
      else ctx.logger.error({ err: { message } }, 'audit retention failed: nothing removed');
    }
  };
  const schedule = (delay: number) => {
    if (closed) return;
    timer = setTimeout(() => {
      running = runOnce().finally(() => {
        running = undefined;
        schedule(timing.everyMs);
      });
    }, delay);
    timer.unref();
  };
  schedule(timing.firstRunMs);
  app.addHook('onClose', async () => {
    closed = true;
    if (timer) clearTimeout(timer);
    timer = undefined;
    await running;
  });
}
