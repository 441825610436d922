import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { bytes } from '../db/bytes.js';
import { rewrapKey } from '../documents/envelope-crypto.js';
import { kekFromBytes, loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { MailOutbox, outboxAssociatedData } from '../notifications/mail-outbox.js';
import type { MailContent } from '../notifications/mail-templates.js';
import { startTestSmtpServer, type TestSmtpServer } from '../notifications/test-smtp-server.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { keyUsage } from './key-usage.js';
import { KeyRotationRefused, retireUnusedKeys, rotateMasterKey } from './master-key-rotation.js';

const keyLines = async (file: string) =>
  (await fs.readFile(file, 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => kekFromBytes(Buffer.from(l, 'base64')).id);

/**
 * E-mails wait in the outbox sealed under the master key, sometimes for hours (a relay refusing
 * for now). A rotation re-wraps them like documents, and retire refuses while one still needs an
 * old key: a message queued before a rotation still goes out, whole, after the old key is gone.
 */
describe.each(STORE_KINDS)('key rotation covers the e-mail outbox (%s)', (kind) => {
  let smtp: TestSmtpServer;
  let node: TestNode;
  let keyFile: string;
  const operatorRing = (): Promise<KeyRing> => loadKeyRing({ dataDir: node.config.dataDir, createIfMissing: false });
  const store = () => ({ db: node.ctx.store.db, kind: node.ctx.store.kind });
  const outboxKeys = async (ids: string[]) => (await node.ctx.store.db.selectFrom('notification_outbox').select(['id', 'kek_id']).where('id', 'in', ids).orderBy('id').execute()).map((r) => r.kek_id);
  // Due far ahead, so the node's own delivery loop leaves them queued until the test sends them.
  const due = new Date(Date.now() + 30 * 86_400_000);
  const message = (i: number): MailContent => ({ template: 'staff-invitation', to: `queued${i}.${kind}@clinica-norte.example.org`, language: 'en', link: `https://x.example.org/invite#queued-${i}-${kind}`, expiresAt: due.toISOString() });

  beforeAll(async () => {
    smtp = await startTestSmtpServer();
    node = await startTestNode(kind, {
      TELESALUD_SMTP_URL: `smtp://${smtp.user}:${encodeURIComponent(smtp.password)}@127.0.0.1:${smtp.port}`,
      TELESALUD_SMTP_CA_FILE: smtp.caFile,
      TELESALUD_MAIL_FROM: 'no-reply@clinica-norte.example.org',
    });
    keyFile = path.join(node.config.dataDir, 'master.key');
  });
  afterAll(async () => {
    await node?.stop();
    await smtp?.close();
  });

  it('re-wraps queued e-mails on rotate, refuses to retire a key one still needs, and the messages go out whole after retirement', async () => {
    const db = node.ctx.store.db;
    const firstKek = node.ctx.keyRing.current().id;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await node.ctx.notifications!.outbox.enqueue(db, message(i), due));
    expect(await outboxKeys(ids)).toEqual([firstKek, firstKek, firstKek]);

    const rotated = await rotateMasterKey(store(), await operatorRing(), { batchSize: 2 });
    const current = rotated.newKekId!;
    expect(rotated.outbox).toEqual({ rewrapped: 3, remaining: 0 });
    expect(await outboxKeys(ids)).toEqual([current, current, current]);
    const finished = await db.selectFrom('audit_event').select(['detail']).where('action', '=', 'key-rotation-finished').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(finished.detail).toMatchObject({ outbox: { rewrapped: 3, remaining: 0 } });

    // One message back under the old key, as a node still on the old key file would have sealed it.
    const ring = await operatorRing();
    const row = await db.selectFrom('notification_outbox').select(['wrapped_key']).where('id', '=', ids[1]!).executeTakeFirstOrThrow();
    const back = rewrapKey(ring, { kekId: current, wrappedKey: bytes(row.wrapped_key!) }, outboxAssociatedData(ids[1]!), firstKek);
    await db.updateTable('notification_outbox').set({ kek_id: back.kekId, wrapped_key: back.wrappedKey }).where('id', '=', ids[1]!).execute();
    expect((await keyUsage(db, ring)).outboxByKek.get(firstKek)).toBe(1);

    // Retire refuses, says why, and leaves the key file as it was.
    const before = await fs.readFile(keyFile);
    const refused = await retireUnusedKeys(store(), ring).catch((err: Error) => err);
    expect(refused).toBeInstanceOf(KeyRotationRefused);
    expect((refused as Error).message).toContain(`key ${firstKek} still wraps 0 document(s) and 0 TOTP secret(s) and seals 1 queued e-mail(s)`);
    expect((await fs.readFile(keyFile)).equals(before)).toBe(true);
    const denied = await db.selectFrom('audit_event').select(['outcome', 'detail']).where('action', '=', 'key-retired').orderBy('seq', 'desc').executeTakeFirstOrThrow();
    expect(denied).toMatchObject({ outcome: 'denied', detail: { pendingOutbox: 1 } });

    // `keys rotate` finishes the rotation for that message instead of adding a key; then retire goes through.
    const resumed = await rotateMasterKey(store(), ring);
    expect(resumed.newKekId).toBeUndefined();
    expect(resumed.outbox).toEqual({ rewrapped: 1, remaining: 0 });
    const retired = await retireUnusedKeys(store(), ring);
    expect(retired.retired).toEqual([firstKek]);
    expect(await keyLines(keyFile)).toEqual([current]);
    node.ctx.keyRing.reload();
    expect(node.ctx.keyRing.ids()).toEqual([current]);

    // The queued messages open with the key that is left, and go out with what they said.
    expect(await node.ctx.notifications!.delivery.deliverDue(new Date(due.getTime() + 1000))).toBe(3);
    for (let i = 0; i < 3; i++) {
      const mail = await smtp.waitFor((m) => m.envelopeTo.includes(message(i).to));
      expect(mail.parsed.text).toContain(`https://x.example.org/invite#queued-${i}-${kind}`);
    }
    await vi.waitFor(async () => expect((await db.selectFrom('notification_outbox').select('status').where('id', 'in', ids).execute()).map((r) => r.status)).toEqual(['sent', 'sent', 'sent']));
  });

  it("retries, rather than gives up on, a message sealed under a key this node's key file lacks", async () => {
    const db = node.ctx.store.db;
    // Another node's newer key, not yet in this node's file.
    const elsewhere = await loadKeyRing({ masterKey: randomBytes(32), dataDir: '/nonexistent', createIfMissing: false });
    const id = await new MailOutbox(db, elsewhere).enqueue(db, message(9), due);
    expect(await node.ctx.notifications!.delivery.deliverDue(new Date(due.getTime() + 1000))).toBe(1);
    const row = await db.selectFrom('notification_outbox').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'pending', attempts: 1, last_error: 'unknown-key', kek_id: elsewhere.current().id });
    expect(row.ciphertext).not.toBeNull();
    expect(smtp.received.some((m) => m.envelopeTo.includes(message(9).to))).toBe(false);
    await db.deleteFrom('notification_outbox').where('id', '=', id).execute();
  });
});
