import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyRing, UnknownKeyError, kekFromBytes, loadKeyRing } from './key-ring.js';

const tempDirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'telesalud-keyring-'));
  tempDirs.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(tempDirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function writeKeyFile(file: string, text: string, mode = 0o600): Promise<void> {
  await fs.writeFile(file, text, { mode });
  await fs.chmod(file, mode); // the umask may have narrowed it
}

/** Loads expecting a refusal; checks the reason names the file and leaks none of the given key material. */
async function expectRefusal(load: Promise<unknown>, file: string, reason: RegExp, secrets: string[] = []): Promise<void> {
  const error = await load.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(Error);
  const message = (error as Error).message;
  expect(message).toContain(file);
  expect(message).toMatch(reason);
  expect(message).not.toContain('\n');
  for (const secret of secrets) expect(message).not.toContain(secret);
}

describe('kekFromBytes', () => {
  it('names the key by the first 16 hex chars of its SHA-256', () => {
    const key = randomBytes(32);
    const kek = kekFromBytes(key);
    expect(kek.id).toBe(createHash('sha256').update(key).digest('hex').slice(0, 16));
    expect(kek.key.equals(key)).toBe(true);
  });

  it('refuses keys that are not 32 bytes', () => {
    expect(() => kekFromBytes(randomBytes(31))).toThrow(/32 bytes/);
    expect(() => kekFromBytes(randomBytes(33))).toThrow(/32 bytes/);
  });
});

describe('KeyRing', () => {
  const a = kekFromBytes(randomBytes(32));
  const b = kekFromBytes(randomBytes(32));

  it('hands out the current KEK and finds every KEK by id', () => {
    const ring = new KeyRing([a, b], b.id);
    expect(ring.current()).toBe(b);
    expect(ring.byId(a.id)).toBe(a);
    expect(ring.ids()).toEqual([b.id, a.id]);
  });

  it('throws a clear error for an unknown KEK id', () => {
    const ring = new KeyRing([a], a.id);
    expect(() => ring.byId(b.id)).toThrow(UnknownKeyError);
    expect(() => ring.byId(b.id)).toThrow(`unknown key-encryption key id "${b.id}"`);
    expect(() => ring.byId(b.id)).not.toThrow(a.key.toString('base64'));
  });

  it('refuses a current id it does not hold', () => {
    expect(() => new KeyRing([a], b.id)).toThrow(UnknownKeyError);
  });
});

describe('loadKeyRing', () => {
  it('creates <dataDir>/master.key with mode 0600 on first start and reuses it', async () => {
    const dataDir = path.join(await tempDir(), 'nested', 'data');
    const first = await loadKeyRing({ dataDir, createIfMissing: true });
    const file = path.join(dataDir, 'master.key');

    const stat = await fs.stat(file);
    expect(stat.mode & 0o777).toBe(0o600);
    const lines = (await fs.readFile(file, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(Buffer.from(lines[0]!, 'base64')).toHaveLength(32);

    const second = await loadKeyRing({ dataDir, createIfMissing: true });
    expect(second.current().id).toBe(first.current().id);
    expect(second.current().key.equals(first.current().key)).toBe(true);
    expect(await fs.readdir(dataDir)).toEqual(['master.key']);
  });

  it('ends with one key when several starts race to create it', async () => {
    // Staggered starts vary where each load is (reading, writing, publishing) when another one publishes.
    for (const staggerMs of [0, 1, 2, 3]) {
      const dataDir = await tempDir();
      const rings = await Promise.all(
        Array.from({ length: 5 }, async (_, i) => {
          await new Promise((resolve) => setTimeout(resolve, i * staggerMs));
          return loadKeyRing({ dataDir, createIfMissing: true });
        }),
      );
      const lines = (await fs.readFile(path.join(dataDir, 'master.key'), 'utf8')).trim().split('\n');
      expect(lines).toHaveLength(1);
      const onDisk = kekFromBytes(Buffer.from(lines[0]!, 'base64')).id;
      // Every caller must hold the key that stayed on disk, or documents it seals become unreadable.
      expect(rings.map((ring) => ring.current().id)).toEqual(Array(5).fill(onDisk));
      expect(await fs.readdir(dataDir)).toEqual(['master.key']); // no temp files left behind
    }
  });

  it('does not create the key file unless asked to', async () => {
    const dataDir = await tempDir();
    const file = path.join(dataDir, 'master.key');
    await expectRefusal(loadKeyRing({ dataDir, createIfMissing: false }), file, /not found/);
    await expect(fs.stat(file)).rejects.toThrow(/ENOENT/);
  });

  it('never creates an explicit masterKeyFile', async () => {
    const dataDir = await tempDir();
    const masterKeyFile = path.join(dataDir, 'elsewhere.key');
    await expectRefusal(loadKeyRing({ dataDir, masterKeyFile, createIfMissing: true }), masterKeyFile, /not found/);
    expect(await fs.readdir(dataDir)).toEqual([]);
  });

  it('reads an explicit masterKeyFile: first key current, later keys kept for unwrapping', async () => {
    const dataDir = await tempDir();
    const masterKeyFile = path.join(dataDir, 'keys');
    const [current, older] = [randomBytes(32), randomBytes(32)];
    await writeKeyFile(
      masterKeyFile,
      `# rotated 2025-01-01\n\n  ${current.toString('base64')}  \r\n# previous\n${older.toString('base64')}\n\n`,
    );
    const ring = await loadKeyRing({ dataDir, masterKeyFile, createIfMissing: false });
    expect(ring.current().key.equals(current)).toBe(true);
    expect(ring.ids()).toEqual([kekFromBytes(current).id, kekFromBytes(older).id]);
    expect(ring.byId(kekFromBytes(older).id).key.equals(older)).toBe(true);
  });

  it('refuses a key file that group or others can read or write', async () => {
    const dataDir = await tempDir();
    const file = path.join(dataDir, 'master.key');
    const key = randomBytes(32).toString('base64');
    for (const mode of [0o644, 0o640, 0o604, 0o620, 0o602]) {
      await writeKeyFile(file, `${key}\n`, mode);
      await expectRefusal(loadKeyRing({ dataDir, createIfMissing: true }), file, /chmod 600/, [key]);
    }
    await fs.chmod(file, 0o400); // owner read-only is fine
    expect((await loadKeyRing({ dataDir, createIfMissing: true })).current().key.toString('base64')).toBe(key);
  });

  it.each([
    ['a line that is not base64', 'this is not a key!', /line 2 is not base64/],
    ['unpadded base64', randomBytes(32).toString('base64').replace(/=+$/, ''), /line 2 is not base64/],
    ['a 16-byte key', randomBytes(16).toString('base64'), /line 2 holds a 16-byte key/],
    ['a 64-byte key', randomBytes(64).toString('base64'), /line 2 holds a 64-byte key/],
  ])('refuses a key file with %s', async (_name, badLine, reason) => {
    const dataDir = await tempDir();
    const file = path.join(dataDir, 'master.key');
    const good = randomBytes(32).toString('base64');
    await writeKeyFile(file, `${good}\n${badLine}\n`);
    await expectRefusal(loadKeyRing({ dataDir, createIfMissing: true }), file, reason, [good, badLine]);
  });

  it('refuses a key file without a key', async () => {
    const dataDir = await tempDir();
    const file = path.join(dataDir, 'master.key');
    await writeKeyFile(file, '# nothing here\n\n');
    await expectRefusal(loadKeyRing({ dataDir, createIfMissing: true }), file, /holds no key/);
  });

  it('uses TELESALUD_MASTER_KEY when given and leaves the data dir alone', async () => {
    const dataDir = await tempDir();
    const masterKey = randomBytes(32);
    const ring = await loadKeyRing({ masterKey, dataDir, createIfMissing: true });
    expect(ring.current().key.equals(masterKey)).toBe(true);
    expect(ring.ids()).toEqual([kekFromBytes(masterKey).id]);
    expect(await fs.readdir(dataDir)).toEqual([]);
  });
});

describe('a key ring loaded from a key file re-reads it', () => {
  const line = (key: Buffer) => `${key.toString('base64')}\n`;

  async function ringOnFile(first: Buffer, clock: { t: number }) {
    const dataDir = await tempDir();
    const file = path.join(dataDir, 'master.key');
    await writeKeyFile(file, line(first));
    const events: unknown[] = [];
    const ring = await loadKeyRing({ dataDir, createIfMissing: false, now: () => clock.t, onReload: (e) => events.push(e) });
    return { file, ring, events };
  }

  it('when a row names a key it lacks and the file changed: at once, and the new first key becomes current', async () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const clock = { t: 1_000_000 };
    const { file, ring, events } = await ringOnFile(oldKey, clock);
    const [oldId, newId] = [kekFromBytes(oldKey).id, kekFromBytes(newKey).id];

    // Another host rotated: the new key first, the old one kept.
    await writeKeyFile(file, line(newKey) + line(oldKey));
    expect(ring.byId(newId).key.equals(newKey)).toBe(true);
    expect(ring.current().id).toBe(newId);
    expect(ring.ids()).toEqual([newId, oldId]);
    expect(events).toEqual([{ ids: [newId, oldId] }]);
    expect(JSON.stringify(events)).not.toContain(newKey.toString('base64'));

    // A second rotation right after: no interval to wait, the file changed again.
    const third = randomBytes(32);
    await writeKeyFile(file, line(third) + line(newKey) + line(oldKey));
    expect(ring.byId(kekFromBytes(third).id).key.equals(third)).toBe(true);
  });

  it('re-reads an unchanged source at most once per interval for ids nobody has', () => {
    const kek = kekFromBytes(randomBytes(32));
    const clock = { t: 1_000_000 };
    let reads = 0;
    const ring = KeyRing.fromSource({ name: 'test', read: () => (reads++, { keks: [kek], currentId: kek.id }), version: () => 'same' }, { now: () => clock.t });
    const stranger = kekFromBytes(randomBytes(32)).id;
    expect(reads).toBe(1);
    clock.t += 5_000;
    expect(() => ring.byId(stranger)).toThrow(`unknown key-encryption key id "${stranger}"`);
    expect(() => ring.byId(stranger)).toThrow(UnknownKeyError);
    clock.t += 1_000;
    expect(() => ring.byId(stranger)).toThrow(UnknownKeyError);
    expect(reads).toBe(2);
    clock.t += 1_500;
    expect(() => ring.byId(stranger)).toThrow(UnknownKeyError);
    expect(reads).toBe(3);
    expect(ring.byId(kek.id)).toBe(kek);
  });

  it('notices a changed file within the refresh interval, so new documents move to the new key', async () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const clock = { t: 1_000_000 };
    const { file, ring } = await ringOnFile(oldKey, clock);
    await writeKeyFile(file, line(newKey) + line(oldKey));
    // Same second as the load: mtime alone may not tell, so the refresh compares inode, size and mtime.
    clock.t += 10_000;
    expect(ring.current().id).toBe(kekFromBytes(oldKey).id);
    clock.t += 25_000;
    expect(ring.current().id).toBe(kekFromBytes(newKey).id);
  });

  it('keeps serving with the keys it has when the re-read fails, and says why', async () => {
    const oldKey = randomBytes(32);
    const clock = { t: 1_000_000 };
    const { file, ring, events } = await ringOnFile(oldKey, clock);
    const newKey = randomBytes(32);
    await writeKeyFile(file, line(newKey) + line(oldKey), 0o644);
    clock.t += 5_000;
    const error = (() => {
      try {
        ring.byId(kekFromBytes(newKey).id);
      } catch (err) {
        return err as Error;
      }
    })();
    expect(error).toBeInstanceOf(UnknownKeyError);
    expect(error!.message).toContain('chmod 600');
    expect(error!.message).not.toContain(newKey.toString('base64'));
    expect(ring.current().id).toBe(kekFromBytes(oldKey).id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ error: expect.stringContaining(file) });
    // Not retried on every request: only once the file changes again (or the interval passes).
    expect(() => ring.byId(kekFromBytes(newKey).id)).toThrow(UnknownKeyError);
    expect(events).toHaveLength(1);
    await fs.chmod(file, 0o600);
    clock.t += 5_000;
    expect(ring.byId(kekFromBytes(newKey).id).key.equals(newKey)).toBe(true);
    expect(events).toHaveLength(2);
  });

  it('a ring from TELESALUD_MASTER_KEY has nothing to re-read', async () => {
    const masterKey = randomBytes(32);
    const ring = await loadKeyRing({ masterKey, dataDir: await tempDir(), createIfMissing: false });
    expect(ring.source).toBeUndefined();
    expect(ring.reload()).toBe(false);
  });
});
