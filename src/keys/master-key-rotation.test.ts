import { hkdfSync, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ACTOR } from '../auth/actor.js';
import { createAccount } from '../auth/accounts/account-service.js';
import { AuthTestClient } from '../auth/auth-test-client.js';
import { currentTotpCode, sealTotpSecret } from '../auth/mfa/totp.js';
import { bytes } from '../db/bytes.js';
import { rewrapKey } from '../documents/envelope-crypto.js';
import { kekFromBytes, loadKeyRing, type KeyRing } from '../documents/key-ring.js';
import { Repository } from '../records/repository.js';
import { create, patient } from '../test-support/fixtures.js';
import { startTestNode, STORE_KINDS, type TestNode } from '../test-support/test-node.js';
import { keyUsage } from './key-usage.js';
import { KeyRotationRefused, retireUnusedKeys, rotateMasterKey, type RewrapProgress } from './master-key-rotation.js';

const PASSWORD = 'lluvia-tranquila-sobre-Montevideo-42';
const pdf = (i: number) => Buffer.concat([Buffer.from('%PDF-1.7\n'), randomBytes(200 + i * 37), Buffer.from('\n%%EOF\n')]);

const keyLines = async (file: string) =>
  (await fs.readFile(file, 'utf8'))
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => kekFromBytes(Buffer.from(l, 'base64')).id);

describe.each(STORE_KINDS)('telesalud keys rotate, online (%s)', (kind) => {
  let node: TestNode;
  let keyFile: string;
  const documents: Array<{ id: string; content: Buffer }> = [];
  const staff: Array<{ id: string; email: string; totpSecret: string }> = [];
  let recoveryCodes: string[] = [];

  /** The operator's process: its own ring, read from the same key file the node uses. */
  const operatorRing = (): Promise<KeyRing> => loadKeyRing({ dataDir: node.config.dataDir, createIfMissing: false });
  const store = () => ({ db: node.ctx.store.db, kind: node.ctx.store.kind });

  const download = async (id: string) => {
    const res = await node.request({ method: 'GET', url: `/api/documents/${id}/content` });
    return { status: res.statusCode, body: res.rawPayload };
  };
  const upload = async (content: Buffer) => {
    const res = await node.request({ method: 'POST', url: `/api/documents?patient=${patientId}&title=Informe`, payload: content, headers: { 'content-type': 'application/pdf' } });
    expect(res.statusCode).toBe(201);
    const id = res.json().id as string;
    documents.push({ id, content });
    return id;
  };
  const expectAllDownloadIntact = async () => {
    for (const doc of documents) {
      const got = await download(doc.id);
      expect(got.status).toBe(200);
      expect(got.body.equals(doc.content)).toBe(true);
    }
  };
  const signIn = async (account: { id: string; email: string }, code: string) => {
    // Each check uses a fresh code step: clear the replay guard the previous sign-in set.
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', account.id).execute();
    return (await new AuthTestClient(node).signIn({ email: account.email, password: PASSWORD, code })).statusCode;
  };
  const kekIdsOfRows = async () => [...new Set((await node.ctx.store.db.selectFrom('document_blob').select('kek_id').execute()).map((r) => r.kek_id))];

  let patientId: string;
  beforeAll(async () => {
    node = await startTestNode(kind);
    keyFile = path.join(node.config.dataDir, 'master.key');
    patientId = (await create(node, patient('Rotación', ['Ana']))).id;
    for (let i = 0; i < 9; i++) await upload(pdf(i));
    const records = new Repository(node.ctx.store.db, node.ctx.audit, SYSTEM_ACTOR, { requestId: 'keys-test', source: 'test' });
    for (const [i, role] of (['clinician', 'clinician', 'admin'] as const).entries()) {
      const made = await createAccount(node.ctx.store.db, records, node.ctx.keyRing, { email: `staff${i}@example.org`, role, name: `Staff ${i}`, password: PASSWORD });
      staff.push({ id: made.id, email: made.email, totpSecret: made.totpSecret! });
    }
    // Recovery codes of the first clinician, made through the API (which opens the sealed TOTP secret to check the code).
    const client = new AuthTestClient(node);
    expect((await client.signIn({ email: staff[0]!.email, password: PASSWORD, code: currentTotpCode(staff[0]!.totpSecret) })).statusCode).toBe(200);
    await node.ctx.store.db.updateTable('account').set({ totp_last_step: null }).where('id', '=', staff[0]!.id).execute();
    const made = await client.post('/api/auth/mfa/recovery-codes', { password: PASSWORD, code: currentTotpCode(staff[0]!.totpSecret) });
    expect(made.statusCode).toBe(200);
    recoveryCodes = made.json().recoveryCodes;
  });
  afterAll(async () => {
    await node?.stop();
  });

  it('re-wraps every document key and TOTP secret under a new key while the running node keeps serving', async () => {
    const oldId = node.ctx.keyRing.current().id;
    const ring = await operatorRing();
    const totpRows = (await node.ctx.store.db.selectFrom('account').select('id').where('totp_secret_sealed', 'is not', null).execute()).length;
    expect(totpRows).toBe(staff.length);

    // Downloads run all through the rotation, on the node that was started with the old key file.
    let rotating = true;
    const served: number[] = [];
    const reader = (async () => {
      for (let i = 0; rotating || i < documents.length; i++) {
        const doc = documents[i % documents.length]!;
        const got = await download(doc.id);
        served.push(got.status);
        expect(got.body.equals(doc.content)).toBe(true);
      }
    })();
    const progress: RewrapProgress[] = [];
    const result = await rotateMasterKey(store(), ring, { batchSize: 2, onProgress: (p) => progress.push(p) }).finally(() => (rotating = false));
    await reader;

    expect(result.newKekId).toMatch(/^[0-9a-f]{16}$/);
    expect(result.previousKekId).toBe(oldId);
    expect(result).toMatchObject({ documents: documents.length, totpSecrets: staff.length, unknownKey: 0, damaged: 0, stopped: false, remaining: { documents: 0, totpSecrets: 0 } });
    expect(result.batches).toBeGreaterThanOrEqual(Math.ceil(documents.length / 2));
    expect(progress.at(-1)).toEqual({ phase: 'totp', done: staff.length, total: staff.length });
    expect(progress.find((p) => p.phase === 'documents' && p.done === documents.length)?.total).toBe(documents.length);
    expect(served.length).toBeGreaterThanOrEqual(documents.length);
    expect(served.every((s) => s === 200)).toBe(true);

    // The key file: new key first, the old one kept after it, owner-only.
    expect(await keyLines(keyFile)).toEqual([result.newKekId, oldId]);
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(await fs.readdir(node.config.dataDir)).not.toContainEqual(expect.stringMatching(/\.tmp$/));

    // Every row names the new key.
    expect(await kekIdsOfRows()).toEqual([result.newKekId]);
    const sealed = await node.ctx.store.db.selectFrom('account').select('totp_secret_sealed').where('totp_secret_sealed', 'is not', null).execute();
    expect(sealed.every((r) => r.totp_secret_sealed!.startsWith(`kek.${result.newKekId}.`))).toBe(true);

    // The node met the new key id, re-read the file, and now seals new documents under it too.
    await expectAllDownloadIntact();
    expect(node.ctx.keyRing.current().id).toBe(result.newKekId);
    const fresh = await upload(pdf(99));
    expect((await node.ctx.store.db.selectFrom('document_blob').select('kek_id').where('id', '=', fresh).executeTakeFirstOrThrow()).kek_id).toBe(result.newKekId);

    // Staff sign in as before: TOTP codes and recovery codes.
    for (const account of staff) expect(await signIn(account, currentTotpCode(account.totpSecret))).toBe(200);
    expect(await signIn(staff[0]!, recoveryCodes[0]!)).toBe(200);
    expect(await signIn(staff[1]!, '000000')).toBe(401);
  });

  it('stops after a few batches like a crash, and the next run finishes that rotation without adding a key', async () => {
    const ring = await operatorRing();
    const abort = new AbortController();
    let batches = 0;
    const stopped = await rotateMasterKey(store(), ring, { batchSize: 2, signal: abort.signal, onProgress: () => ++batches === 2 && abort.abort() });
    expect(stopped.stopped).toBe(true);
    expect(stopped.documents).toBe(4);
    const target = stopped.newKekId!;
    const [, ...older] = await keyLines(keyFile);
    const left = (await keyUsage(node.ctx.store.db, ring)).byKek;
    expect(left.get(target)?.documents).toBe(4);
    expect(documents.length - 4).toBe([...left].filter(([id]) => id !== target).reduce((n, [, use]) => n + use.documents, 0));
    // Mid-rotation, both kinds of row download.
    await expectAllDownloadIntact();

    // `keys rotate --resume` (a new process), stopped once more…
    const again = new AbortController();
    const resumedPart = await rotateMasterKey(store(), await operatorRing(), { resume: true, batchSize: 2, signal: again.signal, onProgress: () => again.abort() });
    expect(resumedPart).toMatchObject({ stopped: true, documents: 2, targetKekId: target });
    expect(resumedPart.newKekId).toBeUndefined();

    // …then plain `keys rotate`: it sees the unfinished rotation and completes it instead of adding a key.
    const finished = await rotateMasterKey(store(), await operatorRing(), { batchSize: 2 });
    expect(finished.newKekId).toBeUndefined();
    expect(finished.targetKekId).toBe(target);
    expect(finished.documents).toBe(documents.length - 6);
    expect(finished.totpSecrets).toBe(staff.length);
    expect(await keyLines(keyFile)).toEqual([target, ...older]);
    expect(await kekIdsOfRows()).toEqual([target]);

    // `--resume` with nothing left: no key added, nothing changed.
    const resumed = await rotateMasterKey(store(), await operatorRing(), { resume: true });
    expect(resumed).toMatchObject({ documents: 0, totpSecrets: 0, targetKekId: target });
    expect(resumed.newKekId).toBeUndefined();
    expect(await keyLines(keyFile)).toEqual([target, ...older]);
    await expectAllDownloadIntact();
    for (const account of staff) expect(await signIn(account, currentTotpCode(account.totpSecret))).toBe(200);
  });

  it('re-seals TOTP secrets stored before key ids were recorded', async () => {
    const ring = await operatorRing();
    const account = staff[1]!;
    const legacyKey = Buffer.from(hkdfSync('sha256', ring.current().key, Buffer.alloc(0), 'telesalud/totp/v1', 32));
    await node.ctx.store.db.updateTable('account').set({ totp_secret_sealed: sealTotpSecret(account.totpSecret, legacyKey, account.id) }).where('id', '=', account.id).execute();
    expect(await signIn(account, currentTotpCode(account.totpSecret))).toBe(200);
    const resumed = await rotateMasterKey(store(), ring, { resume: true });
    expect(resumed.totpSecrets).toBe(1);
    const row = await node.ctx.store.db.selectFrom('account').select('totp_secret_sealed').where('id', '=', account.id).executeTakeFirstOrThrow();
    expect(row.totp_secret_sealed!.startsWith(`kek.${ring.current().id}.`)).toBe(true);
    expect(await signIn(account, currentTotpCode(account.totpSecret))).toBe(200);
  });

  it('retire refuses while a row still uses an old key, changing nothing, and removes the old keys once none does', async () => {
    const ring = await operatorRing();
    const [current, oldest] = [ring.current().id, ring.ids().at(-1)!];
    const older = ring.ids().slice(1);
    expect(older.length).toBe(2);
    // One document back under an old key, as a node without the new key file would have sealed it.
    const doc = documents[0]!;
    const row = await node.ctx.store.db.selectFrom('document_blob').select(['kek_id', 'wrapped_key']).where('id', '=', doc.id).executeTakeFirstOrThrow();
    const back = rewrapKey(ring, { kekId: row.kek_id, wrappedKey: bytes(row.wrapped_key) }, doc.id, oldest);
    await node.ctx.store.db.updateTable('document_blob').set({ kek_id: back.kekId, wrapped_key: back.wrappedKey }).where('id', '=', doc.id).execute();

    const before = await fs.readFile(keyFile);
    const refused = await retireUnusedKeys(store(), ring).catch((err: Error) => err);
    expect(refused).toBeInstanceOf(KeyRotationRefused);
    expect((refused as Error).message).toContain(`key ${oldest} still wraps 1 document(s) and 0 TOTP secret(s)`);
    expect((refused as Error).message).toContain('keys rotate --resume');
    expect((await fs.readFile(keyFile)).equals(before)).toBe(true);
    await expectAllDownloadIntact();

    expect((await rotateMasterKey(store(), ring, { resume: true })).documents).toBe(1);
    const retired = await retireUnusedKeys(store(), ring);
    expect(retired.kept).toEqual([current]);
    expect(retired.retired).toEqual(older);
    expect(await keyLines(keyFile)).toEqual([current]);
    expect((await fs.stat(keyFile)).mode & 0o777).toBe(0o600);

    // The running node still serves everything, and old keys leave its memory when it next re-reads.
    await expectAllDownloadIntact();
    node.ctx.keyRing.reload();
    expect(node.ctx.keyRing.ids()).toEqual([current]);
    await expectAllDownloadIntact();
    for (const account of staff) expect(await signIn(account, currentTotpCode(account.totpSecret))).toBe(200);
    expect(await signIn(staff[0]!, recoveryCodes[1]!)).toBe(200);
    expect((await retireUnusedKeys(store(), await operatorRing())).retired).toEqual([]);
  });
});

describe('keys given in TELESALUD_MASTER_KEY', () => {
  it('are not rotated: the refusal says how to rotate with a key file', async () => {
    const ring = await loadKeyRing({ masterKey: randomBytes(32), dataDir: '/nonexistent', createIfMissing: false });
    const err = await rotateMasterKey({ db: undefined as never, kind: 'pglite' }, ring).catch((e: Error) => e);
    expect(err).toBeInstanceOf(KeyRotationRefused);
    expect((err as Error).message).toMatch(/TELESALUD_MASTER_KEY_FILE/);
    expect((err as Error).message).not.toContain('\n');
    await expect(retireUnusedKeys({ db: undefined as never, kind: 'pglite' }, ring)).rejects.toThrow(/TELESALUD_MASTER_KEY/);
  });
});
