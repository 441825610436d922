import { SYSTEM_ACTOR } from '../auth/actor.js';
import type { Config } from '../config/config.js';
import { commandLogLevel, createLogger } from '../logging/logger.js';
import { Repository } from '../records/repository.js';
import { startNode } from '../server/node.js';
import { seedDemoClinic } from './demo-clinic.js';
import type { AppContext } from '../server/app-context.js';
import { sql } from 'kysely';

const DEMO_ACTOR = { ...SYSTEM_ACTOR, ref: 'system:seed-demo' };

/** `serve --demo`: a newcomer sees a working clinic at once; an existing record is left alone. */
export async function seedDemoIfEmpty(node: AppContext): Promise<void> {
  const existing = await node.store.db.selectFrom('patient' as never).select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  if ((existing as { n: number }).n > 0) return;
  const repo = new Repository(node.store.db, node.audit, DEMO_ACTOR, { requestId: 'seed-demo', source: 'serve --demo' });
  process.stdout.write('seeding the demo clinic…\n');
  const summary = await seedDemoClinic(repo, { patients: 24 });
  process.stdout.write(`demo clinic: ${summary.patientIds.length} patients, ${summary.practitionerIds.length} practitioners, ${summary.appointmentIds.length} appointments on ${summary.day}\n`);
}

export async function seedDemoCommand(config: Config, options: { patients: string }): Promise<void> {
  if (!/^\d{1,5}$/.test(options.patients) || Number(options.patients) < 1) throw new Error('--patients must be a whole number from 1 to 99999');
  const node = await startNode(config, createLogger(commandLogLevel(config.logLevel), config.logFile));
  try {
    const repo = new Repository(node.store.db, node.audit, DEMO_ACTOR, { requestId: 'seed-demo', source: 'cli' });
    process.stderr.write(`seeding a demo clinic with ${options.patients} patients…\n`);
    const summary = await seedDemoClinic(repo, { patients: Number(options.patients) });
    process.stdout.write(
      `${JSON.stringify({ organizationId: summary.organizationId, practitioners: summary.practitionerIds.length, patients: summary.patientIds.length, appointments: summary.appointmentIds.length, day: summary.day })}\n`,
    );
  } finally {
    await node.stop();
  }
}
