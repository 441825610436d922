import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * deploy/systemd/: the units an operator copies to /etc/systemd/system. systemd's own checker
 * reads them (unknown or misspelt directives, missing executables), its offline security
 * analysis scores their sandbox, and the settings the farm relies on are asserted one by one.
 */
const root = path.resolve(import.meta.dirname, '../..');
const unitsDir = path.join(root, 'deploy/systemd');
const UNITS = ['telesalud.service', 'haproxy.service', 'coturn.service'];

function systemdAnalyze(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, { cwd, env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice', SYSTEMD_COLORS: '0' }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** `Key=value` lines of a unit, every value of a repeated key kept in order. */
async function unitSettings(file: string): Promise<Map<string, string[]>> {
  const settings = new Map<string, string[]>();
  for (const raw of (await readFile(path.join(unitsDir, file), 'utf8')).split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1)]);
  }
  return settings;
}

describe('systemd units in deploy/systemd', () => {
  let work: string;
  beforeAll(async () => {
    // Skip nothing silently: on Debian the checker comes with the systemd package.
    const onPath = (process.env.PATH ?? '').split(':').some((dir) => existsSync(path.join(dir, 'systemd-analyze')));
    if (!onPath) throw new Error('systemd-analyze is not installed: apt-get install systemd (the units in deploy/systemd are checked with it)');
    work = await mkdtemp(path.join(os.tmpdir(), 'telesalud-units-'));
    for (const unit of UNITS) await copyFile(path.join(unitsDir, unit), path.join(work, unit));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each(UNITS)('%s passes systemd-analyze verify without a single warning', async (unit) => {
    const result = await systemdAnalyze(['verify', '--man=no', `./${unit}`], work);
    // verify exits 0 on an unknown directive and only warns: any output is a defect.
    expect(result.stderr + result.stdout).toBe('');
    expect(result.code).toBe(0);
  });

  it.each(UNITS)('%s is sandboxed: offline security exposure at most 2.5 ("OK")', async (unit) => {
    const result = await systemdAnalyze(['security', '--offline=true', '--threshold=25', `./${unit}`], work);
    const exposure = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(result.stdout)?.[1]);
    expect(exposure, result.stdout.slice(-400) + result.stderr).toBeLessThanOrEqual(2.5);
    expect(result.code).toBe(0);
  });

  it('runs the node unprivileged, read-only outside its data dir, with its environment file, restarted on failure', async () => {
    const s = await unitSettings('telesalud.service');
    expect(s.get('User')).toEqual(['telesalud']);
    expect(s.get('NoNewPrivileges')).toEqual(['yes']);
    expect(s.get('CapabilityBoundingSet')).toEqual(['']);
    expect(s.get('AmbientCapabilities')).toEqual(['']);
    expect(s.get('ProtectSystem')).toEqual(['strict']);
    expect(s.get('PrivateTmp')).toEqual(['yes']);
    expect(s.get('ReadWritePaths')).toEqual(['/var/lib/telesalud']);
    expect(s.get('StateDirectory')).toEqual(['telesalud']);
    expect(s.get('Environment')?.join(' ')).toContain('TELESALUD_DATA_DIR=/var/lib/telesalud');
    expect(s.get('EnvironmentFile')).toEqual(['/etc/telesalud/telesalud.env']);
    expect(s.get('Restart')).toEqual(['on-failure']);
    expect(s.get('ExecStart')?.[0]).toMatch(/telesalud\.js serve$/);
    // The account it runs as is created by the sysusers file beside it.
    expect(await readFile(path.join(unitsDir, 'telesalud.sysusers.conf'), 'utf8')).toMatch(/^u telesalud /m);
  });

  it('gives a stopping node longer than its drain and shutdown take, so systemd never SIGKILLs requests in flight', async () => {
    const s = await unitSettings('telesalud.service');
    expect(s.get('KillSignal')).toEqual(['SIGTERM']);
    const stopSeconds = Number(/^(\d+)s$/.exec(s.get('TimeoutStopSec')?.[0] ?? '')?.[1]);
    const env = Object.fromEntries(
      (await readFile(path.join(unitsDir, 'telesalud.env.example'), 'utf8'))
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const drainMs = Number(env.TELESALUD_DRAIN_DELAY_MS);
    const shutdownMs = Number(env.TELESALUD_SHUTDOWN_TIMEOUT_MS);
    expect(drainMs).toBeGreaterThan(0);
    expect(shutdownMs).toBeGreaterThan(0);
    expect(stopSeconds * 1000).toBeGreaterThan(drainMs + shutdownMs);
  });

  it('lets HAProxy and coturn bind their low ports with that one capability and nothing more', async () => {
    for (const unit of ['haproxy.service', 'coturn.service']) {
      const s = await unitSettings(unit);
      expect(s.get('CapabilityBoundingSet'), unit).toEqual(['CAP_NET_BIND_SERVICE']);
      expect(s.get('AmbientCapabilities'), unit).toEqual(['CAP_NET_BIND_SERVICE']);
      expect(s.get('NoNewPrivileges'), unit).toEqual(['yes']);
      expect(s.get('ProtectSystem'), unit).toEqual(['strict']);
      expect(s.get('User')?.[0], unit).not.toBe('root');
    }
    // HAProxy refuses a configuration that does not parse before it replaces the running one.
    expect((await unitSettings('haproxy.service')).get('ExecReload')?.[0]).toMatch(/haproxy -f \$\{CONFIG\} -c/);
  });
});
