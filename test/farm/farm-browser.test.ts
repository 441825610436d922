import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { TEST_REDIS_URL } from '../../src/cluster/throwaway-redis.js';
import { appointment } from '../../src/test-support/fixtures.js';
import { adminQuery, databaseUrl } from '../../src/test-support/global-setup.js';
import { pgTemplateDatabase, testLogDir } from '../../src/test-support/paths.js';
import { ensureWebBuild, PASSWORD } from '../browser/support/browser-node.js';
import { launchChromium, newParticipant, pcStats, totalFramesDecoded, waitForVideoFromAll, waitUntil, type Participant } from '../browser/support/chromium.js';
import { admitNext, joinFromDeviceCheck, signInThroughConsult } from '../browser/support/consult-flow.js';
import { FARM_PASSWORD, startFarm, type Farm } from './farm-harness.js';
import { serverStates, until } from './farm-support.js';

const base = process.env.TELESALUD_TEST_DATABASE_URL;
const onPath = (tool: string) => (process.env.PATH ?? '').split(':').some((dir) => existsSync(path.join(dir, tool)));

/**
 * A real consultation in two Chromium pages (fake camera) through HAProxy, the patient's
 * signaling socket on one node and the clinician's on the other: video flows both ways, and
 * when the patient's node is killed the video keeps flowing (it goes browser to browser) while
 * the page's signaling moves to the surviving node by itself.
 */
describe.skipIf(!base)('a browser consultation across two nodes of a farm', { timeout: 240_000 }, () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  });

  it('flows video between participants on different nodes, and keeps it flowing when one participant\'s node is killed', async () => {
    // Skip nothing silently: CI installs both (.ci/run); a machine without them must say so.
    if (!onPath('haproxy')) throw new Error('haproxy is not installed: apt-get install haproxy (the farm test runs its nodes behind it)');
    if (!existsSync('/usr/bin/chromium')) throw new Error('Debian Chromium is not installed: apt-get install chromium (the farm test holds a real consultation in it)');
    const started = Date.now();
    await ensureWebBuild();
    await mkdir(testLogDir(), { recursive: true });
    const dbName = `telesalud_farm_${randomBytes(5).toString('hex')}`;
    await adminQuery(base!, `create database ${dbName} template ${pgTemplateDatabase()}`);
    cleanups.push(() => adminQuery(base!, `drop database if exists ${dbName} with (force)`));
    // The shield on, as in production: real Chromium traffic through HAProxy must pass it.
    const farm: Farm = await startFarm({ nodes: 2, databaseUrl: databaseUrl(base!, dbName), redisUrl: TEST_REDIS_URL, env: { TELESALUD_SHIELD: 'on', TELESALUD_LOG_FILE: path.join(testLogDir(), `farm-browser-${process.pid}.log`) } });
    cleanups.push(() => farm.stop());
    const [clinician, patientAccount] = await farm.accounts([
      { key: 'doctora', role: 'clinician', name: 'Lucía Fernández' },
      { key: 'paciente', role: 'patient', name: 'Tomás Romero' },
    ]);
    // Today, so the consultation is open now.
    const appt = await farm.lb({ method: 'POST', path: '/fhir/R4/Appointment', headers: { authorization: `Bearer ${farm.adminToken}` }, body: appointment(patientAccount!.patientId!, clinician!.practitionerId!, new Date(Date.now() - 5 * 60_000).toISOString(), 20) });
    expect(appt.status, JSON.stringify(appt.body)).toBe(201);
    const appointmentId = appt.body.id as string;
    // The pages sign in with the browser tests' password; the farm's accounts must have it.
    if (PASSWORD !== FARM_PASSWORD) throw new Error('test/browser/support PASSWORD and FARM_PASSWORD differ');

    const browser: Browser = await launchChromium();
    cleanups.push(() => browser.close());
    const setupMs = Date.now() - started;

    /** Only `name` in rotation (the others in maintenance, as an operator drains a node), so the next page's socket lands there. */
    const onlyNode = async (name: string) => {
      for (const other of farm.names) await farm.haproxyCommand(`${other === name ? 'enable' : 'disable'} server nodes/${other}`);
      await until(`HAProxy to send everything to ${name}`, async () => {
        const states = await serverStates(farm.statsSocket);
        return farm.names.every((n) => (n === name ? states[n] === 'UP' : states[n] === 'MAINT'));
      }, 15_000);
    };
    const [patientNode, clinicianNode] = farm.names as [string, string];

    // ── the patient joins through node1 and waits; the clinician joins through node2 and admits ──
    await onlyNode(patientNode);
    const patient: Participant = await newParticipant(browser);
    await signInThroughConsult(patient.page, farm.publicUrl, appointmentId, patientAccount!.email);
    await joinFromDeviceCheck(patient.page);
    await patient.page.getByTestId('waiting-room').waitFor();
    await until('the patient\'s socket on node1', async () => (await farm.socketsOn(patientNode)) === 1, 10_000);

    await onlyNode(clinicianNode);
    const host: Participant = await newParticipant(browser);
    await signInThroughConsult(host.page, farm.publicUrl, appointmentId, clinician!.email, clinician!.totpSecret);
    await joinFromDeviceCheck(host.page);
    await host.page.getByTestId('call').waitFor();
    await admitNext(host.page);
    await patient.page.getByTestId('call').waitFor();
    // Both back in rotation: the browsers' later requests may go anywhere.
    for (const n of farm.names) await farm.haproxyCommand(`enable server nodes/${n}`);
    const placement = { [patientNode]: await farm.socketsOn(patientNode), [clinicianNode]: await farm.socketsOn(clinicianNode) };
    expect(placement, 'one socket on each node').toEqual({ [patientNode]: 1, [clinicianNode]: 1 });

    await Promise.all([waitForVideoFromAll(host.page, 1, 30_000), waitForVideoFromAll(patient.page, 1, 30_000)]);
    const callUpMs = Date.now() - started;
    // Mark the peer connections, to tell afterwards that media went on over the same ones.
    for (const page of [host.page, patient.page]) await page.evaluate(() => ((globalThis as any).__pcs as any[]).filter((pc) => pc.connectionState !== 'closed').forEach((pc) => (pc.__farmTag = 'before-kill')));
    const tags = (page: Participant['page']) => page.evaluate(() => ((globalThis as any).__pcs as any[]).filter((pc) => pc.connectionState !== 'closed').map((pc) => String(pc.__farmTag ?? 'new')));

    // ── SIGKILL the patient's node ──
    const framesAtKill = { host: await totalFramesDecoded(host.page), patient: await totalFramesDecoded(patient.page) };
    const killedAt = Date.now();
    await farm.stopNode(patientNode, 'SIGKILL');
    // Video keeps coming, both ways, while the patient's page finds its way to the other node.
    const flowing = await Promise.all([
      waitUntil('video at the clinician after the kill', () => totalFramesDecoded(host.page), (n) => n >= framesAtKill.host + 30, 20_000),
      waitUntil('video at the patient after the kill', () => totalFramesDecoded(patient.page), (n) => n >= framesAtKill.patient + 30, 20_000),
    ]);
    const framesFlowingMs = Date.now() - killedAt;
    const samePcs = { host: await tags(host.page), patient: await tags(patient.page) };
    // The patient's signaling moved to the surviving node by itself (resume: same place in the room).
    await until('the patient\'s socket to move to node2', async () => (await farm.socketsOn(clinicianNode)) === 2, 30_000, 250);
    const signalingMovedMs = Date.now() - killedAt;
    await patient.page.getByTestId('reconnecting').waitFor({ state: 'detached', timeout: 15_000 });
    await Promise.all([waitForVideoFromAll(host.page, 1, 20_000), waitForVideoFromAll(patient.page, 1, 20_000)]);
    const states = { host: (await pcStats(host.page)).map((s) => s.state), patient: (await pcStats(patient.page)).map((s) => s.state) };

    // Signaling works across the move: the clinician's hang-up reaches the patient.
    await host.page.getByTestId('hang-up').click();
    const ended = patient.page.getByTestId('call-ended');
    await ended.waitFor({ timeout: 15_000 });
    const endedReason = await ended.getAttribute('data-reason');

    const figures = {
      setupMs,
      callUpMs,
      framesAtKill,
      framesAfterKill: { host: flowing[0], patient: flowing[1] },
      framesFlowingMs,
      signalingMovedMs,
      peerConnectionsAfterKill: samePcs,
      connectionStates: states,
      endedReason,
      totalMs: Date.now() - started,
    };
    process.stdout.write(`farm browser figures: ${JSON.stringify(figures)}\n`);
    // The media never depended on the node: the very same peer connections carried it on.
    expect(samePcs).toEqual({ host: ['before-kill'], patient: ['before-kill'] });
    expect(states).toEqual({ host: ['connected'], patient: ['connected'] });
    expect(endedReason).toBe('ended');
  });
});
