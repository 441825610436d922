import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fs } from 'node:fs';

/**
 * Secret files in the data dir (master key, audit signing key, admin token): read only when
 * nobody but the owner may access them, created once even when several processes start together.
 */
export async function readSecretFile(file: string, what: string): Promise<string> {
  // Permissions are checked on the open handle (fstat), so the file checked is the file read.
  const handle = await fs.open(file, fsConstants.O_RDONLY);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new Error(`${file}: not a regular file`);
    // Windows has no POSIX mode bits (Node reports 0o666 for every file), so the check would refuse everything there.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      throw new Error(`${file}: permissions ${(stat.mode & 0o777).toString(8).padStart(4, '0')} let group or others access the ${what}; run chmod 600 ${file}`);
    }
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
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
