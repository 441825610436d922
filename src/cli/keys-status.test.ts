import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bytes } from '../db/bytes.js';
import { rewrapKey } from '../documents/envelope-crypto.js';
import { loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { keyUsage } from '../keys/key-usage.js';
import { KeyRotationRefused, retireUnusedKeys, rotateMasterKey } from '../keys/master-key-rotation.js';
import { MailOutbox, outboxAssociatedData } from '../notifications/mail-outbox.js';
import { startTestNode, type TestNode } from '../test-support/test-node.js';
import { reportRotation } from './keys-command.js';
import { keysStatusOf, printKeysStatus } from './keys-status.js';

/** What a function writes to stdout and stderr. */
function captured(run: () => void): { stdout: string; stderr: string } {
  const out: string[] = [];
  const err: string[] = [];
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => out.push(String(chunk)) > 0);
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => err.push(String(chunk)) > 0);
  try {
    run();
  } finally {
    stdout.mockRestore();
    stderr.mockRestore();
  }
  return { stdout: out.join(''), stderr: err.join('') };
}

/**
 * Queued e-mails are sealed under the master key too: status and the rotation summary count
 * them, so status never calls older keys unused while `keys retire` would refuse.
 */
describe('keys status and the rotation summary count queued e-mails', () => {
  let node: TestNode;
  const operatorRing = (): Promise<KeyRing> => loadKeyRing({ dataDir: node.config.dataDir, createIfMissing: false });
  const store = () => ({ db: node.ctx.store.db, kind: node.ctx.store.kind });
  // Due far ahead: nothing sends them while the test looks.
  const due = new Date(Date.now() + 30 * 86_400_000);

  beforeAll(async () => {
    node = await startTestNode('pglite');
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('names the queued e-mails a key seals, in the rotation summary and in status, until retire can go ahead', async () => {
    const db = node.ctx.store.db;
    const firstKek = node.ctx.keyRing.current().id;
    const outbox = new MailOutbox(db, node.ctx.keyRing);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push(await outbox.enqueue(db, { template: 'staff-invitation', to: `cola${i}@clinica-sur.example.org`, language: 'es', link: `https://x.example.org/invite#cola-${i}`, expiresAt: due.toISOString() }, due));
    }

    const before = keysStatusOf(await operatorRing(), await keyUsage(db, await operatorRing()));
    expect(before.keys).toEqual([{ id: firstKek, state: 'current', documents: 0, totpSecrets: 0, queuedEmails: 2 }]);

    const rotated = await rotateMasterKey(store(), await operatorRing(), {});
    const current = rotated.newKekId!;
    const summary = captured(() => reportRotation(rotated));
    expect(summary.stdout).toMatch(new RegExp(`; re-wrapped 0 document keys, 0 TOTP secrets and 2 queued e-mails under ${current} in `));
    expect(summary.stderr).toBe('');

    // One message back under the old key, as a node still on the old key file would have sealed it.
    const ring = await operatorRing();
    const row = await db.selectFrom('notification_outbox').select(['wrapped_key']).where('id', '=', ids[0]!).executeTakeFirstOrThrow();
    const back = rewrapKey(ring, { kekId: current, wrappedKey: bytes(row.wrapped_key!) }, outboxAssociatedData(ids[0]!), firstKek);
    await db.updateTable('notification_outbox').set({ kek_id: back.kekId, wrapped_key: back.wrappedKey }).where('id', '=', ids[0]!).execute();

    const status = keysStatusOf(ring, await keyUsage(db, ring));
    expect(status.keys).toEqual([
      { id: current, state: 'current', documents: 0, totpSecrets: 0, queuedEmails: 1 },
      { id: firstKek, state: 'old', documents: 0, totpSecrets: 0, queuedEmails: 1 },
    ]);
    const shown = captured(() => printKeysStatus(status, {})).stdout;
    expect(shown).toContain(`  ${firstKek}  old      0 documents, 0 TOTP secrets, 1 queued e-mail\n`);
    expect(shown).toContain('an older key still wraps data: run `telesalud keys rotate --resume`');
    expect(shown).not.toContain('older keys wrap nothing');
    // …and retire agrees.
    await expect(retireUnusedKeys(store(), ring)).rejects.toBeInstanceOf(KeyRotationRefused);

    // A rotation that leaves one behind says so.
    const left = captured(() => reportRotation({ ...rotated, outbox: { rewrapped: 0, remaining: 1 } })).stderr;
    expect(left).toMatch(/^warning: 0 documents, 0 TOTP secrets and 1 queued e-mail are still under an older key/);

    // Once re-wrapped, status offers retire, and retire goes ahead.
    const resumed = await rotateMasterKey(store(), ring, { resume: true });
    expect(resumed.outbox).toEqual({ rewrapped: 1, remaining: 0 });
    const usageAfter = await keyUsage(db, ring);
    const after = captured(() => printKeysStatus(keysStatusOf(ring, usageAfter), {})).stdout;
    expect(after).toContain(`  ${firstKek}  old      0 documents, 0 TOTP secrets\n`);
    expect(after).toContain('older keys wrap nothing any more: `telesalud keys retire` removes them');
    expect((await retireUnusedKeys(store(), ring)).retired).toEqual([firstKek]);
  });
});
