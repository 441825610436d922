import { SYSTEM_ACTOR } from '../auth/actor.js';
import type { Config } from '../config/config.js';
import { startCommandNode } from '../cli/command-node.js';
import { Repository } from '../records/repository.js';
import { seedDemoClinic } from './demo-clinic.js';
import type { AppContext } from '../server/app-context.js';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { sql } from 'kysely';
import { createAccount } from '../auth/accounts/account-service.js';
import { createSecretFileOnce } from '../config/secret-file.js';

const DEMO_ACTOR = { ...SYSTEM_ACTOR, ref: 'system:seed-demo' };

/** `serve --demo`: a newcomer sees a working clinic at once; an existing record is left alone. */
export async function seedDemoIfEmpty(node: AppContext): Promise<void> {
  const existing = await node.store.db.selectFrom('patient' as never).select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow();
  if ((existing as { n: number }).n > 0) return;
  const repo = new Repository(node.store.db, node.audit, DEMO_ACTOR, { requestId: 'seed-demo', source: 'serve --demo' });
  process.stdout.write('seeding the demo clinic…\n');
  const summary = await seedDemoClinic(repo, { patients: 24 });
  process.stdout.write(`demo clinic: ${summary.patientIds.length} patients, ${summary.practitionerIds.length} practitioners, ${summary.appointmentIds.length} appointments on ${summary.day}\n`);
  const demo = await createDemoAccounts(node, repo, summary.appointmentIds);
  const base = node.config.publicUrl;
  process.stdout.write(
    [
      `demo accounts (also in ${demo.file}, readable by you only):`,
      `  clinician  ${demo.clinician.email}  password ${demo.clinician.password}  authenticator (TOTP) secret ${demo.clinician.totpSecret}`,
      `  patient    ${demo.patient.email}  password ${demo.patient.password}`,
      `  sign in at ${base}/sign-in, then both open ${base}/consult/${demo.appointmentId}`,
      '',
    ].join('\n'),
  );
}

/**
 * A clinician and a patient of the demo clinic who can sign in, linked to the Practitioner and
 * Patient of one of today's telehealth appointments, so a newcomer can hold a consultation with
 * two browsers. Random passwords, shown once on the terminal and kept in a 0600 file of the
 * data dir; never logged.
 */
async function createDemoAccounts(node: AppContext, repo: Repository, appointmentIds: string[]) {
  let chosen: { id: string; patient: string; practitioner: string } | undefined;
  for (const id of appointmentIds) {
    const appointment = (await repo.read('Appointment', id)) as { appointmentType?: { coding?: { code?: string }[] }; participant?: { actor?: { reference?: string } }[] };
    const refs = (appointment.participant ?? []).map((p) => p.actor?.reference ?? '');
    const patient = refs.find((r) => r.startsWith('Patient/'));
    const practitioner = refs.find((r) => r.startsWith('Practitioner/'));
    if (appointment.appointmentType?.coding?.some((c) => c.code === 'telehealth') && patient && practitioner) {
      chosen = { id, patient, practitioner };
      break;
    }
  }
  if (!chosen) throw new Error('the demo clinic has no telehealth appointment to link demo accounts to');
  const password = () => `demo-${randomBytes(12).toString('base64url')}`;
  const clinicianPassword = password();
  const patientPassword = password();
  const clinician = await createAccount(node.store.db, repo, node.keyRing, { email: 'clinician@demo.telesalud.example', role: 'clinician', password: clinicianPassword, fhirRef: chosen.practitioner });
  await createAccount(node.store.db, repo, node.keyRing, { email: 'patient@demo.telesalud.example', role: 'patient', password: patientPassword, fhirRef: chosen.patient });
  const accounts = {
    clinician: { email: clinician.email, password: clinicianPassword, totpSecret: clinician.totpSecret ?? '' },
    patient: { email: 'patient@demo.telesalud.example', password: patientPassword },
    appointmentId: chosen.id,
  };
  const file = path.join(node.config.dataDir, 'demo-accounts.json');
  await createSecretFileOnce(node.config.dataDir, file, `${JSON.stringify(accounts, null, 2)}\n`);
  return { ...accounts, file };
}

export async function seedDemoCommand(config: Config, options: { patients: string }): Promise<void> {
  if (!/^\d{1,5}$/.test(options.patients) || Number(options.patients) < 1) throw new Error('--patients must be a whole number from 1 to 99999');
  const node = await startCommandNode(config);
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
