import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, fstatSync, openSync, readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * Secret files in the data dir (master key, audit signing key, admin token): read only when
 * nobody but the owner may access them, created once even when several processes start together.
 */
export async function readSecretFile(file: string, what: string): Promise<string> {
  // Permissions are checked on the open handle (fstat), so the file checked is the file read.
  const handle = await fs.open(file, fsConstants.O_RDONLY);
  try {
    checkSecretStat(await handle.stat(), file, what);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/**
 * The same check and read, synchronously: for a key ring that re-reads its file in the middle of a
 * request that met a key it does not hold (a few hundred bytes, rate-limited by the caller).
 */
export function readSecretFileSync(file: string, what: string): string {
  const fd = openSync(file, fsConstants.O_RDONLY);
  try {
    checkSecretStat(fstatSync(fd), file, what);
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function checkSecretStat(stat: { isFile(): boolean; mode: number }, file: string, what: string): void {
  if (!stat.isFile()) throw new Error(`${file}: not a regular file`);
  // Windows has no POSIX mode bits (Node reports 0o666 for every file), so the check would refuse everything there.
  if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
    throw new Error(`${file}: permissions ${(stat.mode & 0o777).toString(8).padStart(4, '0')} let group or others access the ${what}; run chmod 600 ${file}`);
  }
}

/**
 * Replaces `file` with `contents` (mode 0600) atomically: written beside, fsynced, renamed over,
 * directory fsynced. Readers see the old file or the new one, never a missing or partial one.
 */
export async function replaceSecretFile(file: string, contents: string | Buffer, mode = 0o600): Promise<void> {
  const dir = path.dirname(file);
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await fs.open(tmp, 'wx', mode);
    try {
      await handle.writeFile(contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, file);
    const dirHandle = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

/**
 * Writes `contents` to `file` (mode 0600) unless it exists. Returns false when another process
 * created it first — then read theirs. link(), not rename(): rename would replace a secret another
 * process already uses; link publishes the complete file atomically and fails with EEXIST instead.
 */
export async function createSecretFileOnce(dir: string, file: string, contents: string | Buffer): Promise<boolean> {
  // A new data dir holds the database and the keys: only the service account may enter it.
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      await handle.writeFile(contents);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    // Make the new directory entry durable: a key lost in a crash loses everything sealed under it.
    const dirHandle = await fs.open(dir, fsConstants.O_RDONLY);
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
    return true;
  } finally {
    await fs.rm(tmp, { force: true });
  }
}
