import { createWriteStream, existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { backupDatabase, restoreDatabase, verifyArchive, type BackupContent, type BackupProgress } from '../backup/backup-archive.js';
import { recordBackupEvent } from '../backup/backup-audit.js';
import { loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { VERSION } from '../server/version.js';
import { callAdminSocket, runningServiceSocket } from './admin-socket-client.js';
import { openCommandStore } from './command-store.js';
import { percent, progressLine } from './progress.js';

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** The master key that seals documents also opens backups; it is never written into one. */
function masterKeyRing(config: Config): Promise<KeyRing> {
  return loadKeyRing({ ...(config.masterKey ? { masterKey: config.masterKey } : {}), ...(config.masterKeyFile ? { masterKeyFile: config.masterKeyFile } : {}), dataDir: config.dataDir, createIfMissing: false });
}

function progressReporter(): { onProgress: BackupProgress; end: () => void } {
  const line = progressLine();
  return {
    onProgress: (e) => {
      if (e.phase === 'read') line.update(`backing up ${e.table}: ${e.rows.toLocaleString('en')} rows (${percent(e.rows, Math.max(e.rows, e.estimated ?? 0))})`);
      else if (e.phase === 'verify') line.update(`checking the archive: ${mb(e.bytes ?? 0)} of ${mb(e.totalBytes ?? 0)} (${percent(e.bytes ?? 0, e.totalBytes ?? 0)})`);
      else line.update(`restoring ${e.table}: ${e.rows.toLocaleString('en')} rows loaded`);
    },
    end: line.end,
  };
}

function writtenLine(s: { file: string; bytes: number; rows: number; tables: number; seconds: number }, kekId: string): string {
  return (
    `backup written: ${s.file} (${mb(s.bytes)}, ${s.rows.toLocaleString('en')} rows in ${s.tables} tables, ${s.seconds.toFixed(1)} s). ` +
    `It opens only with master key ${kekId}: keep that key safe and apart from the backup.\n`
  );
}

/**
 * `telesalud backup FILE`: online on PostgreSQL; on the embedded database the running service
 * writes it (over its admin socket), or the command itself while the service is stopped.
 */
export async function backupCommand(config: Config, file: string): Promise<void> {
  const target = path.resolve(file);
  if (existsSync(target)) throw new Error(`${target} already exists: choose a new file name (a backup never overwrites one)`);
  const socket = await runningServiceSocket(config, 'backup');
  if (socket) return backupThroughService(socket, target);
  const keyRing = await masterKeyRing(config);
  const store = await openCommandStore(config, 'backup', { ifMissing: 'nothing to back up' });
  const progress = progressReporter();
  try {
    const summary = await backupDatabase(store.db, keyRing, target, { version: VERSION, onProgress: progress.onProgress }).finally(progress.end);
    await recordBackupEvent(store.db, { outcome: 'success', via: 'cli', detail: { tables: summary.tables, rows: summary.rows, bytes: summary.bytes, lastMigration: summary.migrations.at(-1) } });
    process.stdout.write(writtenLine(summary, keyRing.current().id));
  } finally {
    await store.close();
  }
}

/** The node reads its own snapshot and streams the sealed archive; this writes it to FILE, renamed only when complete. */
async function backupThroughService(socket: string, target: string): Promise<void> {
  const partial = `${target}.partial-${process.pid}`;
  const out = createWriteStream(partial, { flags: 'wx', mode: 0o600 });
  let failure: Error | undefined;
  out.on('error', (err: NodeJS.ErrnoException) => (failure = new Error(`can not write ${partial} (${err.code ?? err.message})`)));
  const progress = progressReporter();
  try {
    const summary = await callAdminSocket<BackupContent & { bytes: number; seconds: number; kekId: string; pausedMs: number }>(
      socket,
      { command: 'backup' },
      {
        onProgress: progress.onProgress,
        onData: async (chunk) => {
          if (failure) throw failure;
          if (out.write(chunk)) return;
          await new Promise<void>((resolve) => {
            out.once('drain', () => resolve());
            out.once('close', () => resolve());
          });
          if (failure) throw failure;
        },
      },
    ).finally(progress.end);
    out.end();
    await finished(out);
    await rename(partial, target);
    process.stdout.write(writtenLine({ ...summary, file: target }, summary.kekId));
    process.stdout.write(`written by the running service over its admin socket; its requests waited ${summary.pausedMs} ms for the snapshot.\n`);
  } catch (err) {
    out.destroy();
    await rm(partial, { force: true });
    throw err;
  }
}

/** `telesalud restore FILE`: into an empty PostgreSQL (TELESALUD_DATABASE_URL) or a new data dir. */
export async function restoreCommand(config: Config, file: string): Promise<void> {
  const source = path.resolve(file);
  if (!existsSync(source)) throw new Error(`${source} does not exist`);
  const pgDir = path.join(config.dataDir, 'pg');
  if (!config.databaseUrl && existsSync(path.join(pgDir, 'PG_VERSION'))) throw new Error(`${config.dataDir} already holds a database: restore into a new data dir (TELESALUD_DATA_DIR) or an empty PostgreSQL`);
  const keyRing = await masterKeyRing(config).catch((err: Error) => {
    throw new Error(`restore needs the master key the backup was made with (TELESALUD_MASTER_KEY, TELESALUD_MASTER_KEY_FILE or ${path.join(config.dataDir, 'master.key')}): ${err.message}`);
  });
  const progress = progressReporter();
  try {
    // Checked through before anything is created: a wrong key or a damaged file changes nothing.
    const verified = await verifyArchive(source, keyRing, progress.onProgress);
    const createdDir = !config.databaseUrl && !existsSync(pgDir);
    const store = await openCommandStore(config, 'restore', {});
    try {
      const result = await restoreDatabase(store.db, keyRing, source, { onProgress: progress.onProgress, verified });
      progress.end();
      process.stdout.write(
        `restored ${result.rows.toLocaleString('en')} rows in ${Object.keys(result.counts).length} tables from a backup of ${result.header.createdAt}` +
          `${result.migrated.length ? `, then applied ${result.migrated.length} newer migration(s)` : ''}. Run \`telesalud audit verify\` to check the audit chain.\n`,
      );
    } catch (err) {
      await store.close();
      if (createdDir) await rm(pgDir, { recursive: true, force: true });
      throw err;
    }
    await store.close();
  } finally {
    progress.end();
  }
}
