import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Until accounts exist, the record answers only to the bootstrap admin token: from
 * TELESALUD_ADMIN_TOKEN, or generated once into `<dataDir>/admin-token` (mode 0600).
 */
export async function loadAdminToken(configured: string | undefined, dataDir: string): Promise<{ token: string; file?: string }> {
  if (configured) return { token: configured };
  const file = path.join(dataDir, 'admin-token');
  try {
    return { token: (await readFile(file, 'utf8')).trim(), file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  try {
    await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
    return { token, file };
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { token: (await readFile(file, 'utf8')).trim(), file };
    throw err;
  }
}

export class TokenVerifier {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = createHash('sha256').update(token).digest();
  }

  /** Constant-time comparison of digests, so timing reveals nothing about the token. */
  matches(presented: string | undefined): boolean {
    if (!presented) return false;
    return timingSafeEqual(createHash('sha256').update(presented).digest(), this.digest);
  }
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header) : null;
  return m?.[1];
}
