import path from 'node:path';

const root = path.resolve(import.meta.dirname, '../..');
export const TEST_DATA_DIR = path.join(root, '.test-data');
export const PGLITE_TEMPLATE_DIR = path.join(TEST_DATA_DIR, 'pglite-template');
export const TEST_LOG_DIR = path.join(TEST_DATA_DIR, 'logs');
export const PG_TEMPLATE_DATABASE = 'telesalud_test_template';
