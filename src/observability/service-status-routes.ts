import { loadavg } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { isAdministrator } from '../auth/administrator.js';
import { RedisBus } from '../cluster/redis-bus.js';
import { ping } from '../db/database.js';
import { safeError } from '../logging/safe-error.js';
import { forbidden } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';

/** Each node says how it is this often; a node silent for NODE_STATUS_TTL_MS is gone from the list. */
const HEARTBEAT_MS = 5_000;
export const NODE_STATUS_TTL_MS = 15_000;
/** The "traffic now" plot: one sample per heartbeat over the last half hour, kept in memory. */
const RECENT_SAMPLES = (30 * 60_000) / HEARTBEAT_MS;
const TRAFFIC_DAYS = 14;

/** What one node publishes about itself (no health data: counts and figures only). */
export interface NodeHeartbeat {
  id: string;
  version: string;
  startedAt: string;
  /** When this heartbeat was taken. */
  at: string;
  draining: boolean;
  memoryMb: number;
  load1: number;
  /** This node's own share (ConsultStatus.onThisNode): the nodes' figures add up to the farm's. */
  rooms: number;
  participants: number;
  sockets: number;
  mbitPerSecondNow: number;
  /** TURN relay usage by this node's participants' reports (see RelayUsage); absent from a node of an older version. */
  relay?: { participantsWithMedia: number; participantsRelayed: number; mbitPerSecondNow: number };
}

/**
 * `GET /api/admin/status`: how the service is, for the admin console — every node of the farm
 * and its last heartbeat (one node: itself), what /readyz reports (database, Redis, signaling),
 * consultations and participants now, media traffic now (with the last half hour) and per day,
 * and TURN. Administrators only. In a farm each node writes its heartbeat to Redis under the
 * bus prefix with a TTL, as the consultation presence does, so any node can list the others.
 */
export async function serviceStatusRoutes(app: FastifyInstance, ctx: AppContext): Promise<void> {
  const startedAt = new Date().toISOString();
  const redisBus = ctx.bus instanceof RedisBus ? ctx.bus : undefined;
  const statusKey = (id: string) => `${redisBus!.prefix}status:node:${id}`;
  const recent: { at: string; mbit: number; relayedMbit: number }[] = [];
  let latest: NodeHeartbeat | undefined;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;

  const heartbeat = async (): Promise<NodeHeartbeat> => {
    const consult = await ctx.consult.status();
    const beat: NodeHeartbeat = {
      id: ctx.nodeId,
      version: ctx.version,
      startedAt,
      at: new Date().toISOString(),
      draining: ctx.lifecycle.draining,
      memoryMb: Math.round(process.memoryUsage().rss / 1e5) / 10,
      load1: Math.round((loadavg()[0] ?? 0) * 100) / 100,
      // Its own share, not the farm's rooms every node sees in Redis: a farm of three listed each participant three times.
      rooms: consult.onThisNode.rooms,
      participants: consult.onThisNode.participants,
      sockets: consult.sockets,
      mbitPerSecondNow: consult.mbitPerSecondNow,
      relay: { participantsWithMedia: consult.relay.participantsWithMedia, participantsRelayed: consult.relay.participantsRelayed, mbitPerSecondNow: consult.relay.mbitPerSecondNow },
    };
    latest = beat;
    if (redisBus?.connected()) await redisBus.redis.set(statusKey(ctx.nodeId), JSON.stringify(beat), 'PX', NODE_STATUS_TTL_MS);
    return beat;
  };

  const farmNodes = async (): Promise<NodeHeartbeat[]> => {
    if (!redisBus?.connected()) return [];
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redisBus.redis.scan(cursor, 'MATCH', statusKey('*'), 'COUNT', 200);
      cursor = next;
      keys.push(...found);
    } while (cursor !== '0' && keys.length < 1000);
    if (keys.length === 0) return [];
    const values = await redisBus.redis.mget(...keys);
    return values.flatMap((v) => {
      try {
        return v ? [JSON.parse(v) as NodeHeartbeat] : [];
      } catch {
        return [];
      }
    });
  };

  app.addHook('onReady', async () => {
    const tick = async () => {
      try {
        const beat = await heartbeat();
        // The farm's media now: the sum of every node's own reports (reports stay on the node that got them).
        const nodes = await farmNodes().catch(() => []);
        const mbit = nodes.length ? nodes.reduce((sum, n) => sum + n.mbitPerSecondNow, 0) : beat.mbitPerSecondNow;
        const relayedMbit = (nodes.length ? nodes : [beat]).reduce((sum, n) => sum + (n.relay?.mbitPerSecondNow ?? 0), 0);
        recent.push({ at: beat.at, mbit, relayedMbit });
        if (recent.length > RECENT_SAMPLES) recent.shift();
      } catch (err) {
        ctx.logger.warn({ err: safeError(err) }, 'node status heartbeat failed; will retry');
      }
    };
    await tick();
    timer = setInterval(() => {
      // A slow tick (a busy database) is not stacked with the next one.
      inFlight ??= tick().finally(() => (inFlight = undefined));
    }, HEARTBEAT_MS);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    // Let a tick under way finish before the stores it reads are closed.
    await inFlight;
    // Leaving: the others stop listing this node at once rather than after the TTL.
    if (redisBus?.connected()) await redisBus.redis.del(statusKey(ctx.nodeId)).catch(() => undefined);
  });

  app.get('/api/admin/status', async (request, reply) => {
    if (!isAdministrator(request)) throw forbidden('only administrators see the service status');
    const now = Date.now();

    const pingStarted = performance.now();
    const database = await ping(ctx.store.db).then(
      () => ({ kind: ctx.store.kind, reachable: true, pingMs: Math.round((performance.now() - pingStarted) * 10) / 10 }),
      () => ({ kind: ctx.store.kind, reachable: false, pingMs: null }),
    );
    const bus = ctx.bus.status();
    const self = await heartbeat().catch(() => latest);
    const consult = await ctx.consult.status();

    const others = (await farmNodes().catch(() => [])).filter((n) => n.id !== ctx.nodeId);
    const nodes = [...(self ? [self] : []), ...others.sort((a, b) => a.id.localeCompare(b.id))].map((n) => ({
      ...n,
      self: n.id === ctx.nodeId,
      secondsSinceHeartbeat: Math.max(0, Math.round((now - Date.parse(n.at)) / 1000)),
    }));

    const days = trafficDays(now);
    // The day as text from the database itself: a driver would turn a date into local midnight.
    const rows = (
      await sql<{ day: string; sent_bytes: string | number; received_bytes: string | number; relayed_sent_bytes: string | number; relayed_received_bytes: string | number }>`
        select to_char(day, 'YYYY-MM-DD') as day, sent_bytes, received_bytes, relayed_sent_bytes, relayed_received_bytes from consult_traffic_daily where day >= ${days[0]!}`.execute(ctx.store.db)
    ).rows;
    const byDay = new Map(rows.map((r) => [r.day, r]));
    // Relay usage now: each node counts the reports it received (a participant reports to the node of its socket).
    const relayNow = nodes.length > 1 ? nodes.map((n) => n.relay ?? { participantsWithMedia: 0, participantsRelayed: 0, mbitPerSecondNow: 0 }) : [consult.relay];
    const gbit = (bytes: string | number | undefined) => (Number(bytes ?? 0) * 8) / 1e9;

    return reply.header('Cache-Control', 'no-store').send({
      now: new Date(now).toISOString(),
      mode: bus.redis === 'none' ? 'single-node' : 'farm',
      ready: {
        status: ctx.lifecycle.draining ? 'draining' : database.reachable ? 'ready' : 'unready',
        database,
        redis: bus.redis === 'none' ? 'none' : bus.redis === 'connected' ? 'up' : 'down',
        ...(bus.redis !== 'none' ? { redisSince: bus.since } : {}),
        signaling: bus.redis === 'none' ? 'single-node' : bus.redis === 'connected' ? 'farm' : 'degraded',
      },
      nodes,
      consult: {
        rooms: consult.rooms,
        participants: consult.participants,
        waiting: consult.waiting,
        mbitPerSecondNow: nodes.length > 1 ? nodes.reduce((sum, n) => sum + n.mbitPerSecondNow, 0) : consult.mbitPerSecondNow,
        gbitToday: consult.gbitToday,
      },
      traffic: {
        recent: [...recent],
        days: days.map((day) => {
          const row = byDay.get(day);
          return { day, sentGbit: gbit(row?.sent_bytes), receivedGbit: gbit(row?.received_bytes), relayedSentGbit: gbit(row?.relayed_sent_bytes), relayedReceivedGbit: gbit(row?.relayed_received_bytes) };
        }),
      },
      // Relay usage as the browsers report their selected candidate pair (coturn's own figures are not read).
      turn: {
        configured: ctx.config.turn !== undefined,
        urls: ctx.config.turn?.urls ?? [],
        relayUsage: {
          source: 'browsers',
          participantsWithMedia: relayNow.reduce((sum, r) => sum + r.participantsWithMedia, 0),
          participantsRelayed: relayNow.reduce((sum, r) => sum + r.participantsRelayed, 0),
          mbitPerSecondNow: relayNow.reduce((sum, r) => sum + r.mbitPerSecondNow, 0),
          gbitToday: consult.relay.gbitToday,
        },
      },
    });
  });
}

/** The last TRAFFIC_DAYS UTC days, oldest first (as consult_traffic_daily names them). */
function trafficDays(now: number): string[] {
  return Array.from({ length: TRAFFIC_DAYS }, (_, i) => new Date(now - (TRAFFIC_DAYS - 1 - i) * 86400_000).toISOString().slice(0, 10));
}
