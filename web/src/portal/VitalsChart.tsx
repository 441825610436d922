import { useTranslation } from 'react-i18next';
import { formatNumber, formatShortDate } from './format.js';

export interface VitalPoint {
  when: string;
  value: number;
}
export interface VitalSeries {
  key: string;
  label: string;
  unit: string;
  points: VitalPoint[];
}

const W = 320;
const H = 160;
const PAD = { left: 40, right: 12, top: 12, bottom: 28 };

/**
 * One vital sign over time as a hand-drawn SVG line (no chart library in the patient's bundle),
 * with the same values in a table for screen readers and anyone who prefers numbers.
 */
export function VitalsChart({ series }: { series: VitalSeries }) {
  const { t } = useTranslation();
  const points = [...series.points].sort((a, b) => Date.parse(a.when) - Date.parse(b.when));
  const times = points.map((p) => Date.parse(p.when));
  const values = points.map((p) => p.value);
  const tMin = Math.min(...times);
  const tMax = Math.max(...times);
  const vMin = Math.min(...values);
  const vMax = Math.max(...values);
  const vPad = vMax === vMin ? Math.max(1, Math.abs(vMax) * 0.1) : (vMax - vMin) * 0.15;
  const lo = vMin - vPad;
  const hi = vMax + vPad;
  const x = (time: number) => (tMax === tMin ? (PAD.left + W - PAD.right) / 2 : PAD.left + ((time - tMin) / (tMax - tMin)) * (W - PAD.left - PAD.right));
  const y = (value: number) => PAD.top + (1 - (value - lo) / (hi - lo)) * (H - PAD.top - PAD.bottom);
  const line = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(times[i]!).toFixed(1)},${y(p.value).toFixed(1)}`).join(' ');
  const titleId = `vital-${series.key}-title`;
  const latest = points.at(-1);

  return (
    <figure className="vital" data-testid="vital-chart" data-code={series.key}>
      <figcaption id={titleId}>
        {series.label}
        {latest && <span className="latest"> · {t('portal.record.latest', { value: formatNumber(latest.value), unit: series.unit })}</span>}
      </figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-labelledby={titleId} className="chart">
        <line x1={PAD.left} y1={H - PAD.bottom} x2={W - PAD.right} y2={H - PAD.bottom} className="axis" />
        <line x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={H - PAD.bottom} className="axis" />
        <text x={PAD.left - 4} y={y(vMax) + 4} textAnchor="end" className="tick">{formatNumber(vMax)}</text>
        {vMin !== vMax && <text x={PAD.left - 4} y={y(vMin) + 4} textAnchor="end" className="tick">{formatNumber(vMin)}</text>}
        {points.length > 0 && <text x={PAD.left} y={H - 8} className="tick">{formatShortDate(points[0]!.when)}</text>}
        {points.length > 1 && <text x={W - PAD.right} y={H - 8} textAnchor="end" className="tick">{formatShortDate(latest!.when)}</text>}
        {points.length > 1 && <path d={line} className="line" />}
        {points.map((p, i) => (
          <circle key={`${p.when}-${i}`} cx={x(times[i]!)} cy={y(p.value)} r="3.5" className="point" />
        ))}
      </svg>
      <details>
        <summary>{t('portal.record.showTable')}</summary>
        <table data-testid="vital-table">
          <caption className="visually-hidden">{series.label}</caption>
          <thead>
            <tr>
              <th scope="col">{t('portal.record.date')}</th>
              <th scope="col">{t('portal.record.value')}</th>
            </tr>
          </thead>
          <tbody>
            {[...points].reverse().map((p, i) => (
              <tr key={`${p.when}-${i}`}>
                <td>{formatShortDate(p.when)}</td>
                <td>
                  {formatNumber(p.value)} {series.unit}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
