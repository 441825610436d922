import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit/audit-log.js';
import type { Config } from '../config/config.js';
import type { Database } from '../db/schema.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import { CLOSE_RESTART, ConsultRoom, type ConsultAuditAction, type Participant, type PeerChannel, type RoomHooks } from './consult-room.js';
import { ConsultStore, utcDay } from './consult-store.js';
import { JoinRights } from './join-rights.js';
import type { MediaPathReport } from './signaling-protocol.js';

/** The first message must be `join`, this soon after the socket opens. */
export const JOIN_TIMEOUT_MS = 10_000;
/** How long a dropped participant keeps its place for a `join` with `resume`. */
export const RESUME_GRACE_MS = 20_000;
/** Traffic totals go to the database this often (and when the node stops). */
const TRAFFIC_FLUSH_MS = 10_000;
/** A participant's rate counts as "now" this long after its last report. */
const TRAFFIC_FRESH_MS = 30_000;
/** No browser sends more than this (1 Gbit/s), whatever its report claims. */
const MAX_BYTES_PER_MS = 125_000;

/** A day's bytes this node has yet to add to the database: all media, and the part over TURN relays. */
interface DayTraffic {
  sent: number;
  received: number;
  relayedSent: number;
  relayedReceived: number;
}
const emptyDay = (): DayTraffic => ({ sent: 0, received: 0, relayedSent: 0, relayedReceived: 0 });

/** What an operation on a room gets: the room in use, or a way to open one. */
export interface RoomScope {
  room: ConsultRoom | undefined;
  /** The appointment's room, created fresh (new id, nobody admitted) when none is in use. */
  open(patient: string | undefined): ConsultRoom;
}

/**
 * Where rooms are kept, by appointment: in this node's memory (one node, or a farm whose
 * Redis is down) or in Redis (farm). Every change to a room runs through update(), alone
 * for that room on every node; relaying (signals, keys, mute) only reads.
 */
export interface RoomStore {
  update<T>(appointmentId: string, fn: (scope: RoomScope) => T): Promise<T>;
  read<T>(appointmentId: string, fn: (room: ConsultRoom | undefined) => T): Promise<T>;
  /** Every room in use (for the status figures). */
  rooms(): Promise<ConsultRoom[]>;
}

export class InMemoryRoomStore implements RoomStore {
  private readonly map = new Map<string, ConsultRoom>();
  constructor(private readonly create: (appointmentId: string, patient: string | undefined) => ConsultRoom) {}

  get(appointmentId: string): ConsultRoom | undefined {
    return this.map.get(appointmentId);
  }
  delete(room: ConsultRoom): void {
    if (this.map.get(room.appointmentId) === room) this.map.delete(room.appointmentId);
  }
  all(): IterableIterator<ConsultRoom> {
    return this.map.values();
  }
  async update<T>(appointmentId: string, fn: (scope: RoomScope) => T): Promise<T> {
    const room = this.map.get(appointmentId);
    return fn({
      room: room && !room.ended ? room : undefined,
      open: (patient) => {
        const existing = this.map.get(appointmentId);
        if (existing && !existing.ended) return existing;
        const fresh = this.create(appointmentId, patient);
        this.map.set(appointmentId, fresh);
        return fresh;
      },
    });
  }
  async read<T>(appointmentId: string, fn: (room: ConsultRoom | undefined) => T): Promise<T> {
    return fn(this.map.get(appointmentId));
  }
  async rooms(): Promise<ConsultRoom[]> {
    return [...this.map.values()];
  }
}

/** The farm's side of the rooms (src/consult/shared-room-store.ts); ConsultRooms only needs this much of it. */
export interface SharedRoomStore extends RoomStore {
  /** False while Redis is down: new rooms then open in this node's memory. */
  available(): boolean;
  /** Leaves the farm: this node's liveness key goes, so the sweep starts the grace of its participants at once. */
  close(): Promise<void>;
}

export interface ConsultStatus {
  /** Every node's: in a farm, the rooms in Redis (each node sees the same ones) and this node's in memory. */
  rooms: number;
  participants: number;
  waiting: number;
  /**
   * This node's share, which adds up across the farm's nodes: participants whose socket this node
   * holds (on one node, or in rooms in its memory, every one), and the rooms they are in. A place
   * waiting for a resume is on no node.
   */
  onThisNode: { rooms: number; participants: number };
  sockets: number;
  /** Media leaving the browsers of this node's consultations, by their latest reports. */
  mbitPerSecondNow: number;
  /** Sent by all participants today (UTC), every node included. */
  gbitToday: number;
  badMessages: number;
  /** TURN relay usage, from the browsers' reports of their media path (see RelayUsage). */
  relay: RelayUsage;
}

/**
 * How much of the media goes through TURN, as the browsers report it. "Now" figures count the
 * participants whose reports this node received in the last TRAFFIC_FRESH_MS (sum the nodes of a
 * farm); "today" is every node's, from the database.
 */
export interface RelayUsage {
  /** Participants whose browser reported at least one connected peer link (their path is known). */
  participantsWithMedia: number;
  /** Of those, the participants with at least one link over a relay. */
  participantsRelayed: number;
  /** Media sent over relayed links now. */
  mbitPerSecondNow: number;
  /** Sent over relayed links today (UTC), every node included. */
  gbitToday: number;
  /** Bytes over relayed links this node accepted since it started (for the /metrics counter). */
  bytesSinceStart: { sent: number; received: number };
}

/**
 * The consultations of one node: its rooms, the places kept for dropped sockets, the traffic
 * figures, and the counter of malformed messages. Created by startNode; the signaling route
 * and the consult HTTP routes use it; stop() closes every room.
 */
export class ConsultRooms {
  readonly store: ConsultStore;
  readonly rights: JoinRights;
  /** Malformed, unknown or oversized signaling messages since the node started (for /metrics). */
  badMessages = 0;
  /** Whether the shield also reads signaling messages (TELESALUD_SHIELD). */
  get shield(): 'on' | 'off' {
    return this.config.shield;
  }
  draining = false;
  /** Tunable for tests; production uses the constants. */
  resumeGraceMs = RESUME_GRACE_MS;
  joinTimeoutMs = JOIN_TIMEOUT_MS;
  /** Rooms in this node's memory: all of them on one node; in a farm, those opened while Redis was down. */
  private readonly memory: InMemoryRoomStore;
  private shared: SharedRoomStore | undefined;
  private readonly sockets = new Map<string, PeerChannel>();
  private readonly graceTimers = new Map<Participant, NodeJS.Timeout>();
  private readonly pendingTraffic = new Map<string, DayTraffic>();
  /** Relayed bytes accepted since the node started, by direction: a counter for /metrics. */
  private readonly relayedSinceStart = { sent: 0, received: 0 };
  private readonly flushTimer: NodeJS.Timeout;
  private readonly hooks: RoomHooks;

  constructor(
    db: Kysely<Database>,
    private readonly audit: AuditLog,
    private readonly logger: Logger,
    readonly config: Pick<Config, 'turn' | 'stunUrls' | 'publicUrl' | 'shield'>,
  ) {
    this.store = new ConsultStore(db);
    this.rights = new JoinRights(db, audit, this.store);
    this.memory = new InMemoryRoomStore((appointmentId, patient) => {
      const room = new ConsultRoom(appointmentId, patient, this.hooks);
      this.logger.info({ room: room.id, appointment: appointmentId }, 'consultation room opened');
      return room;
    });
    this.flushTimer = setInterval(() => void this.flushTraffic(), TRAFFIC_FLUSH_MS);
    this.flushTimer.unref();
    this.hooks = {
      audit: (room, action, actor, target) => this.recordHostAction(room, action, actor, target),
      closed: (room) => {
        if (!room.shared) this.memory.delete(room);
        this.logger.info({ room: room.id, appointment: room.appointmentId, seconds: Math.round((Date.now() - room.createdAt) / 1000) }, 'consultation room closed');
      },
      departed: (_room, participant) => this.cancelGrace(participant),
    };
  }

  /** Farm mode: rooms live in Redis (see startNode); rooms already in memory stay there until they end. */
  useSharedStore(shared: SharedRoomStore): void {
    this.shared = shared;
  }

  /** The hooks rooms report to; the shared store builds its copies of rooms with them. */
  get roomHooks(): RoomHooks {
    return this.hooks;
  }

  /** The room this node holds in memory for the appointment (one node: every room). */
  room(appointmentId: string): ConsultRoom | undefined {
    return this.memory.get(appointmentId);
  }

  /**
   * Where the appointment's room is: in memory when this node already has it there (one node,
   * or a room opened while Redis was down), else in Redis when the farm's Redis is up.
   */
  private storeFor(appointmentId: string): RoomStore {
    const local = this.memory.get(appointmentId);
    if (local && !local.ended) return this.memory;
    return this.shared?.available() ? this.shared : this.memory;
  }

  /** Runs a change of the appointment's room (join, admit, leave…), alone for that room across the farm. */
  update<T>(appointmentId: string, fn: (scope: RoomScope) => T): Promise<T> {
    return this.storeFor(appointmentId).update(appointmentId, fn);
  }

  /** Runs a relay (signal, key, mute, stats) on the appointment's room as it is. */
  read<T>(appointmentId: string, fn: (room: ConsultRoom | undefined) => T): Promise<T> {
    return this.storeFor(appointmentId).read(appointmentId, fn);
  }

  addSocket(channel: PeerChannel): void {
    this.sockets.set(channel.id, channel);
  }

  removeSocket(channel: PeerChannel): void {
    if (this.sockets.get(channel.id) === channel) this.sockets.delete(channel.id);
  }

  /** This node's socket of that id, for a message the bus brought from another node. */
  socket(id: string): PeerChannel | undefined {
    return this.sockets.get(id);
  }

  /**
   * The socket of a participant dropped: keep its place for a resume, then tell the others it
   * is gone. In memory this node times the grace; in Redis the record says since when, and the
   * sweep (on whichever node runs it) ends the place.
   */
  async dropped(appointmentId: string, participantId: string, channel: PeerChannel): Promise<void> {
    if (this.draining) return;
    await this.update(appointmentId, ({ room }) => {
      const participant = room?.participants.get(participantId);
      if (!room || !participant || participant.channel?.id !== channel.id) return;
      room.disconnected(participant, channel);
      if (!room.shared) this.startGrace(room, participant);
    });
  }

  private startGrace(room: ConsultRoom, participant: Participant): void {
    this.cancelGrace(participant);
    const timer = setTimeout(() => {
      this.graceTimers.delete(participant);
      if (participant.channel === undefined && room.participants.get(participant.id) === participant) room.depart(participant, 'disconnected');
    }, this.resumeGraceMs);
    timer.unref();
    this.graceTimers.set(participant, timer);
  }

  cancelGrace(participant: Participant): void {
    const timer = this.graceTimers.get(participant);
    if (timer) clearTimeout(timer);
    this.graceTimers.delete(participant);
  }

  /**
   * A participant's getStats report. The claimed interval is held to the time that really
   * passed and was not yet counted (a second's slack), and the bytes to 1 Gbit/s, so a client
   * can't inflate the totals, neither with one big claim nor with a burst of small ones.
   */
  reportTraffic(participant: Participant, report: { sentBytes: number; receivedBytes: number; intervalMs: number } & Partial<MediaPathReport>, now = Date.now()): void {
    if (report.intervalMs <= 0) return;
    // Time is credited once: `lastReportAt` is how far this participant's reports have been counted
    // (it starts at the join), so a burst of reports can't each claim the last second again.
    const uncounted = Math.max(0, now + 1000 - participant.traffic.lastReportAt);
    const interval = Math.min(report.intervalMs, uncounted);
    const creditedUntil = Math.max(participant.traffic.lastReportAt, now - 60_000) + interval;
    const scale = interval / report.intervalMs;
    const cap = interval * MAX_BYTES_PER_MS;
    const sent = Math.min(Math.round(report.sentBytes * scale), cap);
    const received = Math.min(Math.round(report.receivedBytes * scale), cap);
    const bps = (bytes: number) => (interval > 0 ? (bytes * 8000) / interval : 0);
    // The relayed part is held to the same clock and can never exceed the whole it is part of.
    const path = report.links !== undefined ? { links: report.links, relayedLinks: Math.min(report.relayedLinks ?? 0, report.links), relayedSent: Math.min(Math.round((report.relayedSentBytes ?? 0) * scale), sent), relayedReceived: Math.min(Math.round((report.relayedReceivedBytes ?? 0) * scale), received) } : undefined;
    participant.traffic = {
      sentBps: bps(sent),
      receivedBps: bps(received),
      at: now,
      lastReportAt: creditedUntil,
      ...(path ? { links: path.links, relayedLinks: path.relayedLinks, relayedSentBps: bps(path.relayedSent) } : {}),
    };
    const day = utcDay(now);
    const pending = this.pendingTraffic.get(day) ?? emptyDay();
    pending.sent += sent;
    pending.received += received;
    if (path) {
      pending.relayedSent += path.relayedSent;
      pending.relayedReceived += path.relayedReceived;
      this.relayedSinceStart.sent += path.relayedSent;
      this.relayedSinceStart.received += path.relayedReceived;
    }
    this.pendingTraffic.set(day, pending);
  }

  /** Bits per second the room's participants send now, by their fresh reports. */
  static roomBitsPerSecond(room: ConsultRoom, now = Date.now()): number {
    let bps = 0;
    for (const p of room.participants.values()) if (now - p.traffic.at < TRAFFIC_FRESH_MS) bps += p.traffic.sentBps;
    return bps;
  }

  /** Relay figures of the room's participants whose reports are fresh. */
  static roomRelayUsage(room: ConsultRoom, now = Date.now()): { withMedia: number; relayed: number; relayedBps: number } {
    const usage = { withMedia: 0, relayed: 0, relayedBps: 0 };
    for (const p of room.participants.values()) {
      if (now - p.traffic.at >= TRAFFIC_FRESH_MS || !p.traffic.links) continue;
      usage.withMedia++;
      if (p.traffic.relayedLinks) usage.relayed++;
      usage.relayedBps += p.traffic.relayedSentBps ?? 0;
    }
    return usage;
  }

  async flushTraffic(): Promise<void> {
    const entries = [...this.pendingTraffic.entries()];
    this.pendingTraffic.clear();
    for (const [day, totals] of entries) {
      if (Object.values(totals).every((n) => n === 0)) continue;
      try {
        await this.store.addTraffic(day, totals.sent, totals.received, { sent: totals.relayedSent, received: totals.relayedReceived });
      } catch (err) {
        // Kept for the next flush rather than lost.
        const pending = this.pendingTraffic.get(day) ?? emptyDay();
        this.pendingTraffic.set(day, { sent: pending.sent + totals.sent, received: pending.received + totals.received, relayedSent: pending.relayedSent + totals.relayedSent, relayedReceived: pending.relayedReceived + totals.relayedReceived });
        this.logger.warn({ err: safeError(err) }, 'consultation traffic not saved; will retry');
      }
    }
  }

  async status(now = Date.now()): Promise<ConsultStatus> {
    await this.flushTraffic();
    let rooms = 0;
    let participants = 0;
    let waiting = 0;
    const onThisNode = { rooms: 0, participants: 0 };
    let bps = 0;
    const relay = { withMedia: 0, relayed: 0, relayedBps: 0 };
    const all = [...this.memory.all()];
    if (this.shared?.available()) all.push(...(await this.shared.rooms().catch(() => [])));
    for (const room of all) {
      rooms++;
      participants += room.participants.size;
      waiting += room.waiting().length;
      let here = 0;
      for (const p of room.participants.values()) if (!room.shared || (p.channel !== undefined && this.sockets.has(p.channel.id))) here++;
      onThisNode.participants += here;
      if (here > 0) onThisNode.rooms++;
      bps += ConsultRooms.roomBitsPerSecond(room, now);
      const usage = ConsultRooms.roomRelayUsage(room, now);
      relay.withMedia += usage.withMedia;
      relay.relayed += usage.relayed;
      relay.relayedBps += usage.relayedBps;
    }
    const today = await this.store.trafficOn(utcDay(now));
    return {
      rooms,
      participants,
      waiting,
      onThisNode,
      sockets: this.sockets.size,
      mbitPerSecondNow: bps / 1e6,
      gbitToday: (today.sentBytes * 8) / 1e9,
      badMessages: this.badMessages,
      relay: { participantsWithMedia: relay.withMedia, participantsRelayed: relay.relayed, mbitPerSecondNow: relay.relayedBps / 1e6, gbitToday: (today.relayedSentBytes * 8) / 1e9, bytesSinceStart: { ...this.relayedSinceStart } },
    };
  }

  private recordHostAction(room: ConsultRoom, action: ConsultAuditAction, actor: Participant, target: Participant | undefined): void {
    this.logger.info({ room: room.id, appointment: room.appointmentId, action, participant: target?.id }, 'consultation host action');
    this.recordAudit({ actor: actor.principal, action, appointmentId: room.appointmentId, patient: room.patient, outcome: 'success', detail: { room: room.id, ...(target ? { participant: target.id, target: target.principal } : {}) } });
  }

  /** Consultation events go through the audit group commit; a failure is logged, never thrown into a room. */
  recordAudit(entry: { actor: string; action: ConsultAuditAction | 'consult-join' | 'consult-invite' | 'consult-guest-link' | 'shield-block'; appointmentId: string | undefined; patient?: string | undefined; outcome: 'success' | 'denied'; source?: string; requestId?: string; detail?: Record<string, unknown> }): Promise<void> {
    return this.audit
      .record({
        actor: entry.actor,
        action: entry.action,
        ...(entry.appointmentId ? { resourceType: 'Appointment', resourceId: entry.appointmentId } : {}),
        ...(entry.patient ? { patient: entry.patient } : {}),
        outcome: entry.outcome,
        ...(entry.source ? { source: entry.source } : {}),
        ...(entry.requestId ? { requestId: entry.requestId } : {}),
        ...(entry.detail ? { detail: entry.detail } : {}),
      })
      .catch((err: unknown) => this.logger.error({ err: safeError(err), action: entry.action }, 'consultation audit failed'));
  }

  /**
   * Shutdown, first step: every socket is told to reconnect (the load balancer picks another
   * node), then closed. Rooms in Redis carry on: their participants resume on other nodes.
   */
  drain(): void {
    this.draining = true;
    for (const channel of [...this.sockets.values()]) {
      channel.send({ type: 'reconnect' });
      channel.close(CLOSE_RESTART, 'node restarting');
    }
    this.sockets.clear();
  }

  /** Shutdown, last step (before the store closes): rooms and timers go, traffic is saved. */
  async close(): Promise<void> {
    if (!this.draining) this.drain();
    clearInterval(this.flushTimer);
    for (const timer of this.graceTimers.values()) clearTimeout(timer);
    this.graceTimers.clear();
    for (const room of [...this.memory.all()]) room.end(undefined);
    await this.shared?.close();
    await this.flushTraffic();
  }
}
