import autocannon, { type Result } from 'autocannon';
import { cpuShares, sampleCpu, type CpuShares } from './cpu-meter.js';

export interface LoadOptions {
  url: string;
  token: string;
  connections: number;
  seconds: number;
  /** The next request's path and query; called once per request. */
  nextPath: () => string;
  /** Measured for CPU shares; undefined leaves the server share out. */
  serverPid?: number;
  /** PostgreSQL database the server uses: its backends' CPU is the "postgres" share. */
  database?: string;
}

export interface LoadResult {
  seconds: number;
  /** 2xx answers. */
  ok: number;
  requestsPerSecond: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  cpu: CpuShares;
}

/**
 * One closed-loop load run: `connections` keep-alive HTTPS connections, each sending its next
 * request as soon as the previous answer arrived. Latencies of 2xx answers are kept exactly
 * (autocannon's own histogram rounds to whole milliseconds, too coarse for a 10 ms budget).
 */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  const before = sampleCpu(options.serverPid, options.database);
  const result = await new Promise<Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        timeout: 10,
        headers: { authorization: `Bearer ${options.token}`, accept: 'application/fhir+json' },
        // autocannon never verifies certificates; the smoke checks did, with the server's own.
        tlsOptions: { rejectUnauthorized: false },
        requests: [
          {
            method: 'GET',
            setupRequest: (request) => {
              request.path = options.nextPath();
              return request;
            },
          },
        ],
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode < 200 || statusCode > 299) return;
      if (count === latencies.length) {
        const bigger = new Float64Array(latencies.length * 2);
        bigger.set(latencies);
        latencies = bigger;
      }
      latencies[count++] = responseTime;
    });
  });
  const after = sampleCpu(options.serverPid, options.database);
  const sorted = latencies.subarray(0, count).sort();
  const at = (q: number) => (count === 0 ? Number.NaN : sorted[Math.min(count - 1, Math.ceil(q * count) - 1)]!);
  const statusCodes: Record<string, number> = {};
  for (const [code, { count: n }] of Object.entries(result.statusCodeStats)) statusCodes[code] = n;
  // autocannon's own run time (excludes connecting); the CPU shares use the wall time around it.
  const seconds = result.duration > 0 ? result.duration : (after.at - before.at) / 1000;
  return {
    seconds,
    ok: result['2xx'],
    requestsPerSecond: result['2xx'] / seconds,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: count ? sorted[count - 1]! : Number.NaN,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    cpu: cpuShares(before, after),
  };
}
