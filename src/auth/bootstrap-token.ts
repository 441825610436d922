import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecretFileOnce } from '../config/secret-file.js';

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
  const token = randomBytes(32).toString('base64url');
  // Another process may create it first: then use theirs.
  if (await createSecretFileOnce(dataDir, file, `${token}\n`)) return { token, file };
  return { token: (await readFile(file, 'utf8')).trim(), file };
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
