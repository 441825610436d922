import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
export const TEST_DATA_DIR = path.join(root, '.test-data');

/**
 * Each test run has its own directory (templates, logs), so runs side by side never touch
 * each other's files. `npm test` names it; a bare `vitest` run gets one from the global setup.
 */
export function runDir(): string {
  const dir = process.env.TELESALUD_TEST_RUN_DIR;
  if (!dir) throw new Error('TELESALUD_TEST_RUN_DIR is not set: run tests through vitest (its global setup sets it)');
  return dir;
}
export const pgliteTemplateDir = () => path.join(runDir(), 'pglite-template');
export const testLogDir = () => path.join(runDir(), 'logs');
export const pgTemplateDatabase = () => `telesalud_test_template_${path.basename(runDir()).replace(/[^a-z0-9]/gi, '_').toLowerCase()}`;
