import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { sql, type Kysely } from 'kysely';
import { openPglite } from '../db/database.js';
import type { Database } from '../db/schema.js';
import { readerOf, type SnapshotReader } from './backup-archive.js';

/**
 * A consistent snapshot of the embedded database while the service keeps serving. PGlite is one
 * backend behind one connection (kysely-pglite-dialect queues every query behind the one in
 * hand), so the PostgreSQL way — a long repeatable-read transaction beside the service's own
 * sessions — would stop every request for the whole backup. Instead the data files are copied
 * twice, as `rsync` is for a base backup: first while the service runs (a torn, unusable copy),
 * then, holding the one connection so no query runs, after a CHECKPOINT, again for every file
 * that changed since — usually a handful, so requests wait milliseconds, not the whole copy.
 * Between two queries no transaction is open, so that copy is one committed instant (documents
 * and the rows that name them together); a second PGlite then reads it at leisure, on a worker
 * thread so its WebAssembly does not hold up the service's requests.
 */

const COPY_PREFIX = '.backup-snapshot-';

export interface SnapshotCopyStats {
  /** How long the service's queries waited for the checkpoint and the second copy. */
  pausedMs: number;
  /** Of which the CHECKPOINT (writing the dirty pages out). */
  checkpointMs: number;
  /** Files copied again while they waited, of all the data dir's files. */
  filesInPause: number;
  files: number;
}

export async function withPgliteSnapshotCopy<T>(db: Kysely<Database>, dataDir: string, work: (read: SnapshotReader, stats: SnapshotCopyStats) => Promise<T>): Promise<T> {
  // Beside the data (same file system, same 0700 directory): the copy holds the same health data.
  const root = await mkdtemp(path.join(dataDir, COPY_PREFIX));
  const copyDir = path.join(root, 'pg');
  try {
    const source = path.join(dataDir, 'pg');
    const first = await syncTree(source, copyDir, new Map());
    let pausedMs = 0;
    let filesInPause = 0;
    let checkpointMs = 0;
    await db.connection().execute(async (connection) => {
      const started = performance.now();
      await sql`checkpoint`.execute(connection);
      checkpointMs = performance.now() - started;
      filesInPause = (await syncTree(source, copyDir, first.copied)).changed;
      pausedMs = performance.now() - started;
    });
    // The running node's pid file came along; the copy is opened by the reader alone.
    await rm(path.join(copyDir, 'postmaster.pid'), { force: true });
    return await work(existsSync(WORKER_FILE) ? workerReader(copyDir) : inThreadReader(copyDir), { pausedMs, checkpointMs, filesInPause, files: first.copied.size });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Copies left by a node that died mid-backup: removed at start, while the data-dir lock is held. */
export async function removeStaleSnapshotCopies(dataDir: string): Promise<number> {
  const stale = (await readdir(dataDir).catch(() => [] as string[])).filter((name) => name.startsWith(COPY_PREFIX));
  for (const name of stale) await rm(path.join(dataDir, name), { recursive: true, force: true });
  return stale.length;
}

interface Copied {
  size: number;
  mtimeMs: number;
  /** When this copy of the file was taken. */
  at: number;
}

/**
 * mtime has the kernel's coarse clock (a few ms): a write in the same tick as the copy leaves it
 * unchanged. A file modified less than this before its copy is therefore copied again (with a
 * wide margin for the clocks of Date.now() and the file system).
 */
const MTIME_SLACK_MS = 250;
const FILE_BATCH = 64;

function unchanged(before: Copied | undefined, now: { size: number; mtimeMs: number }): boolean {
  return before !== undefined && before.size === now.size && before.mtimeMs === now.mtimeMs && now.mtimeMs < before.at - MTIME_SLACK_MS;
}

/**
 * Makes `to` hold what `from` holds: files new or changed since `previous` are copied, files gone
 * from `from` are removed from `to`. Returns what was copied (path → stat at copy time).
 */
async function syncTree(from: string, to: string, previous: Map<string, Copied>): Promise<{ copied: Map<string, Copied>; changed: number }> {
  const copied = new Map<string, Copied>();
  let changed = 0;
  const walk = async (relative: string) => {
    await mkdir(path.join(to, relative), { recursive: true, mode: 0o700 });
    const entries = await readdir(path.join(from, relative), { withFileTypes: true });
    const present = new Set(entries.map((e) => e.name));
    const files: string[] = [];
    for (const entry of entries) {
      if (entry.isDirectory()) await walk(path.join(relative, entry.name));
      else if (entry.isFile()) files.push(path.join(relative, entry.name));
    }
    // A batch of files at a time: one by one, each waiting its turn on an event loop busy with
    // requests, a thousand files took half a minute under load (and lengthened the pause).
    for (let i = 0; i < files.length; i += FILE_BATCH) {
      await Promise.all(
        files.slice(i, i + FILE_BATCH).map(async (rel) => {
          // A file PostgreSQL removed between the listing and the copy (a recycled WAL segment) is simply gone.
          const now = await stat(path.join(from, rel)).catch(() => undefined);
          if (!now) return;
          const before = previous.get(rel);
          if (unchanged(before, now)) {
            copied.set(rel, before!);
            return;
          }
          const at = Date.now();
          const done = await copyFile(path.join(from, rel), path.join(to, rel)).then(
            () => true,
            (err: NodeJS.ErrnoException) => {
              if (err.code === 'ENOENT') return false;
              throw err;
            },
          );
          if (!done) return;
          copied.set(rel, { size: now.size, mtimeMs: now.mtimeMs, at });
          changed += 1;
        }),
      );
    }
    // Files the service removed since the first copy must not linger in the snapshot.
    for (const name of await readdir(path.join(to, relative))) {
      if (!present.has(name)) await rm(path.join(to, relative, name), { recursive: true, force: true });
    }
  };
  await walk('');
  return { copied, changed };
}

/** Built (.js) or run from source under tsx (.ts, which a worker inherits). */
const here = fileURLToPath(import.meta.url);
const WORKER_FILE = path.join(path.dirname(here), `snapshot-reader-worker${path.extname(here)}`);

function workerReader(dir: string): SnapshotReader {
  return (write, onProgress) =>
    new Promise((resolve, reject) => {
      const worker = new Worker(WORKER_FILE, { workerData: { dir } });
      let result: { counts: Record<string, number>; migrations: string[] } | undefined;
      let failure: Error | undefined;
      worker.on('message', (message: { kind: string; data?: Uint8Array; table?: string; rows?: number; estimated?: number; counts?: Record<string, number>; migrations?: string[]; message?: string }) => {
        if (message.kind === 'text') {
          write(Buffer.from(message.data!.buffer, message.data!.byteOffset, message.data!.byteLength)).then(
            () => worker.postMessage('ack'),
            (err: Error) => {
              failure ??= err;
              void worker.terminate();
            },
          );
        } else if (message.kind === 'progress') onProgress(message.table!, message.rows!, message.estimated!);
        else if (message.kind === 'done' || message.kind === 'error') {
          if (message.kind === 'done') result = { counts: message.counts!, migrations: message.migrations! };
          else failure ??= new Error(message.message);
          // It exits by itself once its PGlite is closed; never left hanging if it does not.
          setTimeout(() => void worker.terminate(), 10_000).unref();
        }
      });
      worker.on('error', (err) => (failure ??= err));
      // Settled on exit: by then the worker's PGlite is closed and the copy may be removed.
      worker.on('exit', (code) => {
        if (result && !failure) resolve(result);
        else reject(failure ?? new Error(`the snapshot reader stopped (exit code ${code})`));
      });
    });
}

/** Where the worker file is missing (a test importing the source): the same read on this thread. */
function inThreadReader(dir: string): SnapshotReader {
  return async (write, onProgress) => {
    const copy = await openPglite(dir);
    try {
      return await readerOf(copy.db)(write, onProgress);
    } finally {
      await copy.close();
    }
  };
}
