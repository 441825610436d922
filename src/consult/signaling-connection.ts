import type { WebSocket, RawData } from 'ws';
import type { ActiveSession } from '../auth/sessions/session-store.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import { CLOSE_NORMAL, CLOSE_POLICY, newId128, type ConsultRoom, type Participant, type PeerChannel } from './consult-room.js';
import type { ConsultRooms, RoomScope } from './consult-rooms.js';
import { iceServersFor } from './ice-servers.js';
import type { JoinDecision } from './join-rights.js';
import { inspectWebSocketMessage } from '../edge/request-inspection.js';
import { MAX_PARTICIPANTS, SIGNALING_PATH, parseClientMessage, type ClientMessage, type ServerMessage, type SignalingErrorCode } from './signaling-protocol.js';
import { TokenBucket } from './token-bucket.js';

/** Per socket: a burst of 200 messages (ICE gathering), 50 a second sustained. */
export const RATE_BURST = 200;
export const RATE_PER_SECOND = 50;
/** This many messages refused for rate in one socket's life closes it. */
const RATE_DROPS_BEFORE_CLOSE = 200;
/** This many malformed messages in a row close the socket. */
export const BAD_MESSAGES_BEFORE_CLOSE = 3;
/** A peer that doesn't read its socket is cut off before its backlog eats the node's memory. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

type JoinMessage = Extract<ClientMessage, { type: 'join' }>;

export interface ConnectionOrigin {
  session: ActiveSession | undefined;
  source: string;
  requestId: string;
}

/**
 * One signaling WebSocket, from open to close: it must join within JOIN_TIMEOUT_MS, every frame
 * is rate limited and parsed with the shared protocol (malformed ones are answered, counted,
 * and never reach a room), and once joined its messages go to its room.
 */
export class SignalingConnection implements PeerChannel {
  /** Names this socket across the farm: the bus brings other nodes' messages for it by this id. */
  readonly id = newId128();
  private state: 'new' | 'joining' | 'joined' | 'closed' = 'new';
  /** Once joined: where this socket sits. Rooms are looked up anew for every message (in a farm they live in Redis). */
  private seat: { appointmentId: string; participantId: string; roomId: string } | undefined;
  /** One message at a time, in order: a room operation may wait for Redis. */
  private queue: Promise<void> = Promise.resolve();
  private readonly bucket = new TokenBucket(RATE_BURST, RATE_PER_SECOND);
  private rateDrops = 0;
  private lastRateError = 0;
  private badInARow = 0;
  private readonly joinTimer: NodeJS.Timeout;

  constructor(
    private readonly socket: WebSocket,
    private readonly rooms: ConsultRooms,
    private readonly logger: Logger,
    private readonly origin: ConnectionOrigin,
  ) {
    rooms.addSocket(this);
    this.joinTimer = setTimeout(() => {
      if (this.state === 'new' || this.state === 'joining') this.refuse('unauthenticated', `send "join" within ${Math.round(rooms.joinTimeoutMs / 1000)} seconds of connecting`);
    }, rooms.joinTimeoutMs);
    this.joinTimer.unref();
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    socket.on('close', () => this.onClose());
    socket.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself after a protocol error (an oversized frame, a bad opcode).
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' || err.code?.startsWith('WS_ERR_')) this.rooms.badMessages++;
      else this.logger.debug({ err: safeError(err) }, 'signaling socket error');
    });
  }

  send(message: ServerMessage): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.socket.terminate();
      return;
    }
    this.socket.send(JSON.stringify(message));
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) this.socket.close(code, reason);
  }

  private error(code: SignalingErrorCode, message: string): void {
    this.send({ type: 'error', code, message });
  }

  /** Answers with an error and closes: the socket is done. */
  private refuse(code: SignalingErrorCode, message: string): void {
    this.error(code, message);
    this.close(CLOSE_POLICY, code);
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (!this.bucket.take()) {
      this.rateDrops++;
      if (this.rateDrops >= RATE_DROPS_BEFORE_CLOSE) return this.refuse('rate-limited', 'too many messages; the connection is closed');
      const now = Date.now();
      if (now - this.lastRateError >= 1000) {
        this.lastRateError = now;
        this.error('rate-limited', `too many messages: at most ${RATE_PER_SECOND} a second; this one was dropped`);
      }
      return;
    }
    const text = isBinary ? undefined : rawText(data);
    const parsed = text === undefined ? ({ ok: false, reason: 'binary frames are not part of the protocol' } as const) : parseClientMessage(text);
    // The protocol's own validation is strict (ids, base64url keys, enums, numbers); the shield reads
    // the one free-text field, the display name. Random base64url keys can spell `--` and the like.
    const freeText = parsed.ok && parsed.message.type === 'join' ? parsed.message.displayName : undefined;
    const verdict = freeText !== undefined && this.rooms.shield === 'on' ? inspectWebSocketMessage(JSON.stringify({ displayName: freeText })) : undefined;
    if (verdict?.blocked) {
      this.rooms.badMessages++;
      this.badInARow++;
      void this.rooms.recordAudit({ actor: this.origin.session?.account.fhirRef ?? 'guest', action: 'shield-block', appointmentId: this.seat?.appointmentId, outcome: 'denied', source: this.origin.source, requestId: this.origin.requestId, detail: { route: SIGNALING_PATH, rules: verdict.rules, families: verdict.families, score: verdict.score, where: verdict.locations } });
      this.error('bad-message', 'message refused by the shield');
      if (this.badInARow >= BAD_MESSAGES_BEFORE_CLOSE) this.close(CLOSE_POLICY, 'bad-message');
      return;
    }
    if (!parsed.ok) {
      this.rooms.badMessages++;
      this.badInARow++;
      this.error('bad-message', parsed.reason);
      if (this.badInARow >= BAD_MESSAGES_BEFORE_CLOSE) this.close(CLOSE_POLICY, 'bad-message');
      return;
    }
    this.badInARow = 0;
    const message = parsed.message;
    if (message.type === 'join') {
      if (this.state !== 'new') return this.error('already-joined', 'this connection has already joined; open a new one to join again');
      this.state = 'joining';
      this.join(message).catch((err: unknown) => {
        this.logger.error({ err: safeError(err) }, 'consultation join failed');
        this.refuse('not-allowed', 'the consultation could not be joined just now; try again');
      });
      return;
    }
    if (this.state === 'new') return this.refuse('unauthenticated', 'send "join" first');
    if (this.state === 'joining') return this.error('unauthenticated', 'wait for "welcome" before sending anything else');
    const seat = this.seat!;
    const act = (room: ConsultRoom | undefined) => {
      const participant = room?.participants.get(seat.participantId);
      if (!room || !participant || participant.channel?.id !== this.id) return;
      if (message.type === 'stats') {
        if (participant.state === 'admitted') this.rooms.reportTraffic(participant, message);
        return;
      }
      const failure = room.handle(participant, message);
      if (failure) this.error(failure.code, failure.message);
    };
    // Relays change nothing in the room: they only read it. Everything else changes it.
    const relay = message.type === 'signal' || message.type === 'e2ee-key' || message.type === 'mute' || message.type === 'stats';
    this.queue = this.queue
      .then(() => (relay ? this.rooms.read(seat.appointmentId, act) : this.rooms.update(seat.appointmentId, ({ room }) => act(room))))
      .catch((err: unknown) => {
        this.logger.warn({ err: safeError(err), room: seat.roomId, type: message.type }, 'consultation message not handled');
        if (!relay) this.error('not-allowed', 'the consultation could not be reached just now; try again');
      });
  }

  private onClose(): void {
    const previous = this.state;
    this.state = 'closed';
    clearTimeout(this.joinTimer);
    this.rooms.removeSocket(this);
    const seat = this.seat;
    if (previous === 'joined' && seat) {
      this.queue = this.queue
        .then(() => this.rooms.dropped(seat.appointmentId, seat.participantId, this))
        .catch((err: unknown) => this.logger.warn({ err: safeError(err), room: seat.roomId }, 'dropped consultation socket not recorded'));
    }
  }

  private async join(join: JoinMessage): Promise<void> {
    const requestOrigin = { requestId: this.origin.requestId, source: this.origin.source };
    let decision: JoinDecision;
    if ('guestToken' in join) {
      decision = await this.rooms.rights.forGuest(join.guestToken, requestOrigin, join.resume !== undefined);
    } else {
      if (!this.origin.session) {
        this.audit('anonymous', join.appointmentId, undefined, 'denied', { reason: 'no-session' });
        return this.refuse('unauthenticated', 'sign in first, or open the guest link you were given');
      }
      decision = await this.rooms.rights.forAccount(this.origin.session, join.appointmentId, requestOrigin, join.displayName);
    }
    if (this.state !== 'joining') return;
    if (!decision.ok) {
      const appointmentId = 'appointmentId' in join ? join.appointmentId : undefined;
      this.audit(this.origin.session?.account.fhirRef ?? 'guest', appointmentId, undefined, 'denied', { reason: decision.reason });
      this.logger.info({ appointment: appointmentId, reason: decision.reason }, 'consultation join refused');
      return this.refuse(decision.code, decision.message);
    }
    const right = decision.right;
    const iceServers = (participantId: string) => iceServersFor(this.rooms.config, participantId);

    const appointmentId = right.appointmentId;

    // Back after a dropped socket (or a node that went away): the same place, no new admission.
    if (join.resume) {
      const resume = join.resume;
      const resumed = await this.rooms.update(appointmentId, ({ room }) => {
        const participant = room?.resumable(resume.participantId, resume.secret, right.principal);
        if (!room || !participant || this.state !== 'joining') return undefined;
        this.rooms.cancelGrace(participant);
        this.attach(room, participant);
        room.resume(participant, this, join, iceServers(participant.id));
        return { room: room.id, participant: participant.id, state: participant.state };
      });
      if (resumed) {
        this.logger.info(resumed, 'consultation resumed');
        return;
      }
      if (this.state !== 'joining') return;
      // The place is gone (grace over, or the room ended): a guest's link is spent, others join anew.
      if (right.guestLinkId) return this.refuseJoin(right.principal, appointmentId, right.patient, 'not-allowed', 'your place in this consultation has expired; ask the clinician for a new link', 'resume-expired');
    }

    const enter = (scope: RoomScope): ConsultRoom => {
      const room = scope.open(right.patient);
      const participant = room.enter({ kind: right.kind, host: right.host, displayName: right.displayName, principal: right.principal, e2ee: join.e2ee, identityKey: join.identityKey, channel: this }, iceServers);
      this.attach(room, participant);
      return room;
    };

    const first = await this.rooms.update(appointmentId, (scope): 'gone' | 'full' | 'needs-link' | ConsultRoom => {
      if (this.state !== 'joining') return 'gone';
      // Another socket of the same account (a second tab, a reload that lost the resume secret) gives way.
      const previous = scope.room?.byPrincipal(right.principal);
      if (previous) {
        previous.channel?.send({ type: 'closed', reason: 'replaced' });
        previous.channel?.close(CLOSE_NORMAL, 'replaced');
        scope.room!.depart(previous, 'left');
      }
      const room = scope.room && !scope.room.ended ? scope.room : undefined;
      if (room?.hasSeatFor(right.host) === false) return 'full';
      if (right.guestLinkId) return 'needs-link';
      return enter(scope);
    });
    if (first === 'gone') return;
    if (first === 'full') return this.roomFull(right.principal, appointmentId, right.patient);
    let room: ConsultRoom | 'gone' | 'full' | undefined = first === 'needs-link' ? undefined : first;
    if (first === 'needs-link' && right.guestLinkId) {
      // Consumed only by a join that gets in; a race with another node or socket is decided by the database.
      if (!(await this.rooms.store.consumeGuestLink(right.guestLinkId))) return this.refuseJoin(right.principal, appointmentId, right.patient, 'not-allowed', 'this guest link is not valid: it may have been used already or have expired; ask the clinician for a new one', 'used-guest-link');
      room = await this.rooms
        .update(appointmentId, (scope) => {
          if (this.state !== 'joining') return 'gone' as const;
          if (scope.room?.hasSeatFor(false) === false) return 'full' as const;
          return enter(scope);
        })
        .catch(async (err: unknown) => {
          await this.rooms.store.releaseGuestLink(right.guestLinkId!);
          throw err;
        });
      if (room === 'gone' || room === 'full') {
        await this.rooms.store.releaseGuestLink(right.guestLinkId);
        if (room === 'gone') return;
        return this.roomFull(right.principal, appointmentId, right.patient);
      }
    }
    const seat = this.seat!;
    this.audit(right.principal, appointmentId, right.patient, 'success', { room: seat.roomId, participant: seat.participantId, kind: right.kind, host: right.host, e2ee: join.e2ee });
    this.logger.info({ room: seat.roomId, appointment: appointmentId, participant: seat.participantId, kind: right.kind, e2ee: join.e2ee }, 'consultation joined');
  }

  private attach(room: ConsultRoom, participant: Participant): void {
    this.seat = { appointmentId: room.appointmentId, participantId: participant.id, roomId: room.id };
    this.state = 'joined';
    clearTimeout(this.joinTimer);
  }

  private roomFull(principal: string, appointmentId: string, patient: string | undefined): void {
    this.audit(principal, appointmentId, patient, 'denied', { reason: 'room-full' });
    this.error('room-full', `this consultation already has its ${MAX_PARTICIPANTS} participants; nobody else can join`);
    this.send({ type: 'closed', reason: 'room-full' });
    this.close(CLOSE_POLICY, 'room-full');
  }

  private refuseJoin(principal: string, appointmentId: string, patient: string | undefined, code: SignalingErrorCode, message: string, reason: string): void {
    this.audit(principal, appointmentId, patient, 'denied', { reason });
    this.refuse(code, message);
  }

  private audit(actor: string, appointmentId: string | undefined, patient: string | undefined, outcome: 'success' | 'denied', detail: Record<string, unknown>): void {
    void this.rooms.recordAudit({ actor, action: 'consult-join', appointmentId, patient, outcome, source: this.origin.source, requestId: this.origin.requestId, detail });
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}
