import type { LoadResult } from './load.js';

/** Plain-text tables and ratios for the benchmark's output. */

export const int = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
export const ms = (n: number): string => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0)) : '—');
export const ratio = (n: number): string => (Number.isFinite(n) ? `${n < 10 ? n.toFixed(2) : n.toFixed(1)}×` : '—');
const share = (n: number | undefined): string => (n === undefined ? '—' : n.toFixed(2));
const perRequest = (cores: number | undefined, rps: number): string => (cores === undefined || !(rps > 0) ? '—' : int((cores / rps) * 1e6));

export function table(headers: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    '  ' + cells.map((c, i) => (rightAligned[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), '  ' + widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Other processes' CPU above this (in cores) makes a scenario's figures suspect. */
export const DISTURBED_CORES = 0.25;

export interface Targets {
  /** Requests per second at least this. */
  minRps?: number;
  /** p99 latency under this many milliseconds. */
  maxP99Ms?: number;
  /** Requests per second at least `min` times those of the scenario `key` (named `label`) in the same run. */
  minShareOf?: { key: string; label: string; min: number };
}

export interface ScenarioOutcome {
  key: string;
  label: string;
  targets: Targets;
  result: LoadResult;
}

/** CPU (in cores) that neither the server, its PostgreSQL nor the load generator used. */
export function otherCores(r: LoadResult): number {
  return r.cpu.machine === undefined ? 0 : Math.max(0, r.cpu.machine - (r.cpu.server ?? 0) - (r.cpu.postgres ?? 0) - r.cpu.bench);
}

export function isDisturbed(r: LoadResult): boolean {
  return otherCores(r) > DISTURBED_CORES;
}

export function hadErrors(r: LoadResult): boolean {
  return r.non2xx > 0 || r.errors > 0 || r.timeouts > 0;
}

export function scenarioTable(outcomes: ScenarioOutcome[], cores: number): string {
  const rows = outcomes.map(({ label, result: r }) => {
    const idle = r.cpu.machine === undefined ? undefined : Math.max(0, cores - r.cpu.machine);
    // Whatever else ran on the machine meanwhile: a large share means the figures are disturbed.
    const other = r.cpu.machine === undefined ? undefined : otherCores(r);
    return [
      label,
      int(r.requestsPerSecond),
      ms(r.p50),
      ms(r.p90),
      ms(r.p99),
      ms(r.max),
      `${int(r.non2xx + r.errors + r.timeouts)}${hadErrors(r) ? ' ⚠' : ''}`,
      `${share(r.cpu.server)} / ${share(r.cpu.postgres)} / ${share(r.cpu.bench)} / ${share(other)} / ${share(idle)}`,
      `${perRequest(r.cpu.server, r.requestsPerSecond)} / ${perRequest(r.cpu.postgres, r.requestsPerSecond)} / ${perRequest(r.cpu.bench, r.requestsPerSecond)}`,
    ];
  });
  return table(['scenario', 'req/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'non-2xx', 'CPU cores: server / postgres / load gen / other / idle', 'CPU µs per request: server / postgres / load gen'], rows, [false, true, true, true, true, true, true, false, false]);
}

/** One line per target: the figure, the target, the ratio, and whether it is met. */
export function targetLines(outcomes: ScenarioOutcome[]): string[] {
  const lines: string[] = [];
  const width = Math.max(...outcomes.map((o) => o.label.length));
  for (const { label, targets, result: r } of outcomes) {
    const parts: string[] = [];
    if (targets.minShareOf !== undefined) {
      const x = shareOf(outcomes, r, targets.minShareOf.key);
      parts.push(`req/s ${int(r.requestsPerSecond)} = ${ratio(x)} ${targets.minShareOf.label} (≥ ${targets.minShareOf.min.toFixed(2)}×) ${x >= targets.minShareOf.min ? '✓' : '✗'}`);
    }
    if (targets.minRps !== undefined) {
      const x = r.requestsPerSecond / targets.minRps;
      parts.push(`req/s ${int(r.requestsPerSecond)} = ${ratio(x)} target (≥ ${int(targets.minRps)}) ${x >= 1 ? '✓' : '✗'}`);
    }
    if (targets.maxP99Ms !== undefined) {
      const x = r.p99 / targets.maxP99Ms;
      parts.push(`p99 ${ms(r.p99)} ms = ${ratio(x)} limit (< ${targets.maxP99Ms} ms) ${x < 1 ? '✓' : '✗'}`);
    }
    if (isDisturbed(r)) parts.push(`⚠ disturbed: other processes used ${otherCores(r).toFixed(2)} cores during the run`);
    if (hadErrors(r)) parts.push(`⚠ ${int(r.non2xx)} non-2xx, ${int(r.errors)} errors, ${int(r.timeouts)} timeouts: figures not valid (${Object.entries(r.statusCodes).map(([c, n]) => `${c}×${n}`).join(', ')})`);
    if (parts.length === 0) parts.push('no target (informative)');
    parts.forEach((p, i) => lines.push(`  ${(i === 0 ? label : '').padEnd(width)}  ${p}`));
  }
  return lines;
}

export function targetsMet(outcomes: ScenarioOutcome[]): boolean {
  return outcomes.every(({ targets, result: r }) =>
    !hadErrors(r) &&
    (targets.minRps === undefined || r.requestsPerSecond >= targets.minRps) &&
    (targets.maxP99Ms === undefined || r.p99 < targets.maxP99Ms) &&
    (targets.minShareOf === undefined || shareOf(outcomes, r, targets.minShareOf.key) >= targets.minShareOf.min),
  );
}

/** This result's requests/s over those of scenario `key` in the same outcomes (NaN when that one did not run). */
function shareOf(outcomes: ScenarioOutcome[], r: LoadResult, key: string): number {
  const other = outcomes.find((o) => o.key === key)?.result;
  return other ? r.requestsPerSecond / other.requestsPerSecond : Number.NaN;
}
