import { createHash } from 'node:crypto';

/**
 * The same fixed piece of work timed on this host: hashing, JSON and object churn, the mix a
 * node does per request. These machines' speed changes by 2× and more within an hour (other
 * tenants), so absolute figures of two runs compare only once scaled by this; ratios measured
 * within one run don't need it. Printed at the start and the end of every bench run.
 */
export function hostSpeedMs(): number {
  const payload = JSON.stringify({ resourceType: 'Patient', id: 'calibration', name: [{ family: 'Calibración', given: ['Ana', 'María'] }], birthDate: '1970-01-01' });
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    let sink = 0;
    for (let i = 0; i < 20_000; i++) {
      const parsed = JSON.parse(payload) as { id: string };
      parsed.id = `calibration-${i}`;
      sink += createHash('sha256').update(JSON.stringify(parsed)).digest()[0]!;
    }
    if (sink < 0) throw new Error('unreachable');
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

export function hostSpeedLine(when: string): string {
  return `host speed ${when}: ${hostSpeedMs().toFixed(1)} ms for the calibration work (lower is faster; compare absolute figures of two runs only in proportion to it)`;
}
