import { useCallback, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { adminApi } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import { LineChart, StackedBarChart } from './charts.js';
import { dateTime, number, shortDate, shortTime } from './format.js';

const REFRESH_MS = 10_000;

interface NodeStatus {
  id: string;
  self: boolean;
  version: string;
  startedAt: string;
  at: string;
  secondsSinceHeartbeat: number;
  draining: boolean;
  memoryMb: number;
  load1: number;
  rooms: number;
  participants: number;
  sockets: number;
  mbitPerSecondNow: number;
  relay?: { participantsWithMedia: number; participantsRelayed: number; mbitPerSecondNow: number };
}

/** TURN relay usage as the browsers report their media path (the service does not read coturn's own figures). */
interface RelayUsage {
  source: 'browsers';
  participantsWithMedia: number;
  participantsRelayed: number;
  mbitPerSecondNow: number;
  gbitToday: number;
}

interface ServiceStatus {
  now: string;
  mode: 'single-node' | 'farm';
  ready: { status: string; database: { kind: string; reachable: boolean; pingMs: number | null }; redis: 'none' | 'up' | 'down'; redisSince?: string; signaling: string };
  nodes: NodeStatus[];
  consult: { rooms: number; participants: number; waiting: number; mbitPerSecondNow: number; gbitToday: number };
  traffic: { recent: { at: string; mbit: number; relayedMbit: number }[]; days: { day: string; sentGbit: number; receivedGbit: number; relayedSentGbit: number; relayedReceivedGbit: number }[] };
  turn: { configured: boolean; urls: string[]; relayUsage: RelayUsage };
}

/** /admin/status: nodes and their health, consultations, traffic, Redis and the database. Refreshes itself. */
export function StatusPage() {
  const { t } = useTranslation();
  const [status, setStatus] = useState<ServiceStatus>();
  const [error, setError] = useState<string>();

  const load = useCallback(async () => {
    try {
      setStatus(await adminApi<ServiceStatus>('GET', '/api/admin/status'));
      setError(undefined);
    } catch (err) {
      setError(errorMessage(t, err));
    }
  }, [t]);

  useEffect(() => {
    void load();
    const timer = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [load]);

  const good = (ok: boolean, text: string, testId?: string) => (
    <span className={`badge ${ok ? 'ok' : 'bad'}`} data-testid={testId}>
      {text}
    </span>
  );

  return (
    <div className="stack">
      <h1>{t('admin.status.title')}</h1>
      <div className="row">
        <button type="button" onClick={() => void load()} data-testid="status-refresh">
          {t('admin.refresh')}
        </button>
        {status && <span className="muted">{t('admin.status.asOf', { when: dateTime(status.now) })}</span>}
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {!status ? (
        !error && <p aria-busy="true">{t('app.loading')}</p>
      ) : (
        <>
          <ul className="tiles" aria-label={t('admin.status.health')}>
            <li className="panel tile-figure">
              <span className="figure-label">{t('admin.status.service')}</span>
              {good(status.ready.status === 'ready', t(`admin.status.ready.${status.ready.status}`, { defaultValue: status.ready.status }), 'status-ready')}
            </li>
            <li className="panel tile-figure">
              <span className="figure-label">{t('admin.status.database', { kind: status.ready.database.kind === 'pglite' ? t('admin.status.embedded') : 'PostgreSQL' })}</span>
              {good(status.ready.database.reachable, status.ready.database.reachable ? t('admin.status.dbUp', { ms: number(status.ready.database.pingMs ?? 0, 1) }) : t('admin.status.dbDown'), 'status-db')}
            </li>
            <li className="panel tile-figure">
              <span className="figure-label">Redis</span>
              {status.ready.redis === 'none' ? <span className="badge">{t('admin.status.redisNone')}</span> : good(status.ready.redis === 'up', t(`admin.status.redis.${status.ready.redis}`, { when: status.ready.redisSince ? dateTime(status.ready.redisSince) : '' }), 'status-redis')}
            </li>
            <li className="panel tile-figure">
              <span className="figure-label">{t('admin.status.signaling')}</span>
              {good(status.ready.signaling !== 'degraded', t(`admin.status.signalingModes.${status.ready.signaling}`, { defaultValue: status.ready.signaling }))}
            </li>
          </ul>

          <section className="panel stack" aria-labelledby="consult-heading">
            <h2 id="consult-heading">{t('admin.status.consultations')}</h2>
            <ul className="tiles">
              <li className="tile-figure" data-testid="status-rooms">
                <span className="figure">{number(status.consult.rooms)}</span>
                <span className="figure-label">{t('admin.status.rooms')}</span>
              </li>
              <li className="tile-figure" data-testid="status-participants">
                <span className="figure">{number(status.consult.participants)}</span>
                <span className="figure-label">{t('admin.status.participants')}</span>
              </li>
              <li className="tile-figure">
                <span className="figure">{number(status.consult.waiting)}</span>
                <span className="figure-label">{t('admin.status.waiting')}</span>
              </li>
              <li className="tile-figure" data-testid="status-mbit">
                <span className="figure">{number(status.consult.mbitPerSecondNow, 2)}</span>
                <span className="figure-label">{t('admin.status.mbitNow')}</span>
              </li>
              <li className="tile-figure" data-testid="status-gbit-today">
                <span className="figure">{number(status.consult.gbitToday, 3)}</span>
                <span className="figure-label">{t('admin.status.gbitToday')}</span>
              </li>
            </ul>
            <LineChart
              testId="status-traffic-now"
              title={t('admin.status.trafficNowTitle')}
              description={`${t('admin.status.trafficNowDescription', { mbit: number(status.consult.mbitPerSecondNow, 2) })} ${t('admin.status.trafficNowRelayed', { mbit: number(status.turn.relayUsage.mbitPerSecondNow, 2) })}`}
              label={t('admin.status.allMedia')}
              part={{ label: t('admin.status.relayedMedia'), className: 'series-relayed-line' }}
              points={status.traffic.recent.map((p) => ({ label: shortTime(p.at), value: p.mbit, part: p.relayedMbit }))}
            />
            <StackedBarChart
              testId="status-traffic-days"
              title={t('admin.status.trafficDaysTitle')}
              description={t('admin.status.trafficDaysDescription', { gbit: number(status.consult.gbitToday, 3) })}
              series={[
                { key: 'sentDirect', label: t('admin.status.sentDirect'), className: 'series-sent' },
                { key: 'sentRelayed', label: t('admin.status.sentRelayed'), className: 'series-sent-relayed' },
                { key: 'received', label: t('admin.status.received'), className: 'series-received' },
              ]}
              // Sent splits into its direct and relayed parts, so the bar's height stays what was sent and received.
              points={status.traffic.days.map((d) => ({ label: shortDate(`${d.day}T00:00:00Z`, true), values: { sentDirect: Math.max(0, d.sentGbit - d.relayedSentGbit), sentRelayed: d.relayedSentGbit, received: d.receivedGbit } }))}
            />
            <p className="muted">{t('admin.status.trafficExplain')}</p>
          </section>

          <section className="panel stack" aria-labelledby="nodes-heading">
            <h2 id="nodes-heading">{t(status.mode === 'farm' ? 'admin.status.nodesFarm' : 'admin.status.nodesSingle', { count: status.nodes.length })}</h2>
            <div className="table-wrap" tabIndex={0} role="region" aria-label={t('admin.status.node')}>
              <table data-testid="status-nodes">
                <thead>
                  <tr>
                    <th scope="col">{t('admin.status.node')}</th>
                    <th scope="col">{t('admin.status.heartbeat')}</th>
                    <th scope="col">{t('admin.status.version')}</th>
                    <th scope="col">{t('admin.status.since')}</th>
                    <th scope="col">{t('admin.status.rooms')}</th>
                    <th scope="col">{t('admin.status.participants')}</th>
                    <th scope="col">Mbit/s</th>
                    <th scope="col">{t('admin.status.relayNode')}</th>
                    <th scope="col">{t('admin.status.memory')}</th>
                  </tr>
                </thead>
                <tbody>
                  {status.nodes.map((n) => (
                    <tr key={n.id} data-testid="status-node">
                      <th scope="row" className="mono">
                        {n.id.slice(0, 12)}
                        {n.self && <span className="badge">{t('admin.status.thisNode')}</span>}
                        {n.draining && <span className="badge bad">{t('admin.status.draining')}</span>}
                      </th>
                      <td>{good(n.secondsSinceHeartbeat < 15, t('admin.status.secondsAgo', { count: n.secondsSinceHeartbeat }))}</td>
                      <td>{n.version}</td>
                      <td>{dateTime(n.startedAt)}</td>
                      <td>{number(n.rooms)}</td>
                      <td>{number(n.participants)}</td>
                      <td>{number(n.mbitPerSecondNow, 2)}</td>
                      <td>{n.relay ? t('admin.status.relayParticipantsOf', { relayed: number(n.relay.participantsRelayed), total: number(n.relay.participantsWithMedia) }) : '—'}</td>
                      <td>{t('admin.status.memoryMb', { mb: number(n.memoryMb) })}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          </section>

          <section className="panel stack" aria-labelledby="turn-heading">
            <h2 id="turn-heading">{t('admin.status.turn')}</h2>
            {status.turn.configured ? (
              <>
                <p data-testid="status-turn">{t('admin.status.turnConfigured', { count: status.turn.urls.length })}</p>
                <ul className="plain mono">
                  {status.turn.urls.map((u) => (
                    <li key={u}>{u}</li>
                  ))}
                </ul>
              </>
            ) : (
              <p data-testid="status-turn">{t('admin.status.turnNone')}</p>
            )}
            <ul className="tiles">
              <li className="tile-figure" data-testid="status-relay-participants">
                <span className="figure">{t('admin.status.relayParticipantsOf', { relayed: number(status.turn.relayUsage.participantsRelayed), total: number(status.turn.relayUsage.participantsWithMedia) })}</span>
                <span className="figure-label">{t('admin.status.relayParticipants')}</span>
              </li>
              <li className="tile-figure" data-testid="status-relay-mbit">
                <span className="figure">{number(status.turn.relayUsage.mbitPerSecondNow, 2)}</span>
                <span className="figure-label">{t('admin.status.relayMbitNow')}</span>
              </li>
              <li className="tile-figure" data-testid="status-relay-gbit-today">
                <span className="figure">{number(status.turn.relayUsage.gbitToday, 3)}</span>
                <span className="figure-label">{t('admin.status.relayGbitToday')}</span>
              </li>
            </ul>
            <p className="muted">{t('admin.status.turnUsageFromBrowsers')}</p>
          </section>
        </>
      )}
    </div>
  );
}
