import type { Config } from '../config/config.js';
import { openStore } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { lockDataDir } from '../server/data-dir-lock.js';

export async function migrateCommand(config: Config): Promise<void> {
  const release = config.databaseUrl ? async () => undefined : await lockDataDir(config.dataDir);
  const store = await openStore(config);
  try {
    process.stderr.write(`migrating ${store.kind} database…\n`);
    const applied = await migrateToLatest(store.db);
    process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'already up to date\n');
  } finally {
    await store.close();
    await release();
  }
}
