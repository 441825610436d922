import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import type { Config } from '../config/config.js';
import { openStore } from '../db/database.js';
import { lockDataDir } from '../server/data-dir-lock.js';
import {
  AUDIT_PUBLIC_KEY_FILE,
  AUDIT_SIGNING_KEY_ENV,
  AUDIT_SIGNING_KEY_FILE,
  loadAuditSigningKey,
  parseAuditPublicKey,
  type AuditVerifyingKey,
} from '../audit/audit-signing-key.js';
import { verifyAuditChain, type AuditChainReport } from '../audit/verify-chain.js';

export interface AuditVerifyOptions {
  /** PEM file of the public key to check checkpoint signatures with, instead of the configured signing key. */
  publicKey?: string;
  json?: boolean;
}

/**
 * `telesalud audit verify`: walks the whole audit chain and its signed checkpoints. Prints one
 * summary line and exits 0 when the chain is intact; exits 1 naming the first entry found
 * altered, inserted or deleted (or the first bad checkpoint) otherwise.
 */
export async function auditVerifyCommand(config: Config, options: AuditVerifyOptions): Promise<void> {
  const keys = await verifyingKeys(config, options);

  let release = async () => undefined as void;
  if (!config.databaseUrl) {
    if (!existsSync(path.join(config.dataDir, 'pg', 'PG_VERSION'))) throw new Error(`no database in ${config.dataDir}: nothing to verify (set TELESALUD_DATA_DIR or TELESALUD_DATABASE_URL)`);
    try {
      release = await lockDataDir(config.dataDir);
    } catch (err) {
      const message = (err as Error).message;
      const pid = /process (\d+)/.exec(message)?.[1];
      if (!pid) throw err;
      // Until the local admin socket exists, a command can not reach a running embedded node.
      throw new Error(`the telesalud service (pid ${pid}) is running on ${config.dataDir} and holds its embedded database: stop it, then run audit verify again`);
    }
  }
  const store = await openStore(config);
  try {
    const applied = await sql<{ name: string }>`select name from schema_migration where name = '0002-audit-chain'`.execute(store.db).catch(() => ({ rows: [] }));
    if (applied.rows.length === 0) throw new Error('this database has no audit chain yet: run `telesalud migrate` (or start the service) first');
    if (keys.length === 0) {
      const signed = await sql<{ n: number }>`select count(*)::int as n from audit_checkpoint`.execute(store.db);
      if ((signed.rows[0]?.n ?? 0) > 0) {
        throw new Error(`no audit key to check the signed checkpoints with: set ${AUDIT_SIGNING_KEY_ENV} as on the nodes, put the key in ${path.join(config.dataDir, AUDIT_SIGNING_KEY_FILE)}, or pass --public-key FILE`);
      }
    }
    const progress = progressReporter();
    const report = await verifyAuditChain(store.db, { keys, onProgress: progress.update }).finally(progress.end);
    for (const warning of report.warnings) process.stderr.write(`warning: ${warning}\n`);
    if (options.json) process.stdout.write(`${JSON.stringify(report)}\n`);
    if (!report.ok) throw new Error(brokenLine(report));
    if (!options.json) process.stdout.write(`${validLine(report)}\n`);
  } finally {
    await store.close();
    await release();
  }
}

async function verifyingKeys(config: Config, options: AuditVerifyOptions): Promise<AuditVerifyingKey[]> {
  if (options.publicKey) {
    const text = await readFile(options.publicKey, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new Error(`--public-key: can not read ${options.publicKey} (${err.code ?? err.message})`);
    });
    return [parseAuditPublicKey(text, options.publicKey)];
  }
  const signing = await loadAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, createIfMissing: false });
  if (signing) return [{ keyId: signing.keyId, publicKey: signing.publicKey }];
  const publicFile = path.join(config.dataDir, AUDIT_PUBLIC_KEY_FILE);
  if (existsSync(publicFile)) return [parseAuditPublicKey(await readFile(publicFile, 'utf8'), publicFile)];
  return [];
}

function validLine(r: AuditChainReport): string {
  const tail = r.entries - r.lastCheckpointSeq;
  const signed = r.checkpoints === 0 ? 'no signed checkpoints' : `${r.checkpoints} signed checkpoint${r.checkpoints === 1 ? '' : 's'} (last at seq ${r.lastCheckpointSeq}${tail > 0 ? `; ${tail} newer entr${tail === 1 ? 'y' : 'ies'} chained, not yet signed` : ''})`;
  return `audit chain valid: ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}, ${signed}`;
}

function brokenLine(r: AuditChainReport): string {
  const p = r.firstProblem!;
  const where = p.kind === 'bad-checkpoint' ? `bad checkpoint at seq ${p.seq}` : p.seq === 0 ? `entry ${p.kind} outside the chain` : `entry ${p.seq} ${p.kind}`;
  return `audit chain BROKEN: ${where}: ${p.detail} (${r.entries} entries before it verified)`;
}

/** On stderr, only for a walk that takes more than a moment: a live line on a terminal, a line every few seconds otherwise. */
function progressReporter(): { update: (checked: number, total: number) => void; end: () => void } {
  const started = Date.now();
  let last = 0;
  let shown = false;
  const tty = process.stderr.isTTY === true;
  return {
    update(checked, total) {
      const now = Date.now();
      if (now - started < 1000 || now - last < (tty ? 200 : 5000)) return;
      last = now;
      shown = true;
      const line = `verifying audit chain: ${checked.toLocaleString('en')} / ${total.toLocaleString('en')} entries (${total ? Math.floor((100 * checked) / total) : 100}%)`;
      process.stderr.write(tty ? `\r${line}` : `${line}\n`);
    },
    end() {
      if (shown && tty) process.stderr.write('\n');
    },
  };
}
