import type { KeyRing } from '../documents/key-ring.js';
import type { KeyUsage } from '../keys/key-usage.js';

/** `telesalud keys status` as data: computed by the command itself, or by the running node over the admin socket. */
export interface KeysStatus {
  source: string;
  keys: Array<{ id: string; state: 'current' | 'old' | 'missing'; documents: number; totpSecrets: number }>;
  unopenableTotpSecrets: number;
}

export function keysStatusOf(ring: KeyRing, usage: KeyUsage): KeysStatus {
  const held = new Set(ring.ids());
  const current = ring.current().id;
  const keys = [...usage.byKek].map(([id, use]) => ({ id, state: id === current ? ('current' as const) : held.has(id) ? ('old' as const) : ('missing' as const), ...use }));
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
    process.stdout.write(`  ${key.id}  ${label.padEnd(7)}  ${count(key.documents, 'document')}, ${count(key.totpSecrets, 'TOTP secret')}\n`);
  }
  if (status.unopenableTotpSecrets > 0) process.stdout.write(`  ${count(status.unopenableTotpSecrets, 'TOTP secret')} open with no key of this ring\n`);
  const old = status.keys.filter((k) => k.state === 'old');
  if (old.some((k) => k.documents + k.totpSecrets > 0)) process.stdout.write('an older key still wraps data: run `telesalud keys rotate --resume` to finish re-wrapping\n');
  else if (old.length > 0) process.stdout.write('older keys wrap nothing any more: `telesalud keys retire` removes them from the key file\n');
}
