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
    .requiredOption('--role <role>', 'patient, clinician, reception or admin')
    .option('--name <name>', 'full name (creates the Patient or Practitioner with it)')
    .action(async (options: { email: string; role: string; name?: string }) => {
      const { userAddCommand } = await import('./user-command.js');
      await userAddCommand(loadConfig(), options);
    });

  const client = program.command('client').description('OAuth 2.0 clients of the FHIR API (client credentials; SMART App Launch apps)');
  client
    .command('add')
    .description(
      'register a system client, or with --redirect-uri an app users sign in to (SMART App Launch, authorization code + PKCE); prints JSON with client_id and client_secret (shown only once; none for --public)',
    )
    .requiredOption('--name <name>', 'what the client is, e.g. "lab results interface"; an app\'s name is shown to users when they approve it')
    .requiredOption('--scopes <scopes>', 'space-separated SMART scopes: system/… for a system client ("system/Patient.read system/Observation.rs"); for an app "launch/patient patient/*.read" or user/…')
    .option('--redirect-uri <uri>', 'an exact redirect URI of the app (repeat for several): https, http on 127.0.0.1/localhost, or org.example.app:/callback', (value: string, previous: string[] = []) => [...previous, value])
    .option('--public', 'the app cannot keep a secret (runs in a browser or on a phone): PKCE alone binds its codes')
    .action(async (options: { name: string; scopes: string; redirectUri?: string[]; public?: boolean }) => {
      const { clientAddCommand } = await import('./client-command.js');
      await clientAddCommand(loadConfig(), options);
    });
  client
    .command('list')
    .description('print the registered clients as JSON (never their secrets)')
    .action(async () => {
      const { clientListCommand } = await import('./client-command.js');
      await clientListCommand(loadConfig());
    });
  client
    .command('revoke')
    .description('revoke a client and every access token it holds')
    .argument('<client_id>', 'the client to revoke')
    .action(async (clientId: string) => {
      const { clientRevokeCommand } = await import('./client-command.js');
      await clientRevokeCommand(loadConfig(), clientId);
    });

  const audit = program.command('audit').description('the tamper-evident audit trail');
  audit
    .command('archive')
    .summary('write the audit entries a retention at DATE would remove to FILE (JSON lines), removing nothing')
    .description(
      'write to FILE (JSON lines, mode 0600) the oldest audit entries, up to the last signed checkpoint before --before DATE, with their hashes and checkpoints: ' +
        'what `audit truncate --before DATE` would remove. The export is itself audited. On the embedded database the service must be stopped.',
    )
    .requiredOption('--before <date>', 'YYYY-MM-DD or an ISO date-time, at least 365 days ago')
    .argument('<file>', 'the archive to write (must not exist)')
    .action(async (file: string, options: { before: string }) => {
      const { auditArchiveCommand } = await import('./audit-command.js');
      await auditArchiveCommand(loadConfig(), file, options);
    });
  audit
    .command('truncate')
    .summary('remove audit entries older than DATE up to a signed checkpoint that then anchors the chain (retention)')
    .description(
      'remove the oldest audit entries, recorded before --before DATE, up to the last signed checkpoint before it: that checkpoint stays and anchors the rest, ' +
        'the removal is recorded and signed, and it is itself an audit entry; `audit verify` then says what was removed and when. Refuses when the range does not verify. ' +
        'TELESALUD_AUDIT_RETENTION_DAYS makes the service do this daily.',
    )
    .requiredOption('--before <date>', 'YYYY-MM-DD or an ISO date-time, at least 365 days ago')
    .option('--archive <file>', 'first write the removed range to this file (as `audit archive`); its SHA-256 goes into the signed record')
    .option('--dry-run', 'say what would be removed, remove nothing')
    .action(async (options: { before: string; archive?: string; dryRun?: boolean }) => {
      const { auditTruncateCommand } = await import('./audit-command.js');
      await auditTruncateCommand(loadConfig(), options);
    });
  audit
    .command('verify')
    .summary('check the whole audit hash chain and its signed checkpoints')
    .description(
      'check the whole audit hash chain and its signed checkpoints; exits 0 when intact, 1 naming the first entry altered, inserted or deleted. ' +
        'Checkpoint signatures are checked with TELESALUD_AUDIT_SIGNING_KEY or <data dir>/audit-signing.key (or --public-key). ' +
        'On the embedded database a running service does the walk itself, reached through its admin socket in the data dir.',
    )
    .option('--public-key <file>', 'PEM public key to check checkpoint signatures with (an auditor needs no signing key)')
    .option('--json', 'print the full report as JSON on stdout')
    .option('--prometheus-file <file>', "also write the outcome for node exporter's textfile collector (alerts in deploy/prometheus)")
    .action(async (options: { publicKey?: string; json?: boolean; prometheusFile?: string }) => {
      const { auditVerifyCommand } = await import('./audit-command.js');
      await auditVerifyCommand(loadConfig(), options);
    });

  const keys = program.command('keys').description('master key (documents, TOTP secrets) and audit signing key: status, online rotation, retirement');
  keys
    .command('status')
    .description('list the master key ids (current, old, missing) and how many documents and TOTP secrets each one wraps (on the embedded database, asks the running service if there is one)')
    .option('--json', 'print it as JSON')
    .action(async (options: { json?: boolean }) => {
      const { keysStatusCommand } = await import('./keys-command.js');
      await keysStatusCommand(loadConfig(), options);
    });
  keys
    .command('rotate')
    .description(
      'add a new master key first in the key file (the old ones stay) and re-wrap every document key and TOTP secret under it, online (on the embedded database the running service does it, through its admin socket), in batches, with progress; ' +
        'when an earlier rotation was interrupted it finishes that one instead of adding another key. Refused for a key given in TELESALUD_MASTER_KEY.',
    )
    .option('--resume', 'only finish re-wrapping under the current key; never add a key')
    .option('--batch-size <n>', 'rows per batch', '500')
    .action(async (options: { resume?: boolean; batchSize?: string }) => {
      const { keysRotateCommand } = await import('./keys-command.js');
      await keysRotateCommand(loadConfig(), options);
    });
  keys
    .command('retire')
    .description('remove every old master key from the key file; refused (naming the counts) while any document or TOTP secret still uses one')
    .action(async () => {
      const { keysRetireCommand } = await import('./keys-command.js');
      await keysRetireCommand(loadConfig());
    });
  keys
    .command('rotate-audit')
    .description('replace <data dir>/audit-signing.key with a new Ed25519 key; the old public key goes to audit-signing.previous.pub so `audit verify` still accepts its checkpoints')
    .action(async () => {
      const { keysRotateAuditCommand } = await import('./keys-command.js');
      await keysRotateAuditCommand(loadConfig());
    });

  program
    .command('backup')
    .description('write one consistent, encrypted, integrity-checked archive of the whole database (records, documents, accounts, audit) to FILE, online: on the embedded database a running service writes it through its admin socket in the data dir')
    .argument('<file>', 'the archive to create (never overwritten)')
    .action(async (file: string) => {
      const { backupCommand } = await import('./backup-command.js');
      await backupCommand(loadConfig(), file);
    });

  program
    .command('restore')
    .description('rebuild an empty PostgreSQL (TELESALUD_DATABASE_URL) or a new data dir from a backup FILE; needs the master key it was made with, and changes nothing if the file is damaged or the key is wrong')
    .argument('<file>', 'the archive to restore')
    .action(async (file: string) => {
      const { restoreCommand } = await import('./backup-command.js');
      await restoreCommand(loadConfig(), file);
    });

  const collect = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command('edge-config')
    .description(
      'write the production edge for the front tier into DIR: nginx + ModSecurity v3 + OWASP CRS (paranoia level 2), TLS 1.2/1.3, ' +
        "the allowlist of routes, methods, body types and sizes generated from this version's route table, upstreams for the nodes, and a ban list",
    )
    .argument('<dir>', 'directory for the configuration (created; nginx -c DIR/nginx.conf, or include DIR/telesalud-http.conf in an existing nginx)')
    .option('--server-name <name>', 'public host name (default: the host of TELESALUD_PUBLIC_URL)')
    .option('--listen <address>', 'nginx listen address, repeatable (default: 443 and [::]:443)', collect)
    .option('--upstream <host:port>', "a node's TLS address, repeatable (default: 127.0.0.1:TELESALUD_PORT)", collect)
    .option('--upstream-ca <file>', "CA certificate the nodes' certificates are verified against")
    .option('--upstream-name <name>', "the name in the nodes' certificates (default: --server-name)")
    .option('--cert <file>', 'certificate chain the edge serves', '/etc/telesalud/edge/fullchain.pem')
    .option('--key <file>', 'its private key', '/etc/telesalud/edge/privkey.pem')
    .option('--trusted-certificate <file>', 'issuer chain to verify stapled OCSP responses')
    .option('--resolver <address>', 'DNS resolver nginx asks for the OCSP responder')
    .option('--crs-dir <dir>', 'OWASP CRS installation', '/usr/share/modsecurity-crs')
    .option('--modules-dir <dir>', 'nginx dynamic modules', '/usr/lib/nginx/modules')
    .option('--state-dir <dir>', 'pid, logs, temp files and ModSecurity state of the edge', '/var/lib/telesalud-edge')
    .option('--user <user>', 'nginx worker user ("" to leave it out)', 'www-data')
    .option('--diagnostic-log', 'log the rule ids of each refusal (with the request line and its query string: test deployments only, never production)')
    .option('--bans-only', "only rewrite DIR's ban list from the shield's security events (then nginx -s reload)")
    .action(async (dir: string, options: import('./edge-config-command.js').EdgeConfigCommandOptions) => {
      const { edgeConfigCommand } = await import('./edge-config-command.js');
      await edgeConfigCommand(loadConfig(), dir, options);
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
