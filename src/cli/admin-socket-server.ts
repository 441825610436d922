import { chmod, rm } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import os from 'node:os';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { loadAuditVerifyingKeys, parseAuditPublicKeys, AUDIT_SIGNING_KEY_ENV } from '../audit/audit-signing-key.js';
import { verifyAuditChain } from '../audit/verify-chain.js';
import { recordBackupEvent } from '../backup/backup-audit.js';
import { writeBackupArchive, type BackupProgress } from '../backup/backup-archive.js';
import { removeStaleSnapshotCopies, withPgliteSnapshotCopy } from '../backup/pglite-snapshot-copy.js';
import { keyUsage, unknownKeys } from '../keys/key-usage.js';
import { retireUnusedKeys, rotatableKeyFile, rotateMasterKey } from '../keys/master-key-rotation.js';
import { safeError } from '../logging/safe-error.js';
import type { AppContext } from '../server/app-context.js';
import { adminSocketPath, encodeFrame, MAX_SOCKET_PATH, readRequestLine, socketPermissionProblem, type AdminRequest, type FrameType } from './admin-socket-protocol.js';
import { keysStatusOf } from './keys-status.js';

/**
 * The local admin socket: how `telesalud backup`, `audit verify` and `keys …` reach a running
 * node on the embedded database, whose data dir only one process may open.
 *
 * Why the socket is the trust boundary: it is a Unix domain socket inside the data dir, which is
 * mode 0700, and the socket itself is mode 0600, so only the operating-system account that owns
 * the data (and root) can connect — exactly the accounts that could read the database files
 * directly anyway. Nothing here is reachable from the network, not even by an admin session: a
 * backup holds every record. The node re-checks the modes on every connection and refuses when
 * someone has opened them up; the command checks them too before it connects.
 */
export interface AdminSocket {
  path: string;
  close(): Promise<void>;
}

export async function startAdminSocket(ctx: AppContext): Promise<AdminSocket | undefined> {
  const { config, logger } = ctx;
  if (config.databaseUrl) return undefined; // PostgreSQL: commands open the database themselves.
  const file = adminSocketPath(config.dataDir);
  if (file.length > MAX_SOCKET_PATH) {
    logger.warn({ path: file }, 'admin socket not started: the data dir path is too long for a Unix socket; stop the service to run backup, audit verify and keys commands');
    return undefined;
  }
  const problem = await socketPermissionProblem(config.dataDir, undefined);
  if (problem) {
    logger.warn({ reason: problem }, 'admin socket not started: backup, audit verify and keys commands need the service stopped');
    return undefined;
  }
  const removed = await removeStaleSnapshotCopies(config.dataDir);
  if (removed) logger.info({ removed }, 'removed backup snapshot copies left by an earlier run');
  // This node holds the data-dir lock: a socket file here is a leftover of one that died.
  await rm(file, { force: true });

  const open = new Set<Socket>();
  const running = new Set<Promise<void>>();
  let busy: string | undefined;
  const server = net.createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    const work = serveConnection(ctx, socket, file, {
      claim: (command) => {
        if (busy) return busy;
        busy = command;
        return undefined;
      },
      release: () => (busy = undefined),
    })
      .catch((err: unknown) => logger.error({ err: safeError(err) }, 'admin socket connection failed'))
      .finally(() => running.delete(work));
    running.add(work);
  });
  // Created owner-only from the first instant (the 0700 data dir already keeps others out).
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(umask);
  }
  await chmod(file, 0o600);
  logger.info({ path: file }, 'admin socket listening');
  return {
    path: file,
    async close() {
      server.close();
      // A command in flight is cut off (its partial file removed by the command); its snapshot copy is removed here.
      for (const socket of open) socket.destroy();
      await Promise.allSettled([...running]);
      await rm(file, { force: true });
    },
  };
}

interface Gate {
  claim(command: string): string | undefined;
  release(): void;
}

function isRequest(value: unknown): value is AdminRequest {
  const r = value as AdminRequest | null;
  if (typeof r !== 'object' || r === null || typeof r.command !== 'string') return false;
  switch (r.command) {
    case 'backup':
    case 'keys-status':
    case 'keys-retire':
      return true;
    case 'audit-verify':
      return r.publicKeys === undefined || (typeof r.publicKeys.pem === 'string' && typeof r.publicKeys.name === 'string');
    case 'keys-rotate':
      return typeof r.resume === 'boolean' && Number.isInteger(r.batchSize) && r.batchSize >= 1 && r.batchSize <= 10_000;
    default:
      return false;
  }
}

async function serveConnection(ctx: AppContext, socket: Socket, file: string, gate: Gate): Promise<void> {
  const abort = new AbortController();
  socket.on('close', () => abort.abort());
  const send = (type: FrameType, payload: Buffer | string): Promise<void> =>
    new Promise((resolve, reject) => {
      if (socket.destroyed || !socket.writable) return reject(new Error('the command hung up'));
      const flushed = socket.write(encodeFrame(type, payload), (err) => err && reject(new Error('the command hung up')));
      if (flushed) return resolve();
      const wake = () => {
        socket.off('drain', wake);
        socket.off('close', wake);
        if (socket.destroyed) reject(new Error('the command hung up'));
        else resolve();
      };
      socket.on('drain', wake);
      socket.on('close', wake);
    });
  const fail = async (message: string) => {
    await send('E', JSON.stringify({ message })).catch(() => undefined);
    socket.end();
  };

  const problem = await socketPermissionProblem(ctx.config.dataDir, file).catch((err: Error) => err.message);
  if (problem) return fail(`refused: ${problem}`);
  let request: unknown;
  try {
    request = await readRequestLine(socket);
  } catch (err) {
    return fail(`bad request: ${(err as Error).message}`);
  }
  if (!isRequest(request)) return fail('bad request: not a command this node knows');
  const other = gate.claim(request.command);
  if (other) return fail(`another admin command (${other}) is running on this node: try again when it has finished`);
  socket.resume();
  ctx.logger.info({ command: request.command }, 'admin socket command');
  try {
    const result = await runCommand(ctx, request, send, abort.signal);
    await send('R', JSON.stringify(result));
    socket.end();
  } catch (err) {
    if (!socket.destroyed) ctx.logger.warn({ command: request.command, err: safeError(err) }, 'admin socket command failed');
    await fail((err as Error).message);
  } finally {
    gate.release();
  }
}

/** Progress frames at most every 100 ms: the command redraws its line no faster than that anyway. */
function throttled(send: (type: FrameType, payload: string) => Promise<void>) {
  let last = 0;
  return (event: object) => {
    const now = Date.now();
    if (now - last < 100) return;
    last = now;
    void send('P', JSON.stringify(event)).catch(() => undefined);
  };
}

async function runCommand(ctx: AppContext, request: AdminRequest, send: (type: FrameType, payload: Buffer | string) => Promise<void>, signal: AbortSignal): Promise<unknown> {
  const progress = throttled(send);
  switch (request.command) {
    case 'backup':
      return backupThroughSocket(ctx, send, progress);
    case 'audit-verify': {
      const keys = request.publicKeys
        ? parseAuditPublicKeys(request.publicKeys.pem, request.publicKeys.name)
        : await loadAuditVerifyingKeys({ envValue: ctx.config.auditSigningKey, dataDir: ctx.config.dataDir });
      if (keys.length === 0) {
        const signed = await sql<{ n: number }>`select count(*)::int as n from audit_checkpoint`.execute(ctx.store.db);
        if ((signed.rows[0]?.n ?? 0) > 0) throw new Error(`no audit key to check the signed checkpoints with: the service has neither ${AUDIT_SIGNING_KEY_ENV} nor a key file; pass --public-key FILE`);
      }
      const report = await verifyAuditChain(ctx.store.db, { keys, onProgress: (checked, total) => progress({ checked, total }) });
      // Reading the trail is audited, as for an admin in the console.
      await ctx.audit.record({
        actor: 'system:audit-verify',
        action: 'audit-search',
        outcome: 'success',
        source: 'admin-socket',
        requestId: 'audit-verify',
        detail: { view: 'chain-verification', ok: report.ok, entries: report.entries, osUser: osUser(), ...(report.firstProblem ? { firstProblemSeq: report.firstProblem.seq, kind: report.firstProblem.kind } : {}) },
      });
      if (!report.ok) ctx.logger.error({ seq: report.firstProblem?.seq, kind: report.firstProblem?.kind }, 'audit chain verification found the chain broken');
      return report;
    }
    case 'keys-status':
      return keysStatusOf(ctx.keyRing, await keyUsage(ctx.store.db, ctx.keyRing));
    case 'keys-rotate':
      rotatableKeyFile(ctx.keyRing);
      // The node's own ring: it seals with the new key as soon as the file is written.
      return rotateMasterKey(ctx.store, ctx.keyRing, { resume: request.resume, batchSize: request.batchSize, signal, onProgress: progress });
    case 'keys-retire': {
      rotatableKeyFile(ctx.keyRing);
      const unknown = unknownKeys(await keyUsage(ctx.store.db, ctx.keyRing), ctx.keyRing);
      return { ...(await retireUnusedKeys(ctx.store, ctx.keyRing)), unknown };
    }
  }
}

function osUser(): string | undefined {
  try {
    return os.userInfo().username;
  } catch {
    return undefined;
  }
}

/** The archive is written here, by the node, and streamed to the command as D frames. */
async function backupThroughSocket(ctx: AppContext, send: (type: FrameType, payload: Buffer | string) => Promise<void>, progress: (event: Parameters<BackupProgress>[0]) => void): Promise<unknown> {
  const started = Date.now();
  let bytes = 0;
  const sink = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      send('D', chunk).then(() => callback(), callback);
    },
  });
  try {
    const written = await withPgliteSnapshotCopy(ctx.store.db, ctx.config.dataDir, async (read, stats) => {
      ctx.logger.info({ pausedMs: Math.round(stats.pausedMs), checkpointMs: Math.round(stats.checkpointMs), filesCopiedInPause: stats.filesInPause, files: stats.files }, 'backup snapshot taken');
      return { ...(await writeBackupArchive(read, ctx.keyRing, sink, { version: ctx.version, onProgress: progress })), pausedMs: Math.round(stats.pausedMs) };
    });
    const summary = { ...written, bytes, seconds: (Date.now() - started) / 1000, kekId: ctx.keyRing.current().id };
    await recordBackupEvent(ctx.store.db, { outcome: 'success', via: 'admin-socket', detail: { tables: summary.tables, rows: summary.rows, bytes, lastMigration: summary.migrations.at(-1) } });
    return summary;
  } catch (err) {
    await recordBackupEvent(ctx.store.db, { outcome: 'failed', via: 'admin-socket', detail: { error: (err as Error).name } }).catch(() => undefined);
    throw err;
  }
}
