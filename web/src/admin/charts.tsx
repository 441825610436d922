import { useId } from 'react';
import { useTranslation } from 'react-i18next';
import { number } from './format.js';

/** Hand-written SVG charts (no chart library: the bundle budget). Sized by viewBox, scaled by CSS. */
const W = 480;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 36 };

export interface Series {
  key: string;
  label: string;
  /** A class of admin.css giving the fill or stroke. */
  className: string;
}

export interface StackedPoint {
  /** Short, for the axis. */
  label: string;
  /** Complete, for the tooltip and the table (defaults to label). */
  fullLabel?: string;
  values: Record<string, number>;
}

/** A rounded-up axis top with 4 even steps, so gridlines fall on readable numbers. */
function niceMax(max: number, integer = false): number {
  if (max <= 0 || (integer && max <= 4)) return 4;
  const step = max / 4;
  const magnitude = 10 ** Math.floor(Math.log10(step));
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= step) ?? 10 * magnitude;
  return nice * 4;
}

function Axis({ max }: { max: number }) {
  const plotH = H - PAD.top - PAD.bottom;
  return (
    <g className="chart-axis">
      {[0, 1, 2, 3, 4].map((i) => {
        const y = PAD.top + plotH - (plotH * i) / 4;
        const value = (max * i) / 4;
        return (
          <g key={i}>
            <line x1={PAD.left} x2={W - PAD.right} y1={y} y2={y} className="chart-grid" />
            <text x={PAD.left - 6} y={y + 4} textAnchor="end">
              {number(value, value < 10 ? 2 : 0)}
            </text>
          </g>
        );
      })}
    </g>
  );
}

/** Which x labels to print: about 4, evenly spaced, always the last (and none crowding it). */
function showLabel(i: number, count: number): boolean {
  const every = Math.max(1, Math.ceil(count / 4));
  if (i === count - 1) return true;
  return i % every === 0 && count - 1 - i >= Math.ceil(every / 2);
}

/** Counts over time, stacked by series; a table of the same figures follows for screen readers and for reading. */
export function StackedBarChart({ title, description, series, points, testId, integer = false }: { title: string; description: string; series: Series[]; points: StackedPoint[]; testId?: string; integer?: boolean }) {
  const { t } = useTranslation();
  const id = useId();
  const totals = points.map((p) => series.reduce((sum, s) => sum + (p.values[s.key] ?? 0), 0));
  const max = niceMax(Math.max(0, ...totals), integer);
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = points.length ? plotW / points.length : plotW;
  const barW = Math.max(1, slot * 0.8);
  return (
    <figure className="chart" data-testid={testId}>
      <svg className="chart-plot" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} preserveAspectRatio="xMidYMid meet">
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{description}</desc>
        <Axis max={max} />
        {points.map((p, i) => {
          let y = PAD.top + plotH;
          const x = PAD.left + i * slot + (slot - barW) / 2;
          return (
            <g key={i}>
              {series.map((s) => {
                const v = p.values[s.key] ?? 0;
                if (v <= 0) return null;
                const h = (plotH * v) / max;
                y -= h;
                return (
                  <rect key={s.key} x={x} y={y} width={barW} height={h} className={s.className}>
                    <title>{`${p.fullLabel ?? p.label} · ${s.label}: ${number(v)}`}</title>
                  </rect>
                );
              })}
              {showLabel(i, points.length) && (
                <text x={i === points.length - 1 ? x + barW : x + barW / 2} y={H - PAD.bottom + 16} textAnchor={i === points.length - 1 && points.length > 1 ? 'end' : 'middle'} className="chart-label">
                  {p.label}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption className="chart-legend">
        {series.map((s) => (
          <span key={s.key} className="legend-item">
            <svg width="12" height="12" aria-hidden="true" focusable="false">
              <rect width="12" height="12" className={s.className} />
            </svg>
            {s.label}
          </span>
        ))}
      </figcaption>
      <details className="chart-data">
        <summary>{t('admin.chart.showTable')}</summary>
        <div className="table-wrap" tabIndex={0} role="region" aria-label={title}>
          <table>
            <caption className="visually-hidden">{title}</caption>
            <thead>
              <tr>
                <th scope="col">{t('admin.chart.when')}</th>
                {series.map((s) => (
                  <th scope="col" key={s.key}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {points.map((p, i) => (
                <tr key={i}>
                  <th scope="row">{p.fullLabel ?? p.label}</th>
                  {series.map((s) => (
                    <td key={s.key}>{number(p.values[s.key] ?? 0, 3)}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </details>
    </figure>
  );
}

/**
 * One value over time as a line with its area (e.g. Mbit/s of the last half hour); optionally a
 * part of it as a second line (`part`: e.g. the Mbit/s through TURN), with a legend naming both.
 */
export function LineChart({ title, description, points, testId, label, part }: { title: string; description: string; points: { label: string; value: number; part?: number }[]; testId?: string; label?: string; part?: Omit<Series, 'key'> }) {
  const id = useId();
  const max = niceMax(Math.max(0, ...points.map((p) => Math.max(p.value, p.part ?? 0))));
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (points.length > 1 ? (plotW * i) / (points.length - 1) : plotW / 2);
  const y = (v: number) => PAD.top + plotH - (plotH * v) / max;
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const area = points.length ? `${line} L${x(points.length - 1).toFixed(1)},${PAD.top + plotH} L${x(0).toFixed(1)},${PAD.top + plotH} Z` : '';
  const partLine = part ? points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(p.part ?? 0).toFixed(1)}`).join(' ') : '';
  return (
    <figure className="chart" data-testid={testId}>
      <svg className="chart-plot" viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={`${id}-t ${id}-d`} preserveAspectRatio="xMidYMid meet">
        <title id={`${id}-t`}>{title}</title>
        <desc id={`${id}-d`}>{description}</desc>
        <Axis max={max} />
        {points.length > 0 && <path d={area} className="chart-area" />}
        {points.length > 0 && <path d={line} className="chart-line" />}
        {part && points.length > 0 && <path d={partLine} className={`chart-line-part ${part.className}`} />}
        {points.map((p, i) =>
          showLabel(i, points.length) ? (
            <text key={i} x={x(i)} y={H - PAD.bottom + 16} textAnchor={i === points.length - 1 && points.length > 1 ? 'end' : i === 0 ? 'start' : 'middle'} className="chart-label">
              {p.label}
            </text>
          ) : null,
        )}
      </svg>
      {part && (
        <figcaption className="chart-legend">
          {[
            { label: label ?? title, className: 'chart-line' },
            { label: part.label, className: `chart-line-part ${part.className}` },
          ].map((s) => (
            <span key={s.className} className="legend-item">
              <svg width="16" height="12" aria-hidden="true" focusable="false">
                <line x1="0" x2="16" y1="6" y2="6" className={s.className} />
              </svg>
              {s.label}
            </span>
          ))}
        </figcaption>
      )}
    </figure>
  );
}
