import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { loadConfig, type Config } from '../config/config.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { pino } from 'pino';
import { buildApp } from '../server/app.js';
import { startNode } from '../server/node.js';
import type { AppContext } from '../server/app-context.js';
import { adminQuery, databaseUrl } from './global-setup.js';
import { pgliteTemplateDir, pgTemplateDatabase, testLogDir } from './paths.js';

/** Debug-level logs into the run's log directory, where the log scan reads them. */
export function testLogger(): Logger {
  return createLogger('debug', pino.destination({ dest: path.join(testLogDir(), `${process.pid}.log`), sync: true, append: true, mkdir: true }));
}

export type StoreKind = 'pglite' | 'postgres';

export interface TestNode {
  app: FastifyInstance;
  ctx: AppContext;
  token: string;
  config: Config;
  /** inject() with the admin token already set. */
  request(options: InjectOptions): Promise<LightMyRequestResponse>;
  stop(): Promise<void>;
}

/** Which stores this run covers: PGlite always; real PostgreSQL when the run points at one. */
export const STORE_KINDS: StoreKind[] = process.env.TELESALUD_TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];

/**
 * A node on its own fresh, migrated database (a copy of the run's template), logging at
 * debug level into the run's log directory so the log scan sees everything tests make it say.
 */
export async function startTestNode(kind: StoreKind = 'pglite', env: Record<string, string> = {}): Promise<TestNode> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-test-'));
  let dropDatabase = async () => undefined as void;
  const token = randomBytes(24).toString('base64url');
  // Tests read the trail straight from the database right after an answer, so their nodes commit
  // audit entries before answering; src/audit/audit-behind.test.ts covers the default, `behind`.
  const testEnv: Record<string, string> = { TELESALUD_DATA_DIR: dataDir, TELESALUD_ADMIN_TOKEN: token, TELESALUD_PORT: '0', TELESALUD_HOST: '127.0.0.1', TELESALUD_AUDIT_COMMIT: 'before-answer', ...env };
  if (kind === 'pglite') {
    await cp(pgliteTemplateDir(), path.join(dataDir, 'pg'), { recursive: true });
  } else {
    const base = process.env.TELESALUD_TEST_DATABASE_URL;
    if (!base) throw new Error('TELESALUD_TEST_DATABASE_URL is not set');
    const name = `telesalud_test_${randomBytes(6).toString('hex')}`;
    await adminQuery(base, `create database ${name} template ${pgTemplateDatabase()}`);
    testEnv.TELESALUD_DATABASE_URL = databaseUrl(base, name);
    dropDatabase = () => adminQuery(base, `drop database if exists ${name} with (force)`);
  }
  const config = loadConfig(testEnv);
  await mkdir(testLogDir(), { recursive: true });
  const logger = testLogger();
  const ctx = await startNode(config, logger);
  const app = await buildApp(ctx);
  await app.ready();
  return {
    app,
    ctx,
    token,
    config,
    request: (options) => app.inject({ ...options, headers: { authorization: `Bearer ${token}`, ...(options.headers ?? {}) } }),
    async stop() {
      await app.close();
      await ctx.stop();
      await dropDatabase();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
