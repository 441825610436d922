import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { backupDatabase, restoreDatabase, verifyArchive, type BackupProgress } from '../backup/backup-archive.js';
import { loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { VERSION } from '../server/version.js';
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

/** `telesalud backup FILE`: online on PostgreSQL; on the embedded database while the service is stopped. */
export async function backupCommand(config: Config, file: string): Promise<void> {
  const target = path.resolve(file);
  if (existsSync(target)) throw new Error(`${target} already exists: choose a new file name (a backup never overwrites one)`);
  const keyRing = await masterKeyRing(config);
  const store = await openCommandStore(config, 'backup', { ifMissing: 'nothing to back up' });
  const progress = progressReporter();
  try {
    const summary = await backupDatabase(store.db, keyRing, target, { version: VERSION, onProgress: progress.onProgress }).finally(progress.end);
    process.stdout.write(
      `backup written: ${summary.file} (${mb(summary.bytes)}, ${summary.rows.toLocaleString('en')} rows in ${summary.tables} tables, ${summary.seconds.toFixed(1)} s). ` +
        `It opens only with master key ${keyRing.current().id}: keep that key safe and apart from the backup.\n`,
    );
  } finally {
    await store.close();
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
