import { Command, CommanderError } from 'commander';
import { ConfigError, loadConfig } from '../config/config.js';
import { VERSION } from '../server/version.js';

/**
 * `telesalud <command>`. Each command exits non-zero with a one-line reason on bad input.
 * Modules load per command so `--help` stays instant.
 */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('telesalud')
    .description('Self-hostable telehealth: clinical record, video consultations and security edge in one service.\nConfigured by TELESALUD_* environment variables (see README).')
    .version(VERSION)
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text.split('\n')[0] + '\n') });

  program
    .command('serve')
    .description('run a telesalud node: HTTPS on TELESALUD_PORT (default 8443), migrating the database first')
    .option('--demo', 'seed the demo clinic first when the record is empty')
    .action(async (options: { demo?: boolean }) => {
      const { serve } = await import('../server/serve.js');
      await serve(loadConfig(), { demo: options.demo === true });
    });

  program
    .command('migrate')
    .description('apply pending database migrations and exit (safe while other nodes start: runs under an advisory lock)')
    .action(async () => {
      const { migrateCommand } = await import('./migrate-command.js');
      await migrateCommand(loadConfig());
    });

  program
    .command('seed-demo')
    .description('fill the record with a demo clinic: synthetic patients, practitioners and a day of telehealth appointments')
    .option('--patients <n>', 'number of demo patients', '24')
    .action(async (options: { patients: string }) => {
      const { seedDemoCommand } = await import('../demo/seed-demo-command.js');
      await seedDemoCommand(loadConfig(), options);
    });

  const user = program.command('user').description('manage accounts');
  user
    .command('add')
    .description('create an account (password on stdin); prints JSON with id, email, role, patientId or practitionerId, and totpSecret when the role requires MFA')
    .requiredOption('--email <email>', 'sign-in email')
    .requiredOption('--role <role>', 'patient, clinician or admin')
    .option('--name <name>', 'full name (creates the Patient or Practitioner with it)')
    .action(async (options: { email: string; role: string; name?: string }) => {
      const { userAddCommand } = await import('./user-command.js');
      await userAddCommand(loadConfig(), options);
    });

  program
    .command('audit')
    .description('the tamper-evident audit trail')
    .command('verify')
    .summary('check the whole audit hash chain and its signed checkpoints')
    .description(
      'check the whole audit hash chain and its signed checkpoints; exits 0 when intact, 1 naming the first entry altered, inserted or deleted. ' +
        'Checkpoint signatures are checked with TELESALUD_AUDIT_SIGNING_KEY or <data dir>/audit-signing.key (or --public-key). ' +
        'On the embedded database the service must be stopped.',
    )
    .option('--public-key <file>', 'PEM public key to check checkpoint signatures with (an auditor needs no signing key)')
    .option('--json', 'print the full report as JSON on stdout')
    .action(async (options: { publicKey?: string; json?: boolean }) => {
      const { auditVerifyCommand } = await import('./audit-command.js');
      await auditVerifyCommand(loadConfig(), options);
    });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    const message = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`telesalud: ${message}\n`);
    return 1;
  }
}
