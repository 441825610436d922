/**
 * The socket to `wss://<this origin>/consult/ws`: sends typed client messages, validates
 * every inbound one with the shared parser (invalid ones are dropped and counted), and
 * when the socket drops reopens it and rejoins with `resume`, keeping the place in the call.
 */
import { SIGNALING_PATH, parseServerMessage, type ClientMessage, type JoinTarget, type ServerMessage } from '../../../src/consult/signaling-protocol.js';
import { DefaultReconnectPolicy, type ReconnectPolicy } from './reconnect-policy.js';
import { TypedEmitter } from './typed-emitter.js';

export type SignalingState = 'connecting' | 'open' | 'reconnecting' | 'closed';

type Events = {
  message: [ServerMessage];
  state: [SignalingState];
  /** The socket is gone for good: closed by the server (`closed`), by us, or the policy gave up. */
  gone: [];
};

export interface JoinRequest {
  target: JoinTarget;
  e2ee: boolean;
  identityKey: string;
  displayName?: string;
}

export class SignalingClient extends TypedEmitter<Events> {
  private socket: WebSocket | undefined;
  private resume: { participantId: string; secret: string } | undefined;
  private retryCount = 0;
  private cutOffSince: number | undefined;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private finished = false;
  private stateNow: SignalingState = 'connecting';
  private welcomedOnce = false;
  /** Inbound messages refused by the parser. */
  invalidMessages = 0;

  constructor(
    private readonly join: JoinRequest,
    private readonly policy: ReconnectPolicy = new DefaultReconnectPolicy(),
    private readonly url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${SIGNALING_PATH}`,
  ) {
    super();
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
  }

  get state(): SignalingState {
    return this.stateNow;
  }

  connect(): void {
    if (this.finished) return;
    clearTimeout(this.retryTimer);
    this.setState(this.welcomedOnce ? 'reconnecting' : 'connecting');
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.onopen = () => {
      const message: ClientMessage = { type: 'join', e2ee: this.join.e2ee, identityKey: this.join.identityKey, ...this.join.target, ...(this.join.displayName ? { displayName: this.join.displayName } : {}), ...(this.resume ? { resume: this.resume } : {}) } as ClientMessage;
      socket.send(JSON.stringify(message));
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') return void this.invalidMessages++;
      const parsed = parseServerMessage(event.data);
      if (!parsed.ok) return void this.invalidMessages++;
      this.handle(parsed.message);
    };
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.scheduleReconnect();
    };
  }

  private handle(message: ServerMessage): void {
    switch (message.type) {
      case 'welcome':
        this.resume = { participantId: message.participant.id, secret: message.resumeSecret };
        this.welcomedOnce = true;
        this.retryCount = 0;
        this.cutOffSince = undefined;
        this.setState('open');
        break;
      case 'closed':
        // The reason first, so the session ends with it rather than as a lost connection.
        this.emit('message', message);
        this.finish();
        return;
      case 'reconnect':
        // The node is draining: move to another one now, keeping our place.
        this.socket?.close();
        break;
      case 'error':
        // A resume the server no longer honours (our place expired): join afresh, through the waiting room.
        if (this.resume && this.stateNow !== 'open') {
          this.resume = undefined;
          this.socket?.close();
          return;
        }
        break;
    }
    this.emit('message', message);
  }

  private scheduleReconnect(): void {
    if (this.finished) return;
    if (!this.welcomedOnce) {
      // Never welcomed: a refusal, not a network drop. Nothing to resume.
      this.finish();
      return;
    }
    this.cutOffSince ??= Date.now();
    const delay = this.policy.nextRetryDelayMs({ retryCount: this.retryCount++, elapsedMs: Date.now() - this.cutOffSince });
    if (delay === null) return this.finish();
    this.setState('reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** The browser says the network is back: try now rather than at the next scheduled retry. */
  private readonly onOnline = () => {
    if (!this.finished && !this.socket && this.welcomedOnce) this.connect();
  };

  /**
   * The browser lost its network (Wi-Fi gone, airplane mode): the socket is dead even if TCP
   * has not noticed yet. Dropping it now shows "reconnecting" at once and lets `online` bring
   * it back without waiting for a timeout.
   */
  private readonly onOffline = () => {
    if (this.welcomedOnce) this.socket?.close();
  };

  /** Sent only while the socket is open: signals from before a drop are stale after it. */
  send(message: ClientMessage): boolean {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  /** Drop the socket as a network failure would (the call then resumes by itself). */
  dropForRecovery(): void {
    this.socket?.close();
  }

  private setState(state: SignalingState): void {
    if (state === this.stateNow) return;
    this.stateNow = state;
    this.emit('state', state);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.retryTimer);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.setState('closed');
    this.emit('gone');
  }

  close(): void {
    this.send({ type: 'leave' });
    const socket = this.socket;
    this.socket = undefined;
    socket?.close();
    this.finish();
  }
}
