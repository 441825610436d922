import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { MAX_PARTICIPANTS, type ClientMessage, type IceServer, type ParticipantInfo, type ParticipantKind, type PeerLeftReason, type ServerMessage, type SignalingErrorCode } from './signaling-protocol.js';

/** 128 bits from the system's CSPRNG, base64url (22 characters): room and participant ids. */
export const newId128 = (): string => randomBytes(16).toString('base64url');

/** What is kept of a resume secret anywhere but in the welcome message: its SHA-256. */
export const resumeHashOf = (secret: string): string => createHash('sha256').update(secret).digest('base64url');

/** Where a participant's messages go: its socket on this node, or the bus to the node that holds it (farm). */
export interface PeerChannel {
  /** The socket's id, the same on every node: two channels with one id reach the same socket. */
  readonly id: string;
  send(message: ServerMessage): void;
  /** Closes the transport after what was sent; `code`/`reason` are the WebSocket close frame's. */
  close(code: number, reason: string): void;
}

export interface Participant {
  readonly id: string;
  readonly kind: ParticipantKind;
  readonly host: boolean;
  readonly displayName: string;
  /** The identity behind the join (`Practitioner/…`, `Patient/…`, `guest-link/…`): ids only. */
  readonly principal: string;
  /** Known on the node that seated or resumed the participant; elsewhere '' (only the hash travels). */
  resumeSecret: string;
  readonly resumeHash: string;
  e2ee: boolean;
  identityKey: string;
  state: 'waiting' | 'admitted';
  /** Undefined while the socket is gone and the place is kept for a resume. */
  channel: PeerChannel | undefined;
  /**
   * Latest traffic report: bits per second sent and received, and when it came; with the media
   * path when the browser reports it (links connected, how many over a TURN relay, bits per second sent over those).
   */
  traffic: { sentBps: number; receivedBps: number; at: number; lastReportAt: number; links?: number; relayedLinks?: number; relayedSentBps?: number };
}

export interface RoomError {
  code: SignalingErrorCode;
  message: string;
}

export type ConsultAuditAction = 'consult-admit' | 'consult-decline' | 'consult-remove' | 'consult-end';

/** What a room tells the node that holds it. */
export interface RoomHooks {
  /** A host action on a participant (or on the whole room for `consult-end`), for the audit trail. */
  audit(room: ConsultRoom, action: ConsultAuditAction, actor: Participant, target: Participant | undefined): void;
  /** The room is empty or ended: forget it and everything it held. */
  closed(room: ConsultRoom): void;
  /** A participant is gone for good (its grace timer and traffic figures go with it). */
  departed(room: ConsultRoom, participant: Participant): void;
}

/** WebSocket close codes: 1000 normal, 1008 policy (refused, abusive), 1012 service restart. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_POLICY = 1008;
export const CLOSE_RESTART = 1012;

const notHost: RoomError = { code: 'not-host', message: 'only the clinician hosting this consultation can do that' };
const noSuchPeer: RoomError = { code: 'not-found', message: 'no such participant in this consultation' };

/**
 * One consultation while it is in use: who is in the call, who waits, and the routing of
 * signaling between them. Everything here is in memory and dies with the room; a new room for
 * the same appointment starts from nothing (new id, new admissions).
 *
 * Rules that hold for every message: only the host admits, declines, removes, mutes or ends;
 * nobody is admitted for arriving first; signaling flows only between admitted participants.
 */
export class ConsultRoom {
  /** Internal key of this use of the appointment's consultation; never derived from the appointment. */
  readonly id: string;
  readonly createdAt: number;
  readonly participants = new Map<string, Participant>();
  ended = false;
  /** A copy of a room whose truth is in Redis (farm): what the rules change here is written back there. */
  shared = false;

  constructor(
    readonly appointmentId: string,
    /** `Patient/…` of the appointment, for audit entries. */
    readonly patient: string | undefined,
    private readonly hooks: RoomHooks,
    /** A room read back from shared state keeps its id and age. */
    restored?: { id: string; createdAt: number },
  ) {
    this.id = restored?.id ?? newId128();
    this.createdAt = restored?.createdAt ?? Date.now();
  }

  static info(p: Participant): ParticipantInfo {
    return { id: p.id, kind: p.kind, displayName: p.displayName, host: p.host, e2ee: p.e2ee, identityKey: p.identityKey };
  }

  admitted(): Participant[] {
    return [...this.participants.values()].filter((p) => p.state === 'admitted');
  }

  waiting(): Participant[] {
    return [...this.participants.values()].filter((p) => p.state === 'waiting');
  }

  /**
   * Whether one more participant fits. Waiting and disconnected participants hold their seat
   * too; while the host is away one seat stays free for the host, so a full lobby can't lock
   * the clinician out of their own consultation.
   */
  hasSeatFor(host: boolean): boolean {
    const hostPresent = [...this.participants.values()].some((p) => p.host);
    return this.participants.size < MAX_PARTICIPANTS - (host || hostPresent ? 0 : 1);
  }

  /** The participant that holds this resume secret, if any (constant-time compare of the hashes). */
  resumable(participantId: string, secret: string, principal: string): Participant | undefined {
    const p = this.participants.get(participantId);
    if (!p || p.principal !== principal) return undefined;
    const a = Buffer.from(p.resumeHash);
    const b = Buffer.from(resumeHashOf(secret));
    if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined;
    // Proven: this node may now hand it back in the welcome.
    p.resumeSecret = secret;
    return p;
  }

  /** The participant an account or guest link already has here (a second tab, a reload without the resume secret). */
  byPrincipal(principal: string): Participant | undefined {
    return [...this.participants.values()].find((p) => p.principal === principal);
  }

  /** Seats a new participant: the host and invited clinicians go straight in, everyone else waits. */
  enter(input: Omit<Participant, 'id' | 'resumeSecret' | 'resumeHash' | 'state' | 'traffic'>, iceServers: (participantId: string) => IceServer[]): Participant {
    const now = Date.now();
    const resumeSecret = randomBytes(24).toString('base64url');
    const participant: Participant = {
      ...input,
      id: newId128(),
      resumeSecret,
      resumeHash: resumeHashOf(resumeSecret),
      state: input.kind === 'clinician' ? 'admitted' : 'waiting',
      traffic: { sentBps: 0, receivedBps: 0, at: 0, lastReportAt: now },
    };
    this.participants.set(participant.id, participant);
    participant.channel?.send({ type: 'welcome', participant: ConsultRoom.info(participant), resumeSecret: participant.resumeSecret, state: participant.state, iceServers: iceServers(participant.id) });
    if (participant.state === 'admitted') this.announceAdmission(participant);
    if (participant.host) participant.channel?.send(this.lobby());
    else if (participant.state === 'waiting') this.sendLobby();
    return participant;
  }

  /**
   * A participant back on a new socket: the old one (if still open) hears `replaced`. Peers
   * hear of a new identity key as the participant leaving and joining, so they rekey.
   */
  resume(participant: Participant, channel: PeerChannel, join: { e2ee: boolean; identityKey: string }, iceServers: IceServer[]): void {
    const old = participant.channel;
    if (old && old.id !== channel.id) {
      old.send({ type: 'closed', reason: 'replaced' });
      old.close(CLOSE_NORMAL, 'replaced');
    }
    participant.channel = channel;
    const rekeyed = participant.identityKey !== join.identityKey || participant.e2ee !== join.e2ee;
    participant.identityKey = join.identityKey;
    participant.e2ee = join.e2ee;
    channel.send({ type: 'welcome', participant: ConsultRoom.info(participant), resumeSecret: participant.resumeSecret, state: participant.state, iceServers });
    if (participant.state === 'admitted') {
      channel.send({ type: 'admitted', peers: this.admitted().filter((p) => p !== participant).map(ConsultRoom.info) });
      if (rekeyed) {
        for (const peer of this.admitted()) {
          if (peer === participant) continue;
          peer.channel?.send({ type: 'peer-left', participantId: participant.id, reason: 'disconnected' });
          peer.channel?.send({ type: 'peer-joined', peer: ConsultRoom.info(participant) });
        }
      }
    } else if (rekeyed) {
      this.sendLobby();
    }
    if (participant.host) channel.send(this.lobby());
  }

  /** The socket dropped: keep the place (the node times the grace period). */
  disconnected(participant: Participant, channel: PeerChannel): void {
    if (participant.channel?.id === channel.id) participant.channel = undefined;
  }

  /** Handles one message of an entered participant. Returns an error to answer it with, if any. */
  handle(from: Participant, message: Exclude<ClientMessage, { type: 'join' }>): RoomError | undefined {
    switch (message.type) {
      case 'admit':
      case 'decline':
      case 'remove':
      case 'mute': {
        if (!from.host) return notHost;
        const target = this.participants.get(message.participantId);
        if (!target || target === from) return noSuchPeer;
        if (message.type === 'admit') return this.admit(from, target);
        if (message.type === 'decline') return this.decline(from, target);
        if (message.type === 'remove') return this.remove(from, target);
        if (target.state !== 'admitted') return noSuchPeer;
        target.channel?.send({ type: 'mute-requested' });
        return undefined;
      }
      case 'end':
        if (!from.host) return notHost;
        this.hooks.audit(this, 'consult-end', from, undefined);
        this.end('ended');
        return undefined;
      case 'leave':
        this.depart(from, 'left');
        from.channel?.close(CLOSE_NORMAL, 'left');
        return undefined;
      case 'signal':
      case 'e2ee-key': {
        if (from.state !== 'admitted') return { code: 'not-allowed', message: 'wait until the clinician admits you' };
        const to = this.participants.get(message.to);
        if (!to || to === from || to.state !== 'admitted') return noSuchPeer;
        // A peer whose socket is down misses this; on resume it restarts ICE and rekeys anyway.
        if (message.type === 'signal') {
          const { to: _to, type: _type, ...body } = message;
          to.channel?.send({ type: 'signal', from: from.id, ...body });
        } else {
          to.channel?.send({ type: 'e2ee-key', from: from.id, keyId: message.keyId, wrapped: message.wrapped, iv: message.iv });
        }
        return undefined;
      }
      case 'stats':
        // The node aggregates traffic (it knows the clock); nothing to route.
        return undefined;
    }
  }

  private admit(host: Participant, target: Participant): RoomError | undefined {
    if (target.state !== 'waiting') return { code: 'not-found', message: 'this participant is not waiting' };
    target.state = 'admitted';
    this.hooks.audit(this, 'consult-admit', host, target);
    this.announceAdmission(target);
    this.sendLobby();
    return undefined;
  }

  private decline(host: Participant, target: Participant): RoomError | undefined {
    if (target.state !== 'waiting') return { code: 'not-found', message: 'this participant is not waiting' };
    this.hooks.audit(this, 'consult-decline', host, target);
    target.channel?.send({ type: 'closed', reason: 'declined' });
    target.channel?.close(CLOSE_NORMAL, 'declined');
    this.depart(target, 'removed');
    return undefined;
  }

  private remove(host: Participant, target: Participant): RoomError | undefined {
    this.hooks.audit(this, 'consult-remove', host, target);
    target.channel?.send({ type: 'closed', reason: 'removed' });
    target.channel?.close(CLOSE_NORMAL, 'removed');
    this.depart(target, 'removed');
    return undefined;
  }

  /** The newcomer learns who is in the call; everyone in the call learns of the newcomer. */
  private announceAdmission(newcomer: Participant): void {
    const others = this.admitted().filter((p) => p !== newcomer);
    newcomer.channel?.send({ type: 'admitted', peers: others.map(ConsultRoom.info) });
    for (const peer of others) peer.channel?.send({ type: 'peer-joined', peer: ConsultRoom.info(newcomer) });
  }

  lobby(): ServerMessage {
    return { type: 'lobby', waiting: this.waiting().map(ConsultRoom.info) };
  }

  private sendLobby(): void {
    const lobby = this.lobby();
    for (const p of this.participants.values()) if (p.host) p.channel?.send(lobby);
  }

  /** Someone is gone for good: peers hear it, the host's lobby updates, an empty room closes. */
  depart(participant: Participant, reason: PeerLeftReason): void {
    if (!this.participants.delete(participant.id)) return;
    this.hooks.departed(this, participant);
    if (participant.state === 'admitted') {
      for (const peer of this.admitted()) peer.channel?.send({ type: 'peer-left', participantId: participant.id, reason });
    } else {
      this.sendLobby();
    }
    if (this.participants.size === 0) this.end(undefined);
  }

  /** Closes the room: everyone hears why (unless it just emptied), and the node forgets it. */
  end(reason: 'ended' | undefined): void {
    if (this.ended) return;
    this.ended = true;
    for (const p of [...this.participants.values()]) {
      if (reason) p.channel?.send({ type: 'closed', reason });
      p.channel?.close(CLOSE_NORMAL, reason ?? 'closed');
      this.hooks.departed(this, p);
    }
    this.participants.clear();
    this.hooks.closed(this);
  }
}
