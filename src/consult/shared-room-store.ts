import { randomBytes } from 'node:crypto';
import type { RedisBus } from '../cluster/redis-bus.js';
import type { Logger } from '../logging/logger.js';
import { safeError } from '../logging/safe-error.js';
import { ConsultRoom, type Participant, type PeerChannel, type RoomHooks } from './consult-room.js';
import type { RoomScope, SharedRoomStore } from './consult-rooms.js';
import type { ServerMessage } from './signaling-protocol.js';

/** A room nobody touches for this long is gone from Redis (every node dead, or Redis kept it after a crash). */
const ROOM_TTL_MS = 120_000;
/** A node is alive while its key is: refreshed every NODE_HEARTBEAT_MS, gone NODE_TTL_MS after the last. */
export const NODE_TTL_MS = 10_000;
const NODE_HEARTBEAT_MS = 3_000;
/** How often one node of the farm looks for places to end (dead nodes, grace over). */
const SWEEP_MS = 1_000;
/** A room operation holds the room's lock at most this long (a node that dies holding it frees it by then). */
const LOCK_TTL_MS = 5_000;
const LOCK_WAIT_MS = 3_000;
/** After Redis comes back, how many times (one node TTL apart) a node checks what the farm says of its sockets. */
const RECONCILE_ROUNDS = 3;

/** What Redis holds of a participant: no socket, no secret (its hash only), the node and socket that reach it. */
interface ParticipantRecord {
  id: string;
  kind: Participant['kind'];
  host: boolean;
  displayName: string;
  principal: string;
  resumeHash: string;
  e2ee: boolean;
  identityKey: string;
  state: Participant['state'];
  /** The node and socket of the participant now; absent while its place waits for a resume. */
  node?: string;
  conn?: string;
  /** Since when the place waits (ms since epoch). */
  disconnectedAt?: number;
}

interface RoomRecord {
  id: string;
  createdAt: number;
  /** One more at every change: after a Redis restart the freshest copy any node saw wins. */
  version: number;
  patient?: string;
  participants: ParticipantRecord[];
}

/** What one node sends another through the bus: a message for one of its sockets, or an order to close it. */
type Envelope = { conn: string; message: ServerMessage } | { conn: string; close: { code: number; reason: string } };

/** A participant whose socket is on some node (maybe this one), reached through that node's bus channel. */
class BusChannel implements PeerChannel {
  constructor(
    readonly id: string,
    readonly node: string,
    private readonly post: (node: string, envelope: Envelope) => void,
  ) {}
  send(message: ServerMessage): void {
    this.post(this.node, { conn: this.id, message });
  }
  close(code: number, reason: string): void {
    this.post(this.node, { conn: this.id, close: { code, reason } });
  }
}

const LOCK_RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * Consultation rooms of a farm, in Redis: each room is one JSON value (participants, host,
 * admissions, resume-secret hashes, which node and socket reach each participant), changed
 * only under the room's lock, with a TTL refreshed while anyone is in it. An operation reads
 * the room, runs the same rules as one node (ConsultRoom), writes the room back and then
 * publishes the messages it produced to the nodes that hold the recipients' sockets (channel
 * per node) — over the same Redis connection, so a message never overtakes the state it
 * announces.
 *
 * A node's liveness is a key with a TTL. One node at a time sweeps: participants of a node
 * whose key expired lose their socket (their place waits), and places that waited longer than
 * the resume grace end (`peer-left` to the others). When Redis comes back empty after a
 * restart, every node writes back the participants whose sockets it holds.
 */
export class RedisRoomStore implements SharedRoomStore {
  private readonly redis: RedisBus['redis'];
  private readonly key: (name: string) => string;
  /** Per room, this node's operations one after another (the Redis lock orders nodes among themselves). */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** The latest copy this node saw of each shared room where it holds a socket: Redis is rebuilt from these. */
  private readonly known = new Map<string, RoomRecord>();
  /** Traffic figures stay on the node that received the reports. */
  private readonly traffic = new Map<string, Participant['traffic']>();
  private readonly timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => Promise<void>) | undefined;
  private stopListening: (() => void) | undefined;
  private closed = false;
  /** When this node's Redis last came (back): the sweep waits a node TTL, so every node has had time to say it lives. */
  private upSince = 0;

  constructor(
    private readonly bus: RedisBus,
    readonly nodeId: string,
    private readonly hooks: RoomHooks,
    private readonly options: { graceMs: () => number; socket: (id: string) => PeerChannel | undefined; logger: Logger },
  ) {
    this.redis = bus.redis;
    this.key = (name) => bus.prefix + name;
  }

  async start(): Promise<void> {
    this.unsubscribe = await this.bus.subscribe(`consult:node:${this.nodeId}`, (m) => this.deliver(m));
    this.stopListening = this.bus.onChange((up) => {
      if (!up) return;
      this.upSince = Date.now();
      void this.heartbeat()
        .catch(() => undefined)
        .then(() => this.rebuild())
        .catch((err: unknown) => this.options.logger.warn({ err: safeError(err) }, 'consultation rooms not rebuilt in redis'));
      // Once every node has had time to write back its copies, put right what they said of this node's
      // sockets; again twice, for a node whose connection came back late and wrote back after that.
      for (let round = 1; round <= RECONCILE_ROUNDS; round++) {
        const timer = setTimeout(() => {
          if (this.available()) this.reconcile().catch((err: unknown) => this.options.logger.warn({ err: safeError(err) }, 'consultation places not reconciled'));
        }, round * NODE_TTL_MS);
        timer.unref();
        this.timers.push(timer);
      }
    });
    if (this.available()) await this.heartbeat().catch(() => undefined);
    const every = (ms: number, fn: () => Promise<void>) => {
      const timer = setInterval(() => {
        if (this.available()) fn().catch((err: unknown) => this.options.logger.warn({ err: safeError(err) }, 'consultation presence upkeep failed'));
      }, ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(NODE_HEARTBEAT_MS, () => this.heartbeat());
    every(SWEEP_MS, () => this.sweep());
  }

  available(): boolean {
    return !this.closed && this.bus.connected();
  }

  /** Leaves the farm: this node's key goes, so the sweep starts the grace of its participants at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.stopListening?.();
    await this.unsubscribe?.().catch(() => undefined);
    if (this.bus.connected()) await this.redis.del(this.key(`consult:node:${this.nodeId}`)).catch(() => undefined);
  }

  update<T>(appointmentId: string, fn: (scope: RoomScope) => T): Promise<T> {
    return this.serial(appointmentId, () => this.locked(appointmentId, () => this.change(appointmentId, fn)));
  }

  async read<T>(appointmentId: string, fn: (room: ConsultRoom | undefined) => T): Promise<T> {
    const record = await this.load(appointmentId);
    const outbox: [string, Envelope][] = [];
    const room = record ? this.hydrate(appointmentId, record, outbox) : undefined;
    if (record) this.remember(appointmentId, record);
    const result = fn(room);
    if (room) this.keepTraffic(room);
    await this.flush([], outbox);
    return result;
  }

  async rooms(): Promise<ConsultRoom[]> {
    const ids = await this.redis.smembers(this.key('consult:rooms'));
    const rooms: ConsultRoom[] = [];
    for (const id of ids) {
      const record = await this.load(id);
      if (record) rooms.push(this.hydrate(id, record, []));
    }
    return rooms;
  }

  // ── operations ───────────────────────────────────────────────────────────────

  private serial<T>(appointmentId: string, op: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(appointmentId) ?? Promise.resolve();
    const next = previous.then(op, op);
    const tail = next.catch(() => undefined);
    this.queues.set(appointmentId, tail);
    void tail.then(() => {
      if (this.queues.get(appointmentId) === tail) this.queues.delete(appointmentId);
    });
    return next;
  }

  private async locked<T>(appointmentId: string, op: () => Promise<T>): Promise<T> {
    const lock = this.key(`consult:lock:${appointmentId}`);
    const token = randomBytes(12).toString('base64url');
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
      if ((await this.redis.set(lock, token, 'PX', LOCK_TTL_MS, 'NX')) === 'OK') break;
      if (Date.now() > deadline) throw new Error('consultation room is busy (lock not acquired)');
      await new Promise((r) => setTimeout(r, delay));
    }
    try {
      return await op();
    } finally {
      await this.redis.eval(LOCK_RELEASE, 1, lock, token).catch(() => undefined);
    }
  }

  private async change<T>(appointmentId: string, fn: (scope: RoomScope) => T): Promise<T> {
    const record = await this.load(appointmentId);
    const outbox: [string, Envelope][] = [];
    let room = record ? this.hydrate(appointmentId, record, outbox) : undefined;
    const before = new Map((record?.participants ?? []).map((p) => [p.id, p]));
    const result = fn({
      room,
      open: (patient) => {
        if (room && !room.ended) return room;
        room = new ConsultRoom(appointmentId, patient, this.hooks);
        room.shared = true;
        this.options.logger.info({ room: room.id, appointment: appointmentId, node: this.nodeId }, 'consultation room opened');
        return room;
      },
    });
    const writes: (string | number)[][] = [];
    if (room) {
      const roomKey = this.key(`consult:room:${appointmentId}`);
      this.keepTraffic(room);
      if (room.ended || room.participants.size === 0) {
        writes.push(['del', roomKey], ['srem', this.key('consult:rooms'), appointmentId]);
        this.known.delete(appointmentId);
      } else {
        const next = this.record(room, before, record?.id === room.id ? record.version + 1 : 1);
        writes.push(['set', roomKey, JSON.stringify(next), 'PX', ROOM_TTL_MS], ['sadd', this.key('consult:rooms'), appointmentId]);
        this.remember(appointmentId, next);
      }
    }
    // Written before the messages that announce it go out, in one pipeline on one connection.
    await this.flush(writes, outbox);
    return result;
  }

  private async load(appointmentId: string): Promise<RoomRecord | undefined> {
    const raw = await this.redis.get(this.key(`consult:room:${appointmentId}`));
    return raw ? (JSON.parse(raw) as RoomRecord) : undefined;
  }

  /** The rules' view of a stored room: every participant reached through the bus (even those on this node, to keep one order). */
  private hydrate(appointmentId: string, record: RoomRecord, outbox: [string, Envelope][]): ConsultRoom {
    const room = new ConsultRoom(appointmentId, record.patient, this.hooks, { id: record.id, createdAt: record.createdAt });
    room.shared = true;
    const post = (node: string, envelope: Envelope) => outbox.push([node, envelope]);
    for (const p of record.participants) {
      room.participants.set(p.id, {
        id: p.id,
        kind: p.kind,
        host: p.host,
        displayName: p.displayName,
        principal: p.principal,
        resumeSecret: '',
        resumeHash: p.resumeHash,
        e2ee: p.e2ee,
        identityKey: p.identityKey,
        state: p.state,
        channel: p.node && p.conn ? new BusChannel(p.conn, p.node, post) : undefined,
        traffic: this.traffic.get(p.id) ?? { sentBps: 0, receivedBps: 0, at: 0, lastReportAt: Date.now() },
      });
    }
    return room;
  }

  private record(room: ConsultRoom, before: Map<string, ParticipantRecord>, version: number): RoomRecord {
    const now = Date.now();
    return {
      id: room.id,
      createdAt: room.createdAt,
      version,
      ...(room.patient ? { patient: room.patient } : {}),
      participants: [...room.participants.values()].map((p): ParticipantRecord => {
        const base = { id: p.id, kind: p.kind, host: p.host, displayName: p.displayName, principal: p.principal, resumeHash: p.resumeHash, e2ee: p.e2ee, identityKey: p.identityKey, state: p.state };
        if (p.channel) return { ...base, node: p.channel instanceof BusChannel ? p.channel.node : this.nodeId, conn: p.channel.id };
        return { ...base, disconnectedAt: before.get(p.id)?.disconnectedAt ?? now };
      }),
    };
  }

  /** What this node must be able to write back after a Redis restart: rooms where it holds a socket, freshest copy. */
  private remember(appointmentId: string, room: RoomRecord): void {
    const mine = room.participants.some((p) => p.node === this.nodeId && p.conn && this.options.socket(p.conn));
    const seen = this.known.get(appointmentId);
    if (!mine) {
      if (seen?.id === room.id) this.known.delete(appointmentId);
      return;
    }
    if (!seen || seen.id !== room.id || seen.version <= room.version) this.known.set(appointmentId, room);
  }

  private keepTraffic(room: ConsultRoom): void {
    for (const p of room.participants.values()) if (p.traffic.at > 0 || this.traffic.has(p.id)) this.traffic.set(p.id, p.traffic);
    if (room.ended) for (const id of room.participants.keys()) this.traffic.delete(id);
  }

  private async flush(writes: (string | number)[][], outbox: [string, Envelope][]): Promise<void> {
    if (writes.length === 0 && outbox.length === 0) return;
    const pipeline = this.redis.pipeline();
    for (const [command, ...args] of writes) pipeline.call(command as string, ...args);
    for (const [node, envelope] of outbox) pipeline.publish(this.key(`consult:node:${node}`), JSON.stringify(envelope));
    const results = await pipeline.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** A message from some node for one of this node's sockets. */
  private deliver(raw: unknown): void {
    const envelope = raw as Partial<{ conn: unknown; message: ServerMessage; close: { code: number; reason: string } }>;
    if (typeof envelope?.conn !== 'string') return;
    const socket = this.options.socket(envelope.conn);
    if (!socket) return;
    if (envelope.message) socket.send(envelope.message);
    if (envelope.close && typeof envelope.close.code === 'number') socket.close(envelope.close.code, String(envelope.close.reason));
  }

  // ── upkeep ───────────────────────────────────────────────────────────────────

  private async heartbeat(): Promise<void> {
    await this.redis.set(this.key(`consult:node:${this.nodeId}`), '1', 'PX', NODE_TTL_MS);
  }

  /**
   * One node per tick: places of dead nodes start waiting, waits past the grace end, rooms in
   * use have their TTL refreshed, and the index forgets rooms that are gone.
   */
  private async sweep(): Promise<void> {
    if (Date.now() - this.upSince < NODE_TTL_MS) return;
    if ((await this.redis.set(this.key('consult:sweep'), this.nodeId, 'PX', SWEEP_MS - 100, 'NX')) !== 'OK') return;
    const ids = await this.redis.smembers(this.key('consult:rooms'));
    const now = Date.now();
    const grace = this.options.graceMs();
    const liveness = new Map<string, boolean>();
    for (const appointmentId of ids) {
      const record = await this.load(appointmentId);
      if (!record) {
        await this.redis.srem(this.key('consult:rooms'), appointmentId);
        continue;
      }
      for (const node of new Set(record.participants.map((p) => p.node).filter((n): n is string => !!n))) {
        if (!liveness.has(node)) liveness.set(node, (await this.redis.exists(this.key(`consult:node:${node}`))) === 1);
      }
      const stale = record.participants.some((p) => (p.node && !liveness.get(p.node)) || (p.disconnectedAt !== undefined && now - p.disconnectedAt >= grace));
      if (!stale) {
        if (record.participants.some((p) => p.conn)) await this.redis.pexpire(this.key(`consult:room:${appointmentId}`), ROOM_TTL_MS);
        continue;
      }
      await this.update(appointmentId, ({ room }) => {
        if (!room) return;
        const current = new Map(record.participants.map((p) => [p.id, p]));
        for (const p of [...room.participants.values()]) {
          const was = current.get(p.id);
          if (p.channel instanceof BusChannel && !liveness.get(p.channel.node) && liveness.has(p.channel.node)) room.disconnected(p, p.channel);
          else if (!p.channel && was?.disconnectedAt !== undefined && now - was.disconnectedAt >= grace) room.depart(p, 'disconnected');
        }
      });
    }
  }

  /**
   * Redis came back (maybe empty, after a restart): write back the rooms where this node holds
   * sockets. The freshest copy any node saw wins (version); then each node puts its own sockets
   * back in their places. A place another socket took meanwhile is left alone, and this node's
   * socket for it hears `replaced`.
   */
  private async rebuild(): Promise<void> {
    let rebuilt = 0;
    for (const [appointmentId, seen] of [...this.known]) {
      const mine = seen.participants.filter((p) => p.node === this.nodeId && p.conn && this.options.socket(p.conn));
      // Sockets that closed while Redis was down could not say so: their places start waiting now.
      const closed = new Set(seen.participants.filter((p) => p.node === this.nodeId && p.conn && !this.options.socket(p.conn)).map((p) => p.conn!));
      this.known.delete(appointmentId);
      if (mine.length === 0 && closed.size === 0) continue;
      await this.serial(appointmentId, () =>
        this.locked(appointmentId, async () => {
          const stored = await this.load(appointmentId);
          if (stored && stored.id !== seen.id) return;
          const room: RoomRecord = !stored || stored.version < seen.version ? structuredClone(seen) : stored;
          // Admission only ever goes forward: a copy that saw it wins over one that didn't.
          const admitted = new Set([...(stored?.participants ?? []), ...seen.participants].filter((p) => p.state === 'admitted').map((p) => p.id));
          for (const p of room.participants) if (admitted.has(p.id)) p.state = 'admitted';
          room.participants = room.participants.map((p) => (p.conn && closed.has(p.conn) ? { ...withoutSocket(p), disconnectedAt: Date.now() } : p));
          for (const own of mine) {
            const index = room.participants.findIndex((p) => p.id === own.id);
            const there = room.participants[index];
            const state = there?.state === 'admitted' || admitted.has(own.id) ? 'admitted' : own.state;
            if (!there) room.participants.push({ ...own, state });
            else if (!there.conn) room.participants[index] = { ...withoutWait(there), node: own.node!, conn: own.conn!, state };
            else if (there.conn !== own.conn) this.options.socket(own.conn!)?.close(1000, 'replaced');
          }
          await this.flush([['set', this.key(`consult:room:${appointmentId}`), JSON.stringify(room), 'PX', ROOM_TTL_MS], ['sadd', this.key('consult:rooms'), appointmentId]], []);
          if (mine.length) this.known.set(appointmentId, room);
          rebuilt++;
        }),
      ).catch((err: unknown) => this.options.logger.warn({ err: safeError(err), appointment: appointmentId }, 'consultation room not rebuilt in redis'));
    }
    if (rebuilt) this.options.logger.info({ rooms: rebuilt }, 'consultation rooms written back to redis');
  }

  /**
   * This node is the authority on its own sockets. After a restart a node with a fresher copy
   * of a room may write back a place as still held by a socket of this node that closed while
   * Redis was down (this node said so in its own write-back, which the fresher copy replaced):
   * such a place starts waiting now, so the sweep ends it after the grace instead of never.
   */
  private async reconcile(): Promise<void> {
    for (const appointmentId of await this.redis.smembers(this.key('consult:rooms'))) {
      const record = await this.load(appointmentId);
      if (!record?.participants.some((p) => this.holdsClosedSocket(p.node, p.conn))) continue;
      await this.update(appointmentId, ({ room }) => {
        for (const p of room?.participants.values() ?? []) {
          if (p.channel instanceof BusChannel && this.holdsClosedSocket(p.channel.node, p.channel.id)) room!.disconnected(p, p.channel);
        }
      });
    }
  }

  private holdsClosedSocket(node: string | undefined, conn: string | undefined): boolean {
    return node === this.nodeId && conn !== undefined && !this.options.socket(conn);
  }
}

function withoutSocket(p: ParticipantRecord): ParticipantRecord {
  const { node: _node, conn: _conn, ...rest } = p;
  return rest;
}

function withoutWait(p: ParticipantRecord): ParticipantRecord {
  const { disconnectedAt: _since, ...rest } = p;
  return rest;
}
