/**
 * Bench only: `telesalud serve` with the audit trail switched off, the baseline of the
 * "audit on / audit off" scenario pair in bench/run.ts (the issue asks that audit cost less
 * than 10% of FHIR read throughput). Started by bench/server-process.ts like bin/telesalud.js,
 * on the same store as the real server. Nothing in the product CLI can reach this file: a
 * production node always audits.
 *
 * AuditLog's appends become no-ops answering at once (as a recorded entry would), so the
 * difference to the real server is exactly what recording costs: building the entries, the
 * chain append and the wait for its commit. Checkpoints follow appends, so none is written.
 */
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { REPO_DIR } from './build.js';

const dist = (relative: string) => pathToFileURL(path.join(REPO_DIR, 'dist', relative)).href;
const { AuditLog } = (await import(dist('audit/audit-log.js'))) as typeof import('../src/audit/audit-log.js');
const { main } = (await import(dist('cli/main.js'))) as typeof import('../src/cli/main.js');

AuditLog.prototype.record = () => Promise.resolve();
AuditLog.prototype.recordIn = () => Promise.resolve();

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`audit-off server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
