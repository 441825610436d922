import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { openStore, type Store } from '../db/database.js';
import { lockDataDir } from '../server/data-dir-lock.js';

/**
 * The store for a command run beside (or instead of) the service. PostgreSQL is shared, so
 * commands work while nodes run. PGlite admits one process per data dir: the command takes the
 * data-dir lock and says so plainly when a running service holds it (backup, audit verify and
 * keys go through that service's admin socket instead: admin-socket-client.ts).
 */
export async function openCommandStore(config: Config, commandName: string, options: { ifMissing?: string }): Promise<Store & { release(): Promise<void> }> {
  let release = async () => undefined as void;
  if (!config.databaseUrl) {
    if (options.ifMissing !== undefined && !existsSync(path.join(config.dataDir, 'pg', 'PG_VERSION'))) {
      throw new Error(`no database in ${config.dataDir}: ${options.ifMissing} (set TELESALUD_DATA_DIR or TELESALUD_DATABASE_URL)`);
    }
    try {
      release = await lockDataDir(config.dataDir);
    } catch (err) {
      const pid = /process (\d+)/.exec((err as Error).message)?.[1];
      if (!pid) throw err;
      throw new Error(`the telesalud service (pid ${pid}) is running on ${config.dataDir} and holds its embedded database: stop it, then run ${commandName} again`);
    }
  }
  try {
    const store = await openStore(config);
    return {
      ...store,
      async release() {
        await store.close();
        await release();
      },
      async close() {
        await store.close();
        await release();
      },
    };
  } catch (err) {
    await release();
    throw err;
  }
}
