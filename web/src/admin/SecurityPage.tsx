import { useCallback, useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { adminApi } from './admin-api.js';
import { errorMessage } from './AdminApp.js';
import { StackedBarChart, type Series } from './charts.js';
import { axisLabel, bucketLabel, dateTime, number } from './format.js';

const KINDS = ['shield-block', 'shield-ban', 'rate-limited', 'sign-in-failed', 'account-locked'] as const;
const RANGES = { '24h': 24, '7d': 7 * 24, '30d': 30 * 24 } as const;
type Range = keyof typeof RANGES;

interface SecurityEvent {
  seq: number;
  at: string;
  kind: (typeof KINDS)[number];
  outcome: string;
  source: string | null;
  actor: string;
  detail: { route?: string; method?: string; families?: string[]; rules?: string[]; score?: number; until?: string; reason?: string; failures?: number; minutes?: number; bucket?: string; limit?: number; windowSeconds?: number };
}

interface SecurityView {
  window: { from: string; to: string; bucketSeconds: number };
  kinds: string[];
  totals: Record<string, number>;
  buckets: { start: string; counts: Record<string, number> }[];
  events: SecurityEvent[];
  topSources: { source: string; events: number }[];
  activeBans: { source: string; since: string; until: string }[];
  shield: { enabled: boolean; node: string; blocksByFamily: Record<string, number>; activeBans: number | null };
}

/** /admin/security: attacks and abuse — what, where from, when — and how many over time. */
export function SecurityPage() {
  const { t } = useTranslation();
  const [range, setRange] = useState<Range>('24h');
  const [view, setView] = useState<SecurityView>();
  const [error, setError] = useState<string>();

  const load = useCallback(async () => {
    const from = new Date(Date.now() - RANGES[range] * 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    try {
      setView(await adminApi<SecurityView>('GET', `/api/admin/security/events?${new URLSearchParams({ from, _count: '200' })}`));
      setError(undefined);
    } catch (err) {
      setError(errorMessage(t, err));
    }
  }, [range, t]);

  useEffect(() => {
    void load();
  }, [load]);

  const series: Series[] = KINDS.map((k) => ({ key: k, label: t(`admin.kinds.${k}`), className: `series-${k}` }));

  return (
    <div className="stack">
      <h1>{t('admin.security.title')}</h1>
      <div className="row">
        <label className="inline">
          {t('admin.security.range')}
          <select value={range} onChange={(e) => setRange(e.target.value as Range)} data-testid="security-range">
            {(Object.keys(RANGES) as Range[]).map((r) => (
              <option key={r} value={r}>
                {t(`admin.security.ranges.${r}`)}
              </option>
            ))}
          </select>
        </label>
        <button type="button" onClick={() => void load()} data-testid="security-refresh">
          {t('admin.refresh')}
        </button>
      </div>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
      {!view ? (
        !error && <p aria-busy="true">{t('app.loading')}</p>
      ) : (
        <>
          {!view.shield.enabled && (
            <p className="warning" role="status">
              {t('admin.security.shieldOff')}
            </p>
          )}
          <ul className="tiles" aria-label={t('admin.security.totals')}>
            {KINDS.map((k) => (
              <li key={k} className="panel tile-figure" data-testid={`security-total-${k}`}>
                <span className="figure">{number(view.totals[k] ?? 0)}</span>
                <span className="figure-label">{t(`admin.kinds.${k}`)}</span>
              </li>
            ))}
          </ul>

          <section className="panel stack" aria-labelledby="security-chart-heading">
            <h2 id="security-chart-heading">{t('admin.security.overTime')}</h2>
            <StackedBarChart
              testId="security-chart"
              integer
              title={t('admin.security.chartTitle')}
              description={t('admin.security.chartDescription', { from: dateTime(view.window.from), to: dateTime(view.window.to), blocks: view.totals['shield-block'] ?? 0, failures: view.totals['sign-in-failed'] ?? 0 })}
              series={series}
              points={view.buckets.map((b) => ({ label: axisLabel(b.start, view.window.bucketSeconds), fullLabel: bucketLabel(b.start, view.window.bucketSeconds), values: b.counts }))}
            />
          </section>

          <div className="columns">
            <section className="panel stack" aria-labelledby="bans-heading">
              <h2 id="bans-heading">{t('admin.security.bans')}</h2>
              {view.activeBans.length === 0 ? (
                <p>{t('admin.security.noBans')}</p>
              ) : (
                <ul className="plain" data-testid="security-bans">
                  {view.activeBans.map((b) => (
                    <li key={b.source}>
                      <span className="mono">{b.source}</span> — {t('admin.security.bannedUntil', { when: dateTime(b.until) })}
                    </li>
                  ))}
                </ul>
              )}
            </section>
            <section className="panel stack" aria-labelledby="sources-heading">
              <h2 id="sources-heading">{t('admin.security.topSources')}</h2>
              {view.topSources.length === 0 ? (
                <p>{t('admin.security.noEvents')}</p>
              ) : (
                <ol className="plain" data-testid="security-sources">
                  {view.topSources.map((s) => (
                    <li key={s.source}>
                      <span className="mono">{s.source}</span> — {t('admin.security.eventCount', { count: s.events })}
                    </li>
                  ))}
                </ol>
              )}
            </section>
            <section className="panel stack" aria-labelledby="shield-heading">
              <h2 id="shield-heading">{t('admin.security.shieldNode')}</h2>
              <p className="muted">{t('admin.security.shieldNodeExplain')}</p>
              {Object.keys(view.shield.blocksByFamily).length === 0 ? (
                <p>{t('admin.security.noBlocks')}</p>
              ) : (
                <ul className="plain" data-testid="security-families">
                  {Object.entries(view.shield.blocksByFamily).map(([family, n]) => (
                    <li key={family}>
                      {t(`admin.families.${family}`, { defaultValue: family })}: {number(n)}
                    </li>
                  ))}
                </ul>
              )}
            </section>
          </div>

          <section className="panel stack" aria-labelledby="events-heading">
            <h2 id="events-heading">{t('admin.security.events')}</h2>
            {view.events.length === 0 ? (
              <p>{t('admin.security.noEvents')}</p>
            ) : (
              <div className="table-wrap" tabIndex={0} role="region" aria-label={t('admin.security.events')}>
                <table data-testid="security-events">
                  <thead>
                    <tr>
                      <th scope="col">{t('admin.audit.when')}</th>
                      <th scope="col">{t('admin.security.what')}</th>
                      <th scope="col">{t('admin.security.from')}</th>
                      <th scope="col">{t('admin.security.concerning')}</th>
                      <th scope="col">{t('admin.security.detail')}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {view.events.map((e) => (
                      <tr key={e.seq} data-testid="security-event" data-kind={e.kind}>
                        <td>{dateTime(e.at)}</td>
                        <td>{t(`admin.kinds.${e.kind}`)}</td>
                        <td className="mono">{e.source ?? '—'}</td>
                        <td className="mono">{e.actor}</td>
                        <td>{describe(t, e)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </div>
  );
}

function describe(t: (key: string, options?: Record<string, unknown>) => string, e: SecurityEvent): string {
  const d = e.detail;
  switch (e.kind) {
    case 'shield-block':
      return t('admin.security.blockDetail', {
        families: (d.families ?? []).map((f) => t(`admin.families.${f}`, { defaultValue: f })).join(', '),
        request: `${d.method ?? ''} ${d.route ?? ''}`.trim(),
        score: d.score ?? 0,
      });
    case 'shield-ban':
      return d.until ? t('admin.security.bannedUntil', { when: dateTime(d.until) }) : '';
    case 'rate-limited':
      return t('admin.security.rateLimitedDetail', { request: `${d.method ?? ''} ${d.route ?? ''}`.trim(), limit: d.limit ?? 0, seconds: d.windowSeconds ?? 0, bucket: t(`admin.security.buckets.${d.bucket}`, { defaultValue: d.bucket ?? '' }) });
    case 'sign-in-failed':
      return d.reason === 'paused' ? t('admin.security.paused') : d.failures ? t('admin.security.failures', { count: d.failures }) : t('admin.security.unknownAccount');
    case 'account-locked':
      return t('admin.security.lockedFor', { count: d.minutes ?? 0 });
    default:
      return '';
  }
}
