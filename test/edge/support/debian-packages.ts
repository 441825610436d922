import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function installed(pkg: string): Promise<boolean> {
  try {
    const { stdout } = await run('dpkg-query', ['-W', '-f', '${Status}', pkg]);
    return stdout.includes('install ok installed');
  } catch {
    return false;
  }
}

/**
 * Debian's own packages of the real tools (nginx, ModSecurity, CRS, testssl.sh, sqlmap), installed
 * when missing as .ci/run does. apt holds one lock for the machine: another install running at the
 * same time is waited for, not failed on.
 */
export async function ensureDebianPackages(packages: string[]): Promise<void> {
  const missing: string[] = [];
  for (const pkg of packages) if (!(await installed(pkg))) missing.push(pkg);
  if (missing.length === 0) return;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const deadline = Date.now() + 10 * 60_000;
  let updated = false;
  for (;;) {
    try {
      if (!updated) await run('apt-get', ['update', '-qq'], { env, timeout: 5 * 60_000 });
      updated = true;
      await run('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=120', ...missing], { env, timeout: 8 * 60_000 });
      return;
    } catch (err) {
      const text = String((err as { stderr?: string }).stderr ?? err);
      if (!/Could not get lock|Unable to acquire|lock-frontend/i.test(text) || Date.now() > deadline) {
        throw new Error(`could not install ${missing.join(' ')} (apt-get install -y ${missing.join(' ')}): ${text.split('\n').filter(Boolean).slice(-2).join(' ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5000));
    }
  }
}
