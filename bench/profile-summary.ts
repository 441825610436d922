/**
 * `tsx bench/profile-summary.ts FILE.cpuprofile [N]`: where a V8 CPU profile (node --cpu-prof,
 * or BENCH_CPU_PROFILE_DIR of the benchmark) spent its time — self time by area (package or
 * source folder) and the top N functions by self time.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function area(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const own = /\/(src|dist|bench)\/([^/]+)/.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  return url;
}

/**
 * Only the samples taken between `fromUs` and `toUs` (the monotonic clock in microseconds, as
 * `process.hrtime.bigint() / 1000n` reads it in any process of the machine: V8 stamps its
 * profiles with the same clock), e.g. a benchmark's measured seconds without start-up and warm-up.
 */
export interface SampleWindow {
  fromUs: number;
  toUs: number;
}

/** The profile with only the samples inside the windows (timeDeltas of the others set to 0). */
function within(profile: Profile, windows: SampleWindow[] | undefined): Profile {
  if (!windows) return profile;
  let at = profile.startTime;
  const timeDeltas = profile.timeDeltas.map((delta) => {
    at += delta;
    return windows.some((w) => at >= w.fromUs && at <= w.toUs) ? delta : 0;
  });
  return { ...profile, timeDeltas };
}

export function summarize(whole: Profile, top = 25, windows?: SampleWindow[]): string {
  const profile = within(whole, windows);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of self) {
    const { callFrame: f } = byId.get(id)!;
    const a = area(f.url, f.functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const key = `${f.functionName || '(anonymous)'}  ${f.url.replace(/^.*\/(node_modules|src|dist|bench)\//, '$1/')}:${f.lineNumber + 1}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  // Inclusive time of the project's own functions and of the libraries' entry points it calls.
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const inclusive = new Map<string, number>();
  profile.samples.forEach((leaf, i) => {
    const seen = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!/\/(src|dist|bench)\//.test(f.url) || /node_modules/.test(f.url)) continue;
      const key = `${f.functionName || '(anonymous)'}  ${f.url.replace(/^.*\/(src|dist|bench)\//, '$1/')}:${f.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
    }
  });
  const idle = areas.get('(idle)') ?? 0;
  // Shares of the busy time: idle is left out.
  const pct = (us: number) => `${((100 * us) / (total - idle)).toFixed(1).padStart(5)}%`;
  const lines = [`total sampled ${(total / 1e6).toFixed(2)} s, of which busy ${((total - idle) / 1e6).toFixed(2)} s`, '', 'self time by area (share of busy time):'];
  for (const [a, us] of [...areas].filter(([a]) => a !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${a}`);
  lines.push('', 'top functions by self time:');
  for (const [f, us] of [...functions].filter(([f]) => !f.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${f}`);
  lines.push('', "project functions by inclusive time (synchronous stacks only: time after an await counts where it resumes):");
  for (const [f, us] of [...inclusive].sort((x, y) => y[1] - x[1]).slice(0, top)) lines.push(`  ${pct(us)}  ${f}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: tsx bench/profile-summary.ts FILE.cpuprofile [N]');
    process.exit(2);
  }
  console.log(summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25)));
}
