import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { webAppDir } from '../../src/server/web-app-routes.js';
import { ensureWebBuild } from './support/browser-node.js';

/** The staff areas' chunks (vite names a chunk after its entry module): a patient's browser never loads them. */
const STAFF_CHUNK = /^(?:AdminApp|ClinicApp|ClinicianCall|clinic)-/;
const BUDGET_BYTES = 300 * 1024;

describe('JavaScript shipped to a patient', () => {
  let assets: string[];
  beforeAll(async () => {
    await ensureWebBuild();
    assets = (await readdir(path.join(webAppDir(), 'assets'))).filter((f) => f.endsWith('.js'));
  });

  it('stays under 300 KB gzipped, everything a patient can load (portal, consultation) counted and the staff areas left out', async () => {
    const patient = assets.filter((f) => !STAFF_CHUNK.test(f));
    expect(patient.some((f) => f.startsWith('PortalApp-'))).toBe(true);
    expect(assets.some((f) => f.startsWith('AdminApp-'))).toBe(true);
    let total = 0;
    for (const file of patient) total += gzipSync(await readFile(path.join(webAppDir(), 'assets', file)), { level: 9 }).length;
    expect(total).toBeLessThan(BUDGET_BYTES);
  });
});
