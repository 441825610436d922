import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { isProcessAlive } from '../server/data-dir-lock.js';
import { adminSocketPath, readFrames, socketPermissionProblem, type AdminRequest } from './admin-socket-protocol.js';

/** How long after taking the data-dir lock a service may take to open its admin socket. */
const STARTING_MS = 30_000;

/**
 * The embedded database admits one process. When a live service holds the data dir, a command
 * asks that service to do the work over its admin socket (see admin-socket-server.ts); otherwise
 * (PostgreSQL, or the service stopped) it opens the database itself and this returns undefined.
 */
export async function runningServiceSocket(config: Config, commandName: string): Promise<string | undefined> {
  if (config.databaseUrl) return undefined;
  const pid = Number((await readFile(path.join(config.dataDir, 'telesalud.pid'), 'utf8').catch(() => '')).trim());
  if (!pid || pid === process.pid || !isProcessAlive(pid)) return undefined;
  const file = adminSocketPath(config.dataDir);
  // A service still starting (migrating, opening the database) holds the lock before it opens the socket.
  const lockAgeMs = Date.now() - ((await stat(path.join(config.dataDir, 'telesalud.pid')).catch(() => undefined))?.mtimeMs ?? 0);
  for (let waited = 0; !existsSync(file) && lockAgeMs + waited < STARTING_MS && isProcessAlive(pid); waited += 250) {
    if (waited === 0) process.stderr.write(`the service (pid ${pid}) is starting; waiting for its admin socket\n`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (!existsSync(file)) {
    throw new Error(
      `the telesalud service (pid ${pid}) is running on ${config.dataDir} and holds its embedded database, but offers no admin socket (its log says why: a data dir open to other accounts, or a path too long for a socket): stop it, then run ${commandName} again`,
    );
  }
  const problem = await socketPermissionProblem(config.dataDir, file);
  if (problem) throw new Error(`refused: ${problem}`);
  return file;
}

export interface AdminCallHandlers {
  onProgress?: (event: any) => void;
  /** Archive bytes, in order; awaited, so a slow disk slows the node's reading instead of filling memory. */
  onData?: (chunk: Buffer) => Promise<void>;
}

/** Sends one request and follows the node's answer to its result (or throws its one-line error). */
export async function callAdminSocket<T>(file: string, request: AdminRequest, handlers: AdminCallHandlers = {}): Promise<T> {
  const socket = net.connect(file);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (err: NodeJS.ErrnoException) =>
      reject(new Error(err.code === 'EACCES' ? `refused: ${file} belongs to another account: run the command as the account that runs the service` : `can not reach the running service at ${file} (${err.code ?? err.message})`)),
    );
  });
  socket.write(`${JSON.stringify(request)}\n`);
  try {
    for await (const frame of readFrames(socket)) {
      if (frame.type === 'D') await handlers.onData?.(frame.payload);
      else if (frame.type === 'P') handlers.onProgress?.(JSON.parse(frame.payload.toString('utf8')));
      else if (frame.type === 'R') return JSON.parse(frame.payload.toString('utf8')) as T;
      else throw new Error((JSON.parse(frame.payload.toString('utf8')) as { message: string }).message);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw new Error(`the running service hung up (${(err as NodeJS.ErrnoException).code}): it may have stopped`);
    throw err;
  } finally {
    socket.destroy();
  }
  throw new Error('the running service closed the admin socket before it finished (it may be stopping): run the command again');
}
