import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { PassThrough, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { StringDecoder } from 'node:string_decoder';
import { createGunzip, createGzip } from 'node:zlib';
import { sql, type Kysely } from 'kysely';
import type { Database } from '../db/schema.js';
import { KNOWN_MIGRATIONS, migrateToLatest, migrateUpTo } from '../db/migrate.js';
import type { KeyRing } from '../documents/key-ring.js';
import { ArchiveError, openArchive, sealArchive, type ArchiveHeader } from './archive-crypto.js';
import { insertRows, readSnapshot, resetSequences, snapshotLineText, type SnapshotLine } from './database-snapshot.js';

/**
 * `telesalud backup` and `telesalud restore`: the whole database (records, history, documents'
 * sealed bytes, accounts, audit chain) in one consistent, compressed, encrypted and
 * integrity-protected file that restores into an empty PostgreSQL or a new data dir.
 */

export interface BackupSummary {
  file: string;
  bytes: number;
  tables: number;
  rows: number;
  counts: Record<string, number>;
  migrations: string[];
  seconds: number;
}

export type BackupProgress = (event: { phase: 'read' | 'verify' | 'load'; table?: string; rows: number; estimated?: number; bytes?: number; totalBytes?: number }) => void;

/** What a backup wrote, before it became a file (the same whether it goes to a file here or over the admin socket). */
export interface BackupContent {
  tables: number;
  rows: number;
  counts: Record<string, number>;
  migrations: string[];
}

/**
 * Where the archive's content comes from: something that hands over its NDJSON text in order
 * (awaiting each hand-over, so memory stays flat) and says what it wrote. `readSnapshot` on a
 * database here, or a worker thread reading a snapshot copy (pglite-snapshot-copy.ts).
 */
export type SnapshotReader = (
  write: (text: string | Buffer) => Promise<void>,
  onProgress: (table: string, rows: number, estimated: number) => void,
) => Promise<{ counts: Record<string, number>; migrations: string[] }>;

export function readerOf(db: Kysely<Database>): SnapshotReader {
  return async (write, onProgress) => {
    let migrations: string[] = [];
    const counts = await readSnapshot(
      db,
      (line) => {
        if (line.kind === 'manifest') migrations = line.migrations;
        return write(snapshotLineText(line));
      },
      onProgress,
    );
    return { counts, migrations };
  };
}

/**
 * Reads one consistent snapshot and writes the sealed archive bytes into `sink` (compressed,
 * encrypted, authenticated): the one writer of the archive format, so a backup made by the
 * running node over the admin socket is byte-for-byte the format of one made here.
 */
export async function writeBackupArchive(source: Kysely<Database> | SnapshotReader, keyRing: KeyRing, sink: NodeJS.WritableStream, options: { version: string; onProgress?: BackupProgress | undefined }): Promise<BackupContent> {
  const read = typeof source === 'function' ? source : readerOf(source);
  const content = new PassThrough({ highWaterMark: 1024 * 1024 });
  const writing = pipeline(content, createGzip({ level: 6 }), sealArchive(keyRing, options.version), sink);
  // Awaited below; a sink failing while the read waits on the database must not crash the process as an unhandled rejection.
  writing.catch(() => undefined);
  try {
    const { counts, migrations } = await read(
      async (text) => {
        // A sink that fails (a disk full, a CLI gone) destroys `content`: stop the read then, not hang it.
        const failed = async () => (await writing.then(() => undefined, (e: unknown) => e)) ?? new Error('the backup could not be written');
        if (content.destroyed) throw await failed();
        if (content.write(text)) return;
        if (content.destroyed) throw await failed();
        await new Promise<void>((resolve) => {
          const wake = () => {
            content.off('drain', wake);
            content.off('close', wake);
            resolve();
          };
          content.on('drain', wake);
          content.on('close', wake);
        });
        if (content.destroyed) throw await failed();
      },
      (table, rows, estimated) => options.onProgress?.({ phase: 'read', table, rows, estimated }),
    );
    content.end();
    await writing;
    return { tables: Object.keys(counts).length, rows: Object.values(counts).reduce((a, b) => a + b, 0), counts, migrations };
  } catch (err) {
    content.destroy();
    await writing.catch(() => undefined);
    throw err;
  }
}

export async function backupDatabase(db: Kysely<Database>, keyRing: KeyRing, file: string, options: { version: string; onProgress?: BackupProgress }): Promise<BackupSummary> {
  const started = Date.now();
  // Written beside the target and renamed at the end: a failed run never leaves a file that looks like a backup.
  const partial = `${file}.partial-${process.pid}`;
  try {
    const written = await writeBackupArchive(db, keyRing, createWriteStream(partial, { mode: 0o600 }), options);
    await rename(partial, file);
    return { file, bytes: (await stat(file)).size, ...written, seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}

export interface ArchiveContents {
  header: ArchiveHeader;
  manifest: Extract<SnapshotLine, { kind: 'manifest' }>;
  counts: Record<string, number>;
}

/**
 * Reads the archive through, calling `onRow` per row in order. Throws an ArchiveError for a
 * wrong key, damage, truncation or a content that does not add up.
 */
async function readArchive(file: string, keyRing: KeyRing, onRow: (table: string, row: Record<string, unknown>) => Promise<void>, onBytes?: (bytes: number, total: number) => void): Promise<ArchiveContents> {
  const totalBytes = (await stat(file)).size;
  let header: ArchiveHeader | undefined;
  let manifest: ArchiveContents['manifest'] | undefined;
  let end: Record<string, number> | undefined;
  const seen: Record<string, number> = {};
  let bytesRead = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _enc, callback) {
      bytesRead += chunk.length;
      onBytes?.(bytesRead, totalBytes);
      callback(null, chunk);
    },
  });
  const plain = new PassThrough();
  const decoding = pipeline(createReadStream(file), counter, openArchive(keyRing, (h) => (header = h)), createGunzip(), plain).catch((err: unknown) => {
    plain.destroy(err as Error);
    throw err;
  });
  try {
    for await (const text of lines(plain)) {
      if (end) throw new ArchiveError('the backup has content after its end marker');
      let line: any;
      try {
        line = JSON.parse(text);
      } catch {
        throw new ArchiveError('the backup content is damaged (a line is not JSON)');
      }
      if (!manifest) {
        if (line.kind !== 'manifest' || !Array.isArray(line.migrations) || !Array.isArray(line.tables)) throw new ArchiveError('the backup content is damaged (no manifest)');
        manifest = line;
      } else if (line.kind === 'row') {
        if (!manifest.tables.includes(line.table) || typeof line.row !== 'object' || line.row === null) throw new ArchiveError('the backup content is damaged (a row of an unknown table)');
        seen[line.table] = (seen[line.table] ?? 0) + 1;
        await onRow(line.table, line.row);
      } else if (line.kind === 'end') {
        end = line.counts;
      } else {
        throw new ArchiveError('the backup content is damaged (an unknown line)');
      }
    }
    await decoding;
  } catch (err) {
    await decoding.catch(() => undefined);
    if (err instanceof ArchiveError) throw err;
    const decodeError = await decoding.then(() => undefined, (e: unknown) => e);
    if (decodeError instanceof ArchiveError) throw decodeError;
    if (decodeError) throw new ArchiveError(`the backup is damaged: ${(decodeError as Error).message}`);
    throw err;
  }
  if (!header || !manifest || !end) throw new ArchiveError('the backup is incomplete: its end marker is missing');
  for (const table of manifest.tables) {
    if ((seen[table] ?? 0) !== (end[table] ?? 0)) throw new ArchiveError(`the backup does not add up: ${table} holds ${seen[table] ?? 0} rows, its end marker says ${end[table] ?? 0}`);
  }
  return { header, manifest, counts: end };
}

/** The archive's content is NDJSON; a stream's async iterator (unlike readline) passes its errors on. */
async function* lines(stream: AsyncIterable<Buffer>): AsyncGenerator<string> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for await (const chunk of stream) {
    const parts = (rest + decoder.write(chunk)).split('\n');
    rest = parts.pop()!;
    yield* parts;
  }
  if (rest) yield rest;
}

/** Reads the whole archive without touching any database: the check a restore starts with. */
export async function verifyArchive(file: string, keyRing: KeyRing, onProgress?: BackupProgress): Promise<ArchiveContents> {
  let rows = 0;
  return readArchive(file, keyRing, async () => {
    rows += 1;
  }, (bytes, totalBytes) => onProgress?.({ phase: 'verify', rows, bytes, totalBytes }));
}

const BATCH_ROWS = 500;
const BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Restores into an empty database: the archive is verified through first (a wrong key or a
 * damaged file changes nothing), the schema is built up to the archive's migration, every row
 * is loaded in one transaction, and later migrations of this version run after.
 */
export async function restoreDatabase(db: Kysely<Database>, keyRing: KeyRing, file: string, options: { onProgress?: BackupProgress; verified?: ArchiveContents } = {}): Promise<{ counts: Record<string, number>; rows: number; header: ArchiveHeader; migrated: string[] }> {
  const checked = options.verified ?? (await verifyArchive(file, keyRing, options.onProgress));
  const unknown = checked.manifest.migrations.filter((m) => !KNOWN_MIGRATIONS.includes(m));
  if (unknown.length) throw new ArchiveError(`this backup comes from a newer telesalud (migrations ${unknown.join(', ')}); restore it with that version or later`);
  const tables = (await sql<{ n: number }>`select count(*)::int as n from pg_tables where schemaname = 'public'`.execute(db)).rows[0]?.n ?? 0;
  if (tables > 0) throw new Error('the target database is not empty: restore needs an empty PostgreSQL database or a new data dir');

  const last = checked.manifest.migrations.at(-1);
  if (last) await migrateUpTo(db, last);
  let loaded = 0;
  await db.transaction().execute(async (tx) => {
    let table = '';
    let batch: Record<string, unknown>[] = [];
    let batchBytes = 0;
    const flush = async () => {
      await insertRows(tx, table, batch);
      loaded += batch.length;
      options.onProgress?.({ phase: 'load', table, rows: loaded });
      batch = [];
      batchBytes = 0;
    };
    await readArchive(file, keyRing, async (rowTable, row) => {
      if (rowTable !== table) {
        await flush();
        table = rowTable;
      }
      batch.push(row);
      batchBytes += JSON.stringify(row).length;
      if (batch.length >= BATCH_ROWS || batchBytes >= BATCH_BYTES) await flush();
    });
    await flush();
    await resetSequences(tx);
  });
  const migrated = await migrateToLatest(db);
  return { counts: checked.counts, rows: loaded, header: checked.header, migrated };
}
