import type { Config } from '../config/config.js';
import { loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { rotateAuditSigningKey } from '../keys/audit-key-rotation.js';
import { keyUsage, unknownKeys, type KeyUse } from '../keys/key-usage.js';
import { DEFAULT_BATCH_SIZE, retireUnusedKeys, rotatableKeyFile, rotateMasterKey, type RetireResult, type RewrapProgress, type RotateResult } from '../keys/master-key-rotation.js';
import { callAdminSocket, runningServiceSocket } from './admin-socket-client.js';
import { openCommandStore } from './command-store.js';
import { keysStatusOf, printKeysStatus, type KeysStatus } from './keys-status.js';
import { percent, progressLine } from './progress.js';

function masterKeyRing(config: Config): Promise<KeyRing> {
  return loadKeyRing({ ...(config.masterKey ? { masterKey: config.masterKey } : {}), ...(config.masterKeyFile ? { masterKeyFile: config.masterKeyFile } : {}), dataDir: config.dataDir, createIfMissing: false });
}

const count = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;

/** `telesalud keys status`: every key id the ring holds or a row names, and what each one wraps. */
export async function keysStatusCommand(config: Config, options: { json?: boolean }): Promise<void> {
  const socket = await runningServiceSocket(config, 'keys status');
  if (socket) return printKeysStatus(await callAdminSocket<KeysStatus>(socket, { command: 'keys-status' }), options);
  const ring = await masterKeyRing(config);
  const store = await openCommandStore(config, 'keys status', { ifMissing: 'no database yet' });
  try {
    printKeysStatus(keysStatusOf(ring, await keyUsage(store.db, ring)), options);
  } finally {
    await store.close();
  }
}

/** `telesalud keys rotate [--resume]`. */
export async function keysRotateCommand(config: Config, options: { resume?: boolean; batchSize?: string }): Promise<void> {
  const batchSize = options.batchSize === undefined ? DEFAULT_BATCH_SIZE : Number(options.batchSize);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new Error('--batch-size must be a whole number from 1 to 10000');
  const progress = progressLine();
  const showProgress = (p: RewrapProgress) => progress.update(`re-wrapping ${p.phase === 'documents' ? 'document keys' : 'TOTP secrets'}: ${p.done.toLocaleString('en')} / ${p.total.toLocaleString('en')} (${percent(p.done, p.total)})`);
  const socket = await runningServiceSocket(config, 'keys rotate');
  if (socket) {
    // The node rotates its own key ring: it seals under the new key from the moment the file is written.
    // Ctrl-C hangs up; the node stops after the batch in hand and `--resume` finishes.
    const result = await callAdminSocket<RotateResult>(socket, { command: 'keys-rotate', resume: options.resume === true, batchSize }, { onProgress: showProgress }).finally(progress.end);
    return reportRotation(result);
  }
  const ring = await masterKeyRing(config);
  rotatableKeyFile(ring); // refuse env-supplied keys before touching the database
  const store = await openCommandStore(config, 'keys rotate', { ifMissing: 'start the service once first' });
  // Ctrl-C finishes the batch in hand; `--resume` picks up from the rows left.
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const result = await rotateMasterKey(store, ring, {
      resume: options.resume === true,
      batchSize,
      signal: abort.signal,
      onProgress: showProgress,
    }).finally(progress.end);
    reportRotation(result);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await store.close();
  }
}

/** The summary of a rotation (stdout) and its warnings (stderr); throws when it was interrupted. */
export function reportRotation(r: RotateResult): void {
  // A node of the previous release answers without `outbox` over the admin socket.
  const outbox = (r as Partial<RotateResult>).outbox ?? { rewrapped: 0, remaining: 0 };
  // Queued e-mails named only when there are some: they leave within minutes or hours, so often there are none.
  const rewrapped =
    outbox.rewrapped > 0
      ? `${count(r.documents, 'document key')}, ${count(r.totpSecrets, 'TOTP secret')} and ${count(outbox.rewrapped, 'queued e-mail')}`
      : `${count(r.documents, 'document key')} and ${count(r.totpSecrets, 'TOTP secret')}`;
  const done = `re-wrapped ${rewrapped} under ${r.targetKekId} in ${count(r.batches, 'batch', 'batches')} (${r.seconds.toFixed(1)} s)`;
  if (r.stopped) throw new Error(`interrupted: ${done}; run \`telesalud keys rotate --resume\` to finish`);
  const head = r.newKekId
    ? `new master key ${r.newKekId} is current in ${r.keyFile} (previous: ${r.previousKekId}); ${done}.`
    : `finished the rotation to ${r.targetKekId} (no new key made); ${done}.`;
  process.stdout.write(`${head} Give every node this key file: a node re-reads it when it meets a key it lacks, and checks it for changes every 30 s. Older keys stay in the file until \`telesalud keys retire\`.\n`);
  if (r.remaining.documents + r.remaining.totpSecrets + outbox.remaining > 0) {
    const left = `${count(r.remaining.documents, 'document')}, ${count(r.remaining.totpSecrets, 'TOTP secret')} and ${count(outbox.remaining, 'queued e-mail')}`;
    process.stderr.write(
      `warning: ${left} are still under an older key (sealed meanwhile by nodes that still have the old key file): give every node the new file, then run \`telesalud keys rotate --resume\`\n`,
    );
  }
  if (r.unknownKey > 0) process.stderr.write(`warning: ${count(r.unknownKey, 'row')} name a key that ${r.keyFile} does not hold: left as they are (see \`telesalud keys status\`)\n`);
  if (r.damaged > 0) process.stderr.write(`warning: ${count(r.damaged, 'row')} failed the integrity check under the key they name: left as they are\n`);
}

/** `telesalud keys retire`. */
export async function keysRetireCommand(config: Config): Promise<void> {
  const socket = await runningServiceSocket(config, 'keys retire');
  if (socket) {
    const { unknown, ...result } = await callAdminSocket<RetireResult & { unknown: Array<[string, KeyUse]> }>(socket, { command: 'keys-retire' });
    for (const [id, use] of unknown) warnUnknownKey(id, use);
    return reportRetirement(result);
  }
  const ring = await masterKeyRing(config);
  rotatableKeyFile(ring);
  const store = await openCommandStore(config, 'keys retire', { ifMissing: 'start the service once first' });
  try {
    const usage = await keyUsage(store.db, ring);
    for (const [id, use] of unknownKeys(usage, ring)) warnUnknownKey(id, use);
    reportRetirement(await retireUnusedKeys(store, ring));
  } finally {
    await store.close();
  }
}

function warnUnknownKey(id: string, use: KeyUse): void {
  process.stderr.write(`warning: ${count(use.documents, 'document')} and ${count(use.totpSecrets, 'TOTP secret')} name key ${id}, which the key file does not hold\n`);
}

function reportRetirement(result: RetireResult): void {
  process.stdout.write(
    result.retired.length === 0
      ? `nothing to retire: ${result.keyFile} holds only the current key ${result.kept[0]}\n`
      : `retired ${result.retired.join(', ')}: ${result.keyFile} now holds only the current key ${result.kept[0]}. Give every node this file.\n`,
  );
}

/** `telesalud keys rotate-audit`. */
export async function keysRotateAuditCommand(config: Config): Promise<void> {
  // The rotation is an audit entry, so the database must be reachable (a key from the environment is refused before).
  const store = config.auditSigningKey ? undefined : await openCommandStore(config, 'keys rotate-audit', { ifMissing: 'start the service once first' });
  const result = await rotateAuditSigningKey({ envValue: config.auditSigningKey, dataDir: config.dataDir, ...(store ? { db: store.db } : {}) }).finally(() => store?.close());
  process.stdout.write(
    `new audit signing key ${result.newKeyId} in ${result.keyFile}; the previous key ${result.previousKeyId} is kept in ${result.previousPublicKeysFile} so its checkpoints still verify. Restart the service to sign with the new key.\n`,
  );
}
