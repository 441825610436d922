import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Socket } from 'node:net';

/**
 * The local admin socket's wire format. The client sends one JSON request line; the node answers
 * with frames — a type byte, a 4-byte big-endian length, the payload — until one result or error:
 *   P progress (JSON)   D archive bytes   R result (JSON)   E error (JSON {message})
 * Tiny on purpose: it carries a handful of operator commands, never the public API.
 */

export const ADMIN_SOCKET_FILE = 'admin.sock';
/** sun_path holds 108 bytes on Linux (104 on BSD and macOS); longer paths can not be bound. */
export const MAX_SOCKET_PATH = 103;
const MAX_REQUEST_BYTES = 64 * 1024;
const MAX_FRAME_BYTES = 16 * 1024 * 1024;

export type AdminRequest =
  | { command: 'backup' }
  | { command: 'audit-verify'; publicKeys?: { pem: string; name: string } }
  | { command: 'keys-status' }
  | { command: 'keys-rotate'; resume: boolean; batchSize: number }
  | { command: 'keys-retire' };

export type FrameType = 'P' | 'D' | 'R' | 'E';

export const adminSocketPath = (dataDir: string) => path.join(dataDir, ADMIN_SOCKET_FILE);

export function encodeFrame(type: FrameType, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Frames as they arrive; throws on a frame that is not one of ours. */
export async function* readFrames(socket: AsyncIterable<Buffer>): AsyncGenerator<{ type: FrameType; payload: Buffer }> {
  let buffered: Buffer = Buffer.alloc(0);
  for await (const chunk of socket) {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 5) {
      const type = String.fromCharCode(buffered[0]!);
      const length = buffered.readUInt32BE(1);
      if (!'PDRE'.includes(type) || length > MAX_FRAME_BYTES) throw new Error('the admin socket answered something that is not telesalud\'s protocol');
      if (buffered.length < 5 + length) break;
      yield { type: type as FrameType, payload: buffered.subarray(5, 5 + length) };
      buffered = buffered.subarray(5 + length);
    }
  }
}

/** The request line, read by the node: one JSON object, bounded. */
export function readRequestLine(socket: Socket): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('utf8');
      const end = text.indexOf('\n');
      if (end < 0 && text.length <= MAX_REQUEST_BYTES) return;
      socket.off('data', onData);
      socket.pause();
      if (end < 0) return reject(new Error('request too long'));
      try {
        resolve(JSON.parse(text.slice(0, end)));
      } catch {
        reject(new Error('the request is not JSON'));
      }
    };
    socket.on('data', onData);
    socket.once('end', () => reject(new Error('no request')));
  });
}

/**
 * Group or world access to the data dir or the socket would let another local account reach a
 * channel that hands out every record: refused on both sides, naming the fix.
 */
export async function socketPermissionProblem(dataDir: string, socketFile: string | undefined): Promise<string | undefined> {
  const uid = process.getuid?.();
  const dir = await stat(dataDir);
  if ((dir.mode & 0o077) !== 0) return `the data dir ${dataDir} is open to other accounts (mode ${(dir.mode & 0o777).toString(8)}): run \`chmod 700 ${dataDir}\``;
  if (socketFile === undefined) return undefined;
  const sock = await stat(socketFile);
  if (!sock.isSocket()) return `${socketFile} is not a socket`;
  if ((sock.mode & 0o077) !== 0) return `the admin socket ${socketFile} is open to other accounts (mode ${(sock.mode & 0o777).toString(8)}): restart the service to recreate it with mode 600`;
  if (uid !== undefined && uid !== 0 && (sock.uid !== uid || dir.uid !== uid)) return `the admin socket ${socketFile} belongs to another account (uid ${sock.uid}): run the command as the account that runs the service`;
  return undefined;
}
