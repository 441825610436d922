import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Where the machine's CPU goes during a scenario, from /proc (Linux): the server process,
 * the PostgreSQL processes, the load generator (this process) and the idle remainder.
 * On other systems every figure is undefined and the report leaves the column out.
 */

export interface CpuSample {
  at: number;
  server: number | undefined;
  postgres: Map<number, number> | undefined;
  bench: number;
  machineBusy: number | undefined;
  machineTotal: number | undefined;
}

export interface CpuShares {
  /** Fractions of one core (1 = one core busy for the whole interval). */
  server: number | undefined;
  postgres: number | undefined;
  bench: number;
  /** Busy cores over the whole machine (all processes). */
  machine: number | undefined;
}

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of one process in seconds. */
function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields after it are space separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds of the live PostgreSQL processes that serve the benchmark, by pid (backends come
 * and go): the shared background processes (WAL writer, checkpointer, autovacuum …) and the
 * backends connected to `database`; backends of other databases count as other work.
 */
function postgresCpuSeconds(database: string | undefined): Map<number, number> | undefined {
  const byPid = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return undefined;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
      // Backend titles read "postgres: 15/main: user database 127.0.0.1(port) state".
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const backend = /^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])/.exec(title);
      if (backend && backend[1] !== database) continue;
    } catch {
      continue;
    }
    const seconds = processCpuSeconds(Number(entry));
    if (seconds !== undefined) byPid.set(Number(entry), seconds);
  }
  return byPid.size ? byPid : undefined;
}

/** CPU used between two samples by the processes seen in the second (a new one counts from 0). */
function postgresDelta(before: Map<number, number> | undefined, after: Map<number, number> | undefined): number | undefined {
  if (!after) return undefined;
  let total = 0;
  for (const [pid, seconds] of after) total += seconds - (before?.get(pid) ?? 0);
  return Math.max(0, total);
}

function machineSeconds(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((a, b) => a + b, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: (total - idle) / ticksPerSecond(), total: total / ticksPerSecond() };
  } catch {
    return undefined;
  }
}

export function sampleCpu(serverPid: number | undefined, database?: string): CpuSample {
  const usage = process.cpuUsage();
  const machine = machineSeconds();
  return {
    at: performance.now(),
    server: serverPid === undefined ? undefined : processCpuSeconds(serverPid),
    // PGlite runs inside the server process: no PostgreSQL share then.
    postgres: database === undefined ? undefined : postgresCpuSeconds(database),
    bench: (usage.user + usage.system) / 1e6,
    machineBusy: machine?.busy,
    machineTotal: machine?.total,
  };
}

export function cpuShares(before: CpuSample, after: CpuSample): CpuShares {
  const seconds = (after.at - before.at) / 1000;
  const share = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : (b - a) / seconds);
  return {
    server: share(before.server, after.server),
    postgres: after.postgres ? postgresDelta(before.postgres, after.postgres)! / seconds : undefined,
    bench: (after.bench - before.bench) / seconds,
    machine: share(before.machineBusy, after.machineBusy),
  };
}

/** Busy cores of the whole machine over the next `ms` milliseconds (undefined off Linux). */
export async function machineBusyCores(ms: number): Promise<number | undefined> {
  const before = machineSeconds();
  const started = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const after = machineSeconds();
  if (!before || !after) return undefined;
  return (after.busy - before.busy) / ((performance.now() - started) / 1000);
}

/**
 * Waits until the machine is quiet (other work below `threshold` cores for one second), at
 * most `maxSeconds`. Returns the busy cores last seen, so the report can say it was disturbed.
 */
export async function waitForQuiet(threshold: number, maxSeconds: number): Promise<number | undefined> {
  const deadline = performance.now() + maxSeconds * 1000;
  for (;;) {
    const busy = await machineBusyCores(1000);
    if (busy === undefined || busy < threshold || performance.now() >= deadline) return busy;
  }
}
