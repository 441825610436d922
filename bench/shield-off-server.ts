/**
 * Bench only: `telesalud serve` with TELESALUD_SHIELD=off, the baseline of the shield's cost in
 * bench/shield.ts. bench/server-process.ts starts each server with only its own TELESALUD_*
 * settings, so the switch is made here, in the child, before the CLI reads its configuration.
 * A node with the shield off is unprotected: nothing in the product starts this file.
 */
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { REPO_DIR } from './build.js';

process.env.TELESALUD_SHIELD = 'off';
const { main } = (await import(pathToFileURL(path.join(REPO_DIR, 'dist', 'cli', 'main.js')).href)) as typeof import('../src/cli/main.js');

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`shield-off server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
