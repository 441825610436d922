/**
 * The HAProxy configuration in front of a farm of telesalud nodes: one generator for the farm
 * test, the README's example and (later) `telesalud edge-config`. Choices, and why:
 *
 * - `reencrypt` (default): HAProxy ends the client's TLS (it must, to see HTTP: health-aware
 *   retries, X-Forwarded-For, per-request balancing) and opens a new TLS connection to each
 *   node. `passthrough` relays TCP untouched (the node's certificate is what browsers see)
 *   when the load balancer must not hold the key; it balances connections, not requests.
 * - Health: `GET /readyz` every second; a draining node answers 503 and leaves the rotation
 *   at the next check, a dead one when the check fails. No `on-marked-down shutdown-sessions`:
 *   it would cut the requests and tunnels a draining node is still finishing (it keeps serving
 *   for TELESALUD_DRAIN_DELAY_MS, then tells its sockets to reconnect); a dead node's
 *   connections are reset by its kernel anyway.
 * - Retries: only what is safe to send twice. `conn-failure` (nothing reached the node) and
 *   `503`, which telesalud answers only for requests it refused without acting (draining,
 *   not ready). Never `empty-response`: a node killed after committing a write and before
 *   answering would get the write made twice.
 * - WebSockets: `timeout tunnel` well above the signaling heartbeat; `timeout client-fin`
 *   short, so half-closed sockets of vanished browsers don't pile up.
 * - Connections to the nodes are kept and reused (`http-reuse safe`): a TLS handshake per
 *   request to a node was the largest part of what the farm added per request (bench/farm.ts).
 *   The race that made `option http-server-close` the earlier choice (HAProxy picks an idle
 *   connection just as the node closes it, and the request is lost) is closed on the node's
 *   side, src/cluster/keep-alive-behind-proxy.ts: its idle timeout outlasts HAProxy's pool, and
 *   while draining it answers `Connection: close` and closes idle connections only once HAProxy
 *   has taken it out of rotation. The rolling restart in test/farm/farm.test.ts proves it.
 *   `empty-response` stays out of `retry-on` anyway: HAProxy 2.6 replays POSTs under L7
 *   retries (only `http-request disable-l7-retry` stops it), and a POST whose connection died
 *   after the node committed it would be stored twice.
 */
export interface HaproxyNode {
  name: string;
  host: string;
  port: number;
}

export interface HaproxyFarmOptions {
  /** Where clients connect, e.g. `0.0.0.0:443` or `127.0.0.1:8443`. */
  bind: string;
  nodes: HaproxyNode[];
  tls:
    | { mode: 'reencrypt'; /** PEM file with the certificate chain and its key, for clients. */ certFile: string; /** CA that signed the nodes' certificates; without it nodes are not verified (loopback tests only). */ nodeCaFile?: string }
    | { mode: 'passthrough' };
  /** Admin socket (`show stat`, `disable server`) for rolling upgrades; absent: none. */
  statsSocket?: string;
  /** Milliseconds between health checks. */
  checkIntervalMs?: number;
  /** Run in the foreground without a pid file or chroot (tests). */
  foreground?: boolean;
  /**
   * `keep-alive` (default): connections to the nodes are kept and reused (`http-reuse safe`).
   * `close`: one new TLS connection to a node per request (`option http-server-close`), for
   * nodes that close idle connections on their own schedule (not telesalud) or to compare
   * (bench/farm.ts measures both).
   */
  serverConnections?: 'close' | 'keep-alive';
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
const HOST = /^[A-Za-z0-9.:[\]-]{1,253}$/;

export function haproxyConfig(options: HaproxyFarmOptions): string {
  if (options.nodes.length === 0) throw new Error('a farm needs at least one node');
  for (const node of options.nodes) {
    if (!NAME.test(node.name)) throw new Error(`node name "${node.name.slice(0, 40)}" must be letters, digits, _ . -`);
    if (!HOST.test(node.host)) throw new Error(`node host "${node.host.slice(0, 40)}" is not a host name or address`);
    if (!Number.isInteger(node.port) || node.port < 1 || node.port > 65535) throw new Error(`node ${node.name}: port must be 1 to 65535`);
  }
  if (!/^[^\s]*:\d{1,5}$/.test(options.bind)) throw new Error('bind must be [ADDRESS]:PORT');
  const inter = options.checkIntervalMs ?? 1000;
  const http = options.tls.mode === 'reencrypt';
  const verify = options.tls.mode === 'reencrypt' && options.tls.nodeCaFile ? `verify required ca-file ${options.tls.nodeCaFile}` : 'verify none';
  // Two failed checks, not one: a node slow for a moment under load must not lose its sessions.
  const check = `check inter ${inter} fall 2 rise 2`;
  const lines = [
    'global',
    options.foreground ? '  # foreground: no daemon, no chroot' : '  daemon',
    '  maxconn 4096',
    ...(options.statsSocket ? [`  stats socket ${options.statsSocket} mode 600 level admin`] : []),
    '  ssl-default-bind-options ssl-min-ver TLSv1.2',
    '  ssl-default-server-options ssl-min-ver TLSv1.2',
    '',
    'defaults',
    `  mode ${http ? 'http' : 'tcp'}`,
    '  timeout connect 3s',
    '  timeout client 60s',
    '  timeout server 120s',
    '  timeout client-fin 5s',
    '  timeout check 2s',
    // WebSocket (signaling) tunnels stay open for a whole consultation.
    '  timeout tunnel 2h',
    ...(http ? ['  timeout http-request 10s', '  timeout http-keep-alive 10s', '  option forwardfor', options.serverConnections === 'close' ? '  option http-server-close' : '  http-reuse safe'] : []),
    '  retries 3',
    '  option redispatch 1',
    ...(http ? ['  retry-on conn-failure 503'] : []),
    '',
    'frontend telesalud',
    http && options.tls.mode === 'reencrypt' ? `  bind ${options.bind} ssl crt ${options.tls.certFile} alpn http/1.1` : `  bind ${options.bind}`,
    // One id for the request in HAProxy's log and the node's (and the audit's); a client's own X-Request-Id is dropped.
    ...(http ? ['  http-request set-header X-Forwarded-Proto https', '  http-request del-header X-Request-Id', '  unique-id-format %{+X}o%ci:%cp_%fi:%fp_%Ts_%rt:%pid', '  unique-id-header X-Request-Id'] : []),
    '  default_backend nodes',
    '',
    'backend nodes',
    '  balance roundrobin',
    // Health checks over TLS against readiness: 503 while draining takes the node out.
    '  option httpchk',
    '  http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost',
    '  http-check expect status 200',
    ...options.nodes.map((n) => (http ? `  server ${n.name} ${n.host}:${n.port} ssl ${verify} alpn http/1.1 ${check}` : `  server ${n.name} ${n.host}:${n.port} ${check} check-ssl verify none`)),
    '',
  ];
  return lines.join('\n');
}
