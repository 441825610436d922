import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { Config } from '../config/config.js';
import { AUDIT_SIGNING_KEY_ENV, AUDIT_SIGNING_KEY_FILE, loadAuditSigningKey, loadAuditVerifyingKeys, parseAuditPublicKeys, type AuditVerifyingKey } from '../audit/audit-signing-key.js';
import { AuditLog } from '../audit/audit-log.js';
import { applyAuditRetention, archiveAuditRange, checkHorizon, planAuditRetention, type RetentionPlan } from '../audit/audit-retention.js';
import { commandLogLevel, createLogger } from '../logging/logger.js';
import { verifyAuditChain, type AuditChainReport } from '../audit/verify-chain.js';
import { callAdminSocket, runningServiceSocket } from './admin-socket-client.js';
import { openCommandStore } from './command-store.js';
import { percent, progressLine } from './progress.js';

export interface AuditVerifyOptions {
  /** PEM file of the public key to check checkpoint signatures with, instead of the configured signing key. */
  publicKey?: string;
  json?: boolean;
  /** Write the outcome for Prometheus' node exporter textfile collector (deploy/prometheus alerts on it). */
  prometheusFile?: string;
}

/**
 * `telesalud audit verify`: walks the whole audit chain and its signed checkpoints. Prints one
 * summary line and exits 0 when the chain is intact; exits 1 naming the first entry found
 * altered, inserted or deleted (or the first bad checkpoint) otherwise.
 */
export async function auditVerifyCommand(config: Config, options: AuditVerifyOptions): Promise<void> {
  const socket = await runningServiceSocket(config, 'audit verify');
  if (socket) return auditVerifyThroughService(socket, options);
  const keys = await verifyingKeys(config, options);

  const store = await openCommandStore(config, 'audit verify', { ifMissing: 'nothing to verify' });
  try {
    const applied = await sql<{ name: string }>`select name from schema_migration where name = '0002-audit-chain'`.execute(store.db).catch(() => ({ rows: [] }));
    if (applied.rows.length === 0) throw new Error('this database has no audit chain yet: run `telesalud migrate` (or start the service) first');
    if (keys.length === 0) {
      const signed = await sql<{ n: number }>`select count(*)::int as n from audit_checkpoint`.execute(store.db);
      if ((signed.rows[0]?.n ?? 0) > 0) {
        throw new Error(`no audit key to check the signed checkpoints with: set ${AUDIT_SIGNING_KEY_ENV} as on the nodes, put the key in ${path.join(config.dataDir, AUDIT_SIGNING_KEY_FILE)}, or pass --public-key FILE`);
      }
    }
    const progress = progressLine();
    const report = await verifyAuditChain(store.db, {
      keys,
      onProgress: (checked, total) => progress.update(verifyingLine(checked, total)),
    }).finally(progress.end);
    await reportVerification(report, options);
  } finally {
    await store.close();
  }
}

const verifyingLine = (checked: number, total: number) => `verifying audit chain: ${checked.toLocaleString('en')} / ${total.toLocaleString('en')} entries (${percent(checked, total)})`;

/** The running node on the embedded database walks the chain; the report and exit status are the same. */
async function auditVerifyThroughService(socket: string, options: AuditVerifyOptions): Promise<void> {
  const publicKeys = options.publicKey
    ? {
        pem: await readFile(options.publicKey, 'utf8').catch((err: NodeJS.ErrnoException) => {
          throw new Error(`--public-key: can not read ${options.publicKey} (${err.code ?? err.message})`);
        }),
        name: options.publicKey,
      }
    : undefined;
  const progress = progressLine();
  const report = await callAdminSocket<AuditChainReport>(socket, { command: 'audit-verify', ...(publicKeys ? { publicKeys } : {}) }, { onProgress: (e: { checked: number; total: number }) => progress.update(verifyingLine(e.checked, e.total)) }).finally(progress.end);
  await reportVerification(report, options);
}

async function reportVerification(report: AuditChainReport, options: AuditVerifyOptions): Promise<void> {
  for (const warning of report.warnings) process.stderr.write(`warning: ${warning}\n`);
  if (options.prometheusFile) await writePrometheusFile(options.prometheusFile, report);
  if (options.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  if (!report.ok) throw new Error(brokenLine(report));
  if (!options.json) process.stdout.write(`${validLine(report)}\n`);
}

async function verifyingKeys(config: Config, options: AuditVerifyOptions): Promise<AuditVerifyingKey[]> {
  if (options.publicKey) {
    const text = await readFile(options.publicKey, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`--public-key: can not read ${options.publicKey} (${err.code ?? err.message})`);
    });
    // One file may hold several keys: the current one and those it replaced (rotate-audit keeps them).
    return parseAuditPublicKeys(text, options.publicKey);
  }
  return loadAuditVerifyingKeys({ envValue: config.auditSigningKey, dataDir: config.dataDir });
}

function validLine(r: AuditChainReport): string {
  const removed = r.removed ?? [];
  const startSeq = (removed.at(-1)?.lastSeq ?? 0) + 1;
  const tail = startSeq - 1 + r.entries - r.lastCheckpointSeq;
  const signed = r.checkpoints === 0 ? 'no signed checkpoints' : `${r.checkpoints} signed checkpoint${r.checkpoints === 1 ? '' : 's'} (last at seq ${r.lastCheckpointSeq}${tail > 0 ? `; ${tail} newer entr${tail === 1 ? 'y' : 'ies'} chained, not yet signed` : ''})`;
  const line = `audit chain valid: ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}, ${signed}`;
  if (removed.length === 0) return line;
  // What retention took away, and from where the chain is verified.
  const ranges = removed.map((x) => `  removed by retention: entries ${x.firstSeq}…${x.lastSeq} (${x.entries}, recorded before ${x.horizon}) on ${x.removedAt}${x.archiveSha256 ? `, archived (sha256 ${x.archiveSha256})` : ''}`);
  return [`${line}; verified from the signed anchor at seq ${startSeq - 1}`, ...ranges].join('\n');
}

/** `--before DATE`: a date (midnight UTC) or a date-time, at least MIN_AUDIT_RETENTION_DAYS ago. */
function parseBefore(value: string): Date {
  const date = /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : new Date(value);
  checkHorizon(date);
  return date;
}

function planLine(plan: RetentionPlan): string {
  return `entries ${plan.firstSeq}…${plan.lastSeq} (${plan.entries.toLocaleString('en')}), up to the signed checkpoint at seq ${plan.lastSeq}`;
}

const NOTHING = (before: Date) => `nothing to remove: no signed checkpoint lies entirely before ${before.toISOString()} (the newest entries and the checkpoint that anchors them always stay)`;

/**
 * `telesalud audit archive --before DATE FILE`: exports what a truncation at DATE would remove,
 * removing nothing. Reading the trail is itself audited (`audit-export`).
 */
export async function auditArchiveCommand(config: Config, file: string, options: { before: string }): Promise<void> {
  const before = parseBefore(options.before);
  const store = await openCommandStore(config, 'audit archive', { ifMissing: 'nothing to archive' });
  try {
    const plan = await planAuditRetention(store.db, before);
    if (!plan) {
      process.stdout.write(`${NOTHING(before)}\n`);
      return;
    }
    const audit = await commandAuditLog(config, store.db);
    const result = await archiveAuditRange(store.db, plan, file).catch((err: NodeJS.ErrnoException) => {
      throw new Error(err.code === 'EEXIST' ? `${file} already exists: an archive is never overwritten` : err.code ? `can not write ${file} (${err.code})` : err.message);
    });
    await audit.record({ actor: 'system:audit-archive', action: 'audit-export', outcome: 'success', source: 'cli', requestId: 'audit-archive', detail: { firstSeq: plan.firstSeq, lastSeq: plan.lastSeq, sha256: result.sha256 } });
    await audit.drain();
    process.stdout.write(`archived ${planLine(plan)} and ${result.checkpoints} checkpoint${result.checkpoints === 1 ? '' : 's'} to ${file} (sha256 ${result.sha256})\n`);
  } finally {
    await store.close();
  }
}

/** `telesalud audit truncate --before DATE [--archive FILE] [--dry-run]`. */
export async function auditTruncateCommand(config: Config, options: { before: string; archive?: string; dryRun?: boolean }): Promise<void> {
  const before = parseBefore(options.before);
  const store = await openCommandStore(config, 'audit truncate', { ifMissing: 'nothing to remove' });
  try {
    if (options.dryRun) {
      const plan = await planAuditRetention(store.db, before);
      process.stdout.write(plan ? `would remove ${planLine(plan)}\n` : `${NOTHING(before)}\n`);
      return;
    }
    const signingKey = await loadAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, createIfMissing: false });
    const audit = await commandAuditLog(config, store.db);
    const progress = progressLine();
    try {
      const result = await applyAuditRetention(
        { db: store.db, audit, signingKey, verifyingKeys: await loadAuditVerifyingKeys({ envValue: config.auditSigningKey, dataDir: config.dataDir }) },
        {
          actor: 'system:audit-truncate',
          source: 'cli',
          requestId: 'audit-truncate',
          before,
          ...(options.archive ? { archiveFile: options.archive } : {}),
          onProgress: (checked, total) => progress.update(`verifying the range first: ${checked.toLocaleString('en')} / ${total.toLocaleString('en')} entries (${percent(checked, total)})`),
        },
      ).finally(progress.end);
      if (!result.plan) process.stdout.write(`${NOTHING(before)}\n`);
      else {
        const archived = result.archive ? `; archived first to ${result.archive.file} (sha256 ${result.archive.sha256})` : '';
        process.stdout.write(`removed ${planLine(result.plan)}; the checkpoint at seq ${result.plan.lastSeq} now anchors the chain${archived}\n`);
      }
    } finally {
      await audit.drain();
    }
  } finally {
    await store.close();
  }
}

/** An audit log for a command's own entries, signing checkpoints with the nodes' key when it is here. */
async function commandAuditLog(config: Config, db: Parameters<typeof planAuditRetention>[0]): Promise<AuditLog> {
  const signingKey = await loadAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, createIfMissing: false });
  return new AuditLog(db, createLogger(commandLogLevel(config.logLevel), config.logFile), signingKey ? { signingKey } : {});
}

function brokenLine(r: AuditChainReport): string {
  const p = r.firstProblem!;
  const where = p.kind === 'bad-checkpoint' ? `bad checkpoint at seq ${p.seq}` : p.seq === 0 ? `entry ${p.kind} outside the chain` : `entry ${p.seq} ${p.kind}`;
  return `audit chain BROKEN: ${where}: ${p.detail} (${r.entries} entries before it verified)`;
}

/** Written beside and renamed, so the collector never reads half a file. */
async function writePrometheusFile(file: string, report: AuditChainReport): Promise<void> {
  const text = [
    '# HELP telesalud_audit_chain_ok 1 when the last telesalud audit verify found the chain intact, 0 when it found it altered.',
    '# TYPE telesalud_audit_chain_ok gauge',
    `telesalud_audit_chain_ok ${report.ok ? 1 : 0}`,
    '# HELP telesalud_audit_chain_entries Entries checked by the last verification.',
    '# TYPE telesalud_audit_chain_entries gauge',
    `telesalud_audit_chain_entries ${report.entries}`,
    '# HELP telesalud_audit_chain_verified_timestamp_seconds When the last verification ended.',
    '# TYPE telesalud_audit_chain_verified_timestamp_seconds gauge',
    `telesalud_audit_chain_verified_timestamp_seconds ${Math.floor(Date.now() / 1000)}`,
    '',
  ].join('\n');
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}
