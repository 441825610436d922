import { WebSocket } from 'ws';
import { SESSION_COOKIE } from '../auth/sessions/session-store.js';
import { parseServerMessage, SIGNALING_PATH, type ClientMessage, type ServerMessage } from './signaling-protocol.js';

/**
 * A signaling client for tests: the `ws` package with the headers a browser would send. Every
 * frame it receives must pass the browser's own parser (parseServerMessage), so a test fails
 * when the server says something the browser would refuse.
 */
export class SignalingTestClient {
  readonly received: ServerMessage[] = [];
  closeCode: number | undefined;
  private readonly waiters: { match: (m: ServerMessage) => boolean; resolve: (m: ServerMessage) => void }[] = [];
  private closedWaiters: (() => void)[] = [];
  private cursor = 0;

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const parsed = parseServerMessage(data.toString());
      if (!parsed.ok) throw new Error(`the server sent what the browser refuses: ${parsed.reason}`);
      this.received.push(parsed.message);
      this.wake();
    });
    socket.on('close', (code) => {
      this.closeCode = code;
      for (const w of this.closedWaiters) w();
      this.closedWaiters = [];
    });
  }

  /** `ca`: the certificate authority to trust for wss:// (a farm test's self-signed certificate). */
  static connect(baseUrl: string, options: { origin?: string | undefined; cookie?: string | undefined; ca?: string } = {}): Promise<SignalingTestClient> {
    const headers: Record<string, string> = {};
    if (options.origin !== undefined) headers.origin = options.origin;
    if (options.cookie) headers.cookie = `${SESSION_COOKIE}=${options.cookie}`;
    const socket = new WebSocket(`${baseUrl.replace(/^http/, 'ws')}${SIGNALING_PATH}`, { headers, ...(options.ca ? { ca: options.ca } : {}) });
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new SignalingTestClient(socket)));
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      socket.once('error', reject);
    });
  }

  send(message: ClientMessage | string): void {
    this.socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** The next message not yet taken that matches `type` (earlier ones of other types are skipped). */
  next<T extends ServerMessage['type']>(type: T, timeoutMs = 5000): Promise<Extract<ServerMessage, { type: T }>> {
    return new Promise((resolve, reject) => {
      const waiter = {
        match: (m: ServerMessage) => m.type === type,
        resolve: (m: ServerMessage) => {
          clearTimeout(timer);
          resolve(m as Extract<ServerMessage, { type: T }>);
        },
      };
      // A waiter that gave up leaves the queue: left there, it would take the next match from whoever waits after it.
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(new Error(`no "${type}" within ${timeoutMs} ms; got ${JSON.stringify(this.received.map((m) => m.type))}`));
        this.wake();
      }, timeoutMs);
      this.waiters.push(waiter);
      this.wake();
    });
  }

  /** Messages received and not yet taken by next(). */
  pending(): ServerMessage[] {
    return this.received.slice(this.cursor);
  }

  closed(timeoutMs = 5000): Promise<number> {
    if (this.closeCode !== undefined) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket still open after ${timeoutMs} ms`)), timeoutMs);
      this.closedWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.closeCode!);
      });
    });
  }

  close(): void {
    this.socket.close();
  }

  /** Drops the connection without a close frame, as a lost network does. */
  drop(): void {
    this.socket.terminate();
  }

  private wake(): void {
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0]!;
      let found = -1;
      for (let i = this.cursor; i < this.received.length; i++) {
        if (waiter.match(this.received[i]!)) {
          found = i;
          break;
        }
      }
      if (found < 0) return;
      this.cursor = found + 1;
      this.waiters.shift();
      waiter.resolve(this.received[found]!);
    }
  }
}
