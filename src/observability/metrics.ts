import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { sql } from 'kysely';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { observeAuditWrites } from '../audit/audit-write-latency.js';
import { isAdministrator } from '../auth/administrator.js';
import { forbidden } from '../records/fhir/outcomes.js';
import type { AppContext } from '../server/app-context.js';
import { registerOcspStaplingMetrics } from '../server/ocsp-stapling.js';
import { registerMailMetrics } from '../notifications/mail-metrics.js';

/**
 * `GET /metrics`: what the node is doing, in Prometheus text, for the people who run it.
 * Counts and timings by route pattern and status only — never a URL, a query or an id, so
 * nothing here can carry health data. Readable by administrators (an admin session, or the
 * bootstrap token a scraper can be given as its bearer credential). Registered on the root
 * application, not as an encapsulated plugin, so that its hook times every route.
 */
export function registerMetrics(app: FastifyInstance, ctx: AppContext): void {
  // One registry per application: several nodes built in one process (tests) never mix figures.
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'telesalud_' });

  const requests = new Counter({ name: 'telesalud_http_requests_total', help: 'HTTP requests answered, by method, route pattern and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new Histogram({
    name: 'telesalud_http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  new Gauge({
    name: 'telesalud_ready',
    help: '1 while the node takes traffic, 0 while it drains',
    registers: [registry],
    collect() {
      this.set(ctx.lifecycle.draining ? 0 : 1);
    },
  });
  const consult = {
    rooms: new Gauge({ name: 'telesalud_consult_rooms', help: 'Consultation rooms with a participant on this node (sum the nodes for the farm)', registers: [registry] }),
    participants: new Gauge({ name: 'telesalud_consult_participants', help: 'Participants whose socket is on this node, admitted or waiting (sum the nodes for the farm)', registers: [registry] }),
    waiting: new Gauge({ name: 'telesalud_consult_waiting', help: 'Participants in a waiting room on this node', registers: [registry] }),
    sockets: new Gauge({ name: 'telesalud_consult_sockets', help: 'Signaling WebSockets open on this node', registers: [registry] }),
    mbit: new Gauge({ name: 'telesalud_consult_media_mbit_per_second', help: 'Media bitrate the browsers of this node\'s consultations report', registers: [registry] }),
    gbitToday: new Gauge({ name: 'telesalud_consult_media_gbit_today', help: 'Media sent by all participants today (UTC), every node included', registers: [registry] }),
    badMessages: new Gauge({ name: 'telesalud_consult_bad_messages', help: 'Malformed or unknown signaling messages refused since the node started', registers: [registry] }),
    // TURN relay usage as the browsers report their selected candidate pair (each node its own reports; sum them).
    mediaParticipants: new Gauge({ name: 'telesalud_consult_media_participants', help: 'Participants whose browser reported a connected media path to this node in the last 30 s, by path ("relay": at least one peer link over TURN, "direct": none)', labelNames: ['path'], registers: [registry] }),
    relayedMbit: new Gauge({ name: 'telesalud_consult_relayed_mbit_per_second', help: 'Media bitrate the browsers of this node\'s consultations report sending over TURN relays', registers: [registry] }),
    relayedBytes: new Counter({ name: 'telesalud_consult_relayed_bytes_total', help: 'Media bytes over TURN relays as reported by the browsers to this node, by direction (sent, received)', labelNames: ['direction'], registers: [registry] }),
    relayedGbitToday: new Gauge({ name: 'telesalud_consult_relayed_gbit_today', help: 'Media sent over TURN relays by all participants today (UTC), every node included, as the browsers report it', registers: [registry] }),
  };
  // Counted from zero with the node, like the requests: the browsers' reports accepted since it started.
  const relayedBytesCounted = { sent: 0, received: 0 };
  for (const direction of ['sent', 'received'] as const) consult.relayedBytes.inc({ direction }, 0);

  // Security figures, read from the database at scrape time so every node reports the farm's truth.
  const security = {
    sessions: new Gauge({ name: 'telesalud_sessions_active', help: 'Sessions not yet expired (all nodes)', registers: [registry] }),
    locked: new Gauge({ name: 'telesalud_accounts_locked', help: 'Accounts locked after repeated failed sign-ins (all nodes)', registers: [registry] }),
    failures: new Gauge({ name: 'telesalud_sign_in_failures_last_hour', help: 'Failed sign-ins in the last hour (all nodes)', registers: [registry] }),
  };
  // The shield's refusals, counted in this node's memory (each node reports its own; sum them).
  const shieldStats = app.hasDecorator('shieldStats') ? app.shieldStats : undefined;
  // OCSP stapling of the node's certificate: whether a good response is stapled, and the responder's failures.
  if (ctx.ocspStapling) registerOcspStaplingMetrics(registry, ctx.ocspStapling);
  // Outgoing e-mail, when it is on (TELESALUD_SMTP_URL).
  if (ctx.notifications) registerMailMetrics(registry, ctx.notifications);
  new Counter({
    name: 'telesalud_shield_blocks_total',
    help: 'Requests and signaling messages the shield refused on this node, by the attack family that decided it ("banned": from a banned source)',
    labelNames: ['family'],
    registers: [registry],
    collect() {
      if (!shieldStats) return;
      this.reset();
      for (const [family, count] of shieldStats.byFamily()) this.inc({ family }, count);
    },
  });
  new Gauge({
    name: 'telesalud_shield_bans_active',
    help: 'Sources the shield has banned right now (the farm\'s bans when they are shared)',
    registers: [registry],
    async collect() {
      const active = shieldStats ? await shieldStats.activeBans() : undefined;
      this.set(active ?? 0);
    },
  });
  // The API rate limits (src/edge/rate-limit-plugin.ts): refusals on this node, and whether counting is farm-wide.
  const rateStats = app.hasDecorator('rateLimitStats') ? app.rateLimitStats : undefined;
  new Counter({
    name: 'telesalud_rate_limited_total',
    help: 'API requests refused with 429 on this node, by the limit that refused them (source, source-signed-in, account)',
    labelNames: ['bucket'],
    registers: [registry],
    collect() {
      if (!rateStats) return;
      this.reset();
      for (const [bucket, count] of rateStats.byBucket()) this.inc({ bucket }, count);
    },
  });
  new Gauge({
    name: 'telesalud_rate_limit_shared',
    help: '1 while rate limits are counted farm-wide in Redis, 0 while this node counts alone (single node, or Redis down: failing open)',
    registers: [registry],
    collect() {
      this.set(rateStats?.limiter.mode() === 'shared' ? 1 : 0);
    },
  });
  new Counter({
    name: 'telesalud_rate_limit_fallbacks_total',
    help: 'Requests this node counted against the rate limits by itself because Redis was unreachable',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(rateStats?.limiter.fallbacks() ?? 0);
    },
  });

  // The database pool (PostgreSQL): saturated when connections are all in use and requests queue for one.
  const poolStats = ctx.store.poolStats?.bind(ctx.store);
  // Read as the scrape arrives, before its own queries take connections and distort the picture.
  let poolAtScrape: ReturnType<NonNullable<typeof poolStats>> | undefined;
  new Gauge({
    name: 'telesalud_db_pool_connections',
    help: 'Connections of this node\'s database pool, by state (in_use, idle); absent on the embedded database',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const pool = poolAtScrape ?? poolStats?.();
      if (!pool) return;
      this.set({ state: 'in_use' }, pool.total - pool.idle);
      this.set({ state: 'idle' }, pool.idle);
    },
  });
  if (poolStats) {
    new Gauge({
      name: 'telesalud_db_pool_waiting',
      help: 'Queries of this node waiting for a free database connection',
      registers: [registry],
      collect() {
        this.set((poolAtScrape ?? poolStats()).waiting);
      },
    });
    new Gauge({
      name: 'telesalud_db_pool_max',
      help: 'Most connections this node\'s pool opens (TELESALUD_DB_POOL_SIZE)',
      registers: [registry],
      collect() {
        this.set(poolStats().max);
      },
    });
  }

  // Redis (farm mode): up or down, and since when, as the bus sees it.
  new Gauge({
    name: 'telesalud_redis_configured',
    help: '1 when this node is configured for a farm (TELESALUD_REDIS_URL), 0 for a single node',
    registers: [registry],
    collect() {
      this.set(ctx.bus.status().redis === 'none' ? 0 : 1);
    },
  });
  new Gauge({
    name: 'telesalud_redis_up',
    help: '1 while Redis is connected (subscriptions restored), 0 while it is down or not configured',
    registers: [registry],
    collect() {
      this.set(ctx.bus.status().redis === 'connected' ? 1 : 0);
    },
  });
  new Gauge({
    name: 'telesalud_redis_state_since_timestamp_seconds',
    help: 'When Redis last went up or down (Unix time); 0 when not configured',
    registers: [registry],
    collect() {
      const status = ctx.bus.status();
      this.set(status.redis === 'none' ? 0 : Math.floor(Date.parse(status.since) / 1000));
    },
  });

  // Audit writes: every access to health data waits for its entry (queued or committed), so their latency is the floor of every response.
  const auditWrites = new Histogram({
    name: 'telesalud_audit_write_duration_seconds',
    help: 'Time an access waits for its audit entry, by path (group-commit: audited reads, until queued or committed per TELESALUD_AUDIT_COMMIT; in-transaction: writes)',
    labelNames: ['path'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const auditWriteFailures = new Counter({ name: 'telesalud_audit_write_failures_total', help: 'Audit writes that failed (the access they recorded was refused)', labelNames: ['path'], registers: [registry] });
  for (const path of ['group-commit', 'in-transaction']) {
    auditWrites.zero({ path });
    auditWriteFailures.inc({ path }, 0);
  }
  const stopObserving = observeAuditWrites(ctx.audit, (path, seconds, ok) => {
    auditWrites.observe({ path }, seconds);
    if (!ok) auditWriteFailures.inc({ path });
  });
  app.addHook('onClose', async () => stopObserving());
  // Entries committed behind their answers (AuditLog, TELESALUD_AUDIT_COMMIT=behind): what a killed node would lose.
  new Gauge({
    name: 'telesalud_audit_unwritten_entries',
    help: 'Audit entries whose access was answered and that are not committed yet',
    registers: [registry],
    collect() {
      this.set(ctx.audit.backlog().entries);
    },
  });
  new Gauge({
    name: 'telesalud_audit_unwritten_oldest_seconds',
    help: 'How long the oldest audit entry answered for has waited for its commit (0: none waiting)',
    registers: [registry],
    collect() {
      this.set(ctx.audit.backlog().oldestSeconds);
    },
  });
  new Gauge({
    name: 'telesalud_audit_failed_appends',
    help: 'Appends of answered audit entries that failed and were retried, since the node started',
    registers: [registry],
    collect() {
      this.set(ctx.audit.backlog().failedAppends);
    },
  });

  const readSecurityFigures = async () => {
    const row = (
      await sql<{ sessions: number; locked: number; failures: number }>`
        select (select count(*) from session where expires > now())::int as sessions,
               (select count(*) from account where locked_until > now())::int as locked,
               (select count(*) from audit_event where action = 'sign-in-failed' and recorded > now() - interval '1 hour')::int as failures`.execute(ctx.store.db)
    ).rows[0]!;
    security.sessions.set(row.sessions);
    security.locked.set(row.locked);
    security.failures.set(row.failures);
  };

  app.addHook('onResponse', async (request: FastifyRequest, reply: FastifyReply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.get('/metrics', async (request, reply) => {
    if (!isAdministrator(request)) throw forbidden('metrics are for administrators');
    poolAtScrape = poolStats?.();
    const [status] = await Promise.all([ctx.consult.status(), readSecurityFigures()]);
    // This node's share (its help says so): summed over a farm's nodes it counts each participant once.
    consult.rooms.set(status.onThisNode.rooms);
    consult.participants.set(status.onThisNode.participants);
    consult.waiting.set(status.waiting);
    consult.sockets.set(status.sockets);
    consult.mbit.set(status.mbitPerSecondNow);
    consult.gbitToday.set(status.gbitToday);
    consult.badMessages.set(status.badMessages);
    consult.mediaParticipants.set({ path: 'relay' }, status.relay.participantsRelayed);
    consult.mediaParticipants.set({ path: 'direct' }, status.relay.participantsWithMedia - status.relay.participantsRelayed);
    consult.relayedMbit.set(status.relay.mbitPerSecondNow);
    consult.relayedGbitToday.set(status.relay.gbitToday);
    for (const direction of ['sent', 'received'] as const) {
      const total = status.relay.bytesSinceStart[direction];
      if (total > relayedBytesCounted[direction]) consult.relayedBytes.inc({ direction }, total - relayedBytesCounted[direction]);
      relayedBytesCounted[direction] = Math.max(relayedBytesCounted[direction], total);
    }
    return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(await registry.metrics());
  });
}
