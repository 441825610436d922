/**
 * `tsx bench/profile-compare.ts DIR_A MS_A DIR_B MS_B [N]`: where two configurations' nodes spend
 * their CPU per operation, side by side. Each DIR holds the nodes' .cpuprofile files and the
 * window files bench/farm.ts writes beside them (BENCH_CPU_PROFILE_DIR); MS is that
 * configuration's nodes CPU ms per operation as the benchmark measured it (from /proc). Each
 * area's share of the profiles' busy samples (all of a configuration's nodes together, measured
 * windows only) times MS gives its ms per operation; the areas that grew most come first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { area, type Profile, type SampleWindow } from './profile-summary.js';

function busyByKey(dir: string, key: (url: string, fn: string) => string): Map<string, number> {
  const windows = JSON.parse(readFileSync(path.join(dir, 'measured-windows.json'), 'utf8')) as SampleWindow[];
  const totals = new Map<string, number>();
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Profile;
    const byId = new Map(profile.nodes.map((n) => [n.id, n]));
    let at = profile.startTime;
    profile.samples.forEach((id, i) => {
      at += profile.timeDeltas[i] ?? 0;
      if (!windows.some((w) => at >= w.fromUs && at <= w.toUs)) return;
      const f = byId.get(id)!.callFrame;
      if (f.functionName === '(idle)') return;
      const k = key(f.url, f.functionName);
      totals.set(k, (totals.get(k) ?? 0) + (profile.timeDeltas[i] ?? 0));
    });
  }
  return totals;
}

function perOperation(dir: string, msPerOp: number, key: (url: string, fn: string) => string): Map<string, number> {
  const busy = busyByKey(dir, key);
  const sum = [...busy.values()].reduce((a, b) => a + b, 0);
  return new Map([...busy].map(([k, us]) => [k, (us / sum) * msPerOp]));
}

const [dirA, msA, dirB, msB, top] = process.argv.slice(2);
if (!dirA || !msA || !dirB || !msB) {
  console.error('usage: tsx bench/profile-compare.ts DIR_A MS_A DIR_B MS_B [N]');
  process.exit(2);
}
for (const [title, key] of [
  ['by area', (url: string, fn: string) => area(url, fn)],
  ['by function (self time)', (url: string, fn: string) => `${fn || '(anonymous)'}  ${url.replace(/^.*\/(node_modules|src|dist|bench)\//, '$1/')}`],
] as const) {
  const a = perOperation(dirA, Number(msA), key);
  const b = perOperation(dirB, Number(msB), key);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => (b.get(y) ?? 0) - (a.get(y) ?? 0) - ((b.get(x) ?? 0) - (a.get(x) ?? 0)));
  console.log(`\n${title}: ms per operation, A → B (B − A), largest growth first`);
  for (const k of keys.slice(0, Number(top ?? 25))) {
    const x = a.get(k) ?? 0;
    const y = b.get(k) ?? 0;
    console.log(`  ${x.toFixed(3).padStart(7)} → ${y.toFixed(3).padStart(7)}  (${(y - x >= 0 ? '+' : '') + (y - x).toFixed(3)})  ${k}`);
  }
}
