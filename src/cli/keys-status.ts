import type { KeyRing } from '../documents/key-ring.js';
import type { KeyUsage } from '../keys/key-usage.js';

/** `telesalud keys status` as data: computed by the command itself, or by the running node over the admin socket. */
export interface KeysStatus {
  source: string;
  /**
   * `queuedEmails`: e-mails waiting in the outbox sealed under the key (`keys retire` refuses while
   * an older key seals any). Absent from the answer of a node of the previous release.
   */
  keys: Array<{ id: string; state: 'current' | 'old' | 'missing'; documents: number; totpSecrets: number; queuedEmails?: number }>;
  unopenableTotpSecrets: number;
}

export function keysStatusOf(ring: KeyRing, usage: KeyUsage): KeysStatus {
  const held = new Set(ring.ids());
  const current = ring.current().id;
  // Every key the ring holds or a row names, queued e-mails included: a key may seal only those.
  const ids = new Set([...usage.byKek.keys(), ...usage.outboxByKek.keys()]);
  const keys = [...ids].map((id) => ({
    id,
    state: id === current ? ('current' as const) : held.has(id) ? ('old' as const) : ('missing' as const),
    ...(usage.byKek.get(id) ?? { documents: 0, totpSecrets: 0 }),
    queuedEmails: usage.outboxByKek.get(id) ?? 0,
  }));
  return { source: ring.source?.name ?? 'TELESALUD_MASTER_KEY', keys, unopenableTotpSecrets: usage.unopenableTotp };
}

const count = (n: number, one: string, many = `${one}s`) => `${n.toLocaleString('en')} ${n === 1 ? one : many}`;

export function printKeysStatus(status: KeysStatus, options: { json?: boolean }): void {
  if (options.json) {
    process.stdout.write(`${JSON.stringify(status)}\n`);
    return;
  }
  process.stdout.write(`master keys from ${status.source}:\n`);
  for (const key of status.keys) {
    const label = key.state === 'missing' ? 'NOT IN THE KEY FILE' : key.state;
    // Queued e-mails named only when there are some: they leave within minutes or hours.
    const mails = key.queuedEmails ? `, ${count(key.queuedEmails, 'queued e-mail')}` : '';
    process.stdout.write(`  ${key.id}  ${label.padEnd(7)}  ${count(key.documents, 'document')}, ${count(key.totpSecrets, 'TOTP secret')}${mails}\n`);
  }
  if (status.unopenableTotpSecrets > 0) process.stdout.write(`  ${count(status.unopenableTotpSecrets, 'TOTP secret')} open with no key of this ring\n`);
  const old = status.keys.filter((k) => k.state === 'old');
  if (old.some((k) => k.documents + k.totpSecrets + (k.queuedEmails ?? 0) > 0)) process.stdout.write('an older key still wraps data: run `telesalud keys rotate --resume` to finish re-wrapping\n');
  // Unopenable TOTP secrets also make `keys retire` refuse: no retire hint then.
  else if (old.length > 0 && status.unopenableTotpSecrets === 0) process.stdout.write('older keys wrap nothing any more: `telesalud keys retire` removes them from the key file\n');
}
