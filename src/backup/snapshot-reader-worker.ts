import { parentPort, workerData } from 'node:worker_threads';
import { openPglite } from '../db/database.js';
import { readerOf } from './backup-archive.js';

/**
 * Reads a PGlite snapshot copy on a thread of its own (started by pglite-snapshot-copy.ts):
 * opening PGlite and running its queries are synchronous WebAssembly, which on the service's
 * thread stalled requests by a second and more. Only the archive's plain NDJSON text crosses over,
 * in chunks the service acknowledges one at a time (its backpressure); the master key never does.
 */
const CHUNK_BYTES = 256 * 1024;

const port = parentPort!;
const { dir } = workerData as { dir: string };
let acknowledged: (() => void) | undefined;
port.on('message', (message) => {
  if (message === 'ack') acknowledged?.();
});

async function main(): Promise<void> {
  const copy = await openPglite(dir);
  try {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async () => {
      if (!pendingBytes) return;
      const data = Buffer.concat(pending);
      pending = [];
      pendingBytes = 0;
      const ack = new Promise<void>((resolve) => (acknowledged = resolve));
      // Copied, not transferred: a small Buffer may sit in Node's shared pool.
      port.postMessage({ kind: 'text', data });
      await ack;
    };
    const result = await readerOf(copy.db)(
      async (text) => {
        const bytes = typeof text === 'string' ? Buffer.from(text) : text;
        pending.push(bytes);
        pendingBytes += bytes.length;
        if (pendingBytes >= CHUNK_BYTES) await flush();
      },
      (table, rows, estimated) => port.postMessage({ kind: 'progress', table, rows, estimated }),
    );
    await flush();
    port.postMessage({ kind: 'done', ...result });
  } finally {
    await copy.close();
  }
}

main().then(
  () => port.close(),
  (err: Error) => {
    port.postMessage({ kind: 'error', message: err.message });
    port.close();
  },
);
