/**
 * Consultation media: how long the clinician's "admit" takes to become video on both screens,
 * with end-to-end frame encryption on and off, and what the encryption adds to the video bitrate.
 *
 * Two Chromium pages (fake camera and microphone, Debian's chromium), each in its own browser
 * as on two devices, on one node over loopback HTTPS, no ICE servers. The pages sign in once,
 * then each run is a whole consultation: the patient opens the page, passes the device check
 * and waits; the clinician opens it, joins and clicks admit; the run ends with the clinician's
 * hang-up and the room destroyed. Runs alternate encrypted and not (ABBA order, after one
 * warm-up run that is not counted), on the same node, browsers and appointment.
 *
 * Encryption cannot be switched off in the product. The pages here run the app's bench build
 * (`vite build --mode bench`, into a temporary directory, never dist/web), whose ConsultPage
 * honours `?e2ee=off`; Playwright's context.route answers the pages' /assets/ requests from that
 * build, so the node itself only ever serves the product build (which ignores the query). The
 * bench refuses to run if dist/web contains the switch.
 *
 * Admit → first frame: the clinician page notes Date.now() when the admit button's click is
 * dispatched (capture listener, before the app's handler); each page polls getStats of its
 * RTCPeerConnections every 20 ms (in the page, not over the Playwright protocol) and notes when
 * inbound video first has framesDecoded > 0. Chromium may answer getStats from a cache up to
 * ~50 ms old, so the figures can be late by up to ~70 ms, alike in both modes. "Both sides" is
 * the later of the two.
 *
 * Bitrate: on the first BENCH_MEDIA_BITRATE_RUNS runs of each mode, once both sides decode, a
 * settling pause, then a steady window of BENCH_MEDIA_WINDOW_SECONDS over which both pages'
 * video outbound-rtp bytesSent + headerBytesSent (RTP payload and RTP headers) are summed;
 * windows in which an encoder was held back by CPU or bandwidth for over 10% of the time
 * (qualityLimitationDurations: a busy machine) are left out while clean ones remain. The
 * encryption's cost is in the payload: each sealed frame carries the 16-byte AES-GCM tag and a
 * 14-byte trailer (12-byte IV + 2-byte key id), 30 bytes per frame whatever its size (see
 * web/src/consult/e2ee/frame-cryptor.worker.ts); the clear codec header is there in both
 * modes. headerBytesSent catches the extra RTP packets when those bytes push a frame over a
 * packet boundary. The encoder does not know of the trailer, so its output is the same target
 * in both modes and the difference is what the network carries on top.
 *
 * Environment: BENCH_MEDIA_RUNS (7 per mode, at least 7), BENCH_MEDIA_BITRATE_RUNS (3 per
 * mode), BENCH_MEDIA_WINDOW_SECONDS (10), BENCH_MEDIA_BUDGET_SECONDS (160: no new run starts
 * after that; the figures then say how many runs were made), BENCH_MEDIA_SHIELD (on: the node's
 * shield inspects every request as in production; "off" to measure without it).
 *
 * `npx tsx bench/consult-media.ts` prints the figures; `benchConsultMedia()` returns them.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { webAppDir } from '../src/server/web-app-routes.js';
import { startBrowserNode, type BrowserNode } from '../test/browser/support/browser-node.js';
import { launchChromium, newParticipant, waitUntil, type Participant } from '../test/browser/support/chromium.js';
import { admitNext, joinFromDeviceCheck, signInThroughConsult } from '../test/browser/support/consult-flow.js';

const TARGET_ADMIT_TO_FRAME_MS = 1000;
const TARGET_RATIO = 1.15;
const TARGET_OVERHEAD_PERCENT = 2;
/** What sealing adds to every frame: 16-byte GCM tag + 12-byte IV + 2-byte key id (frame-cryptor.worker.ts). */
const SEALING_BYTES_PER_FRAME = 16 + 12 + 2;
const MIN_RUNS = 7;
/** Share of a bitrate window the encoders may spend limited by CPU or bandwidth and still count. */
const LIMITED_SHARE_ALLOWED = 0.1;
const REPO_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The bench build's switch as it reads in the bundle; the product bundle must not contain it. */
const SWITCH_IN_BUNDLE = /get\(\s*["'`]e2ee["'`]\s*\)/;

export interface MediaBenchOptions {
  /** Counted runs per mode (at least 7). */
  runs?: number;
  /** Runs per mode, the first ones, that also measure the bitrate. */
  bitrateRuns?: number;
  windowSeconds?: number;
  /** No new run starts after this long. */
  budgetSeconds?: number;
  /** The node's shield (TELESALUD_SHIELD); on by default, as in production. */
  shield?: boolean;
  log?: (line: string) => void;
}

interface SenderBytes {
  /** RTP payload + RTP header bytes of the page's video senders. */
  bytes: number;
  frames: number;
  width: number;
  height: number;
  /** Seconds the encoder spent held back by CPU or bandwidth (qualityLimitationDurations). */
  limitedSeconds: number;
  at: number;
}

export interface MediaRun {
  e2ee: boolean;
  clinicianMs: number;
  patientMs: number;
  /** The later side: both screens show the other. */
  bothMs: number;
  /** Since admit, the later page: connection made (the patient's, on admission), connected, first video bytes in. */
  phases: { pcMs: number; connectedMs: number; bytesMs: number };
  /** Both senders together over the window, when this run measured it. */
  window?: { seconds: number; bytes: number; frames: number; width: number; height: number; limitedShare: number };
}

export interface ModeFigures {
  runs: number;
  medianMs: number;
  p90Ms: number;
  clinicianMedianMs: number;
  patientMedianMs: number;
  phases: MediaRun['phases'];
  /** Median over the bitrate runs, per sender. */
  kbitPerSecond: number;
  bytesPerFrame: number;
  /** Bitrate windows counted, and left out because the encoder was held back in them. */
  windows: number;
  windowsLeftOut: number;
  /** Every window of this mode was held back: its bitrate is that of a starved encoder. */
  windowsAllLimited: boolean;
}

export interface ConsultMediaFigures {
  on: ModeFigures;
  off: ModeFigures;
  runs: MediaRun[];
  /** Median encrypted / median not encrypted, both sides. */
  ratio: number;
  overheadPercent: number;
  /** The 30 bytes per frame as a share of what the encrypted runs sent. */
  sealingPercent: number;
  frameTransform: string;
  windowSeconds: number;
  shield: string;
  /** Highest 1-minute load average seen after a run: other work on the machine slows calls. */
  machineLoad: number;
  seconds: number;
  stoppedEarly: string | undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => quantile(xs, 0.5);
function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.min(lo + 1, sorted.length - 1)]! - sorted[lo]!) * (at - lo);
}

/** The bench build of the web app, in `dir`; checked to hold the switch (and the product build checked not to). */
async function buildBenchWebApp(dir: string): Promise<void> {
  const productAssets = path.join(webAppDir(), 'assets');
  if (existsSync(productAssets)) {
    for (const file of await readdir(productAssets)) {
      if (file.endsWith('.js') && SWITCH_IN_BUNDLE.test(await readFile(path.join(productAssets, file), 'utf8'))) {
        throw new Error(`the product build dist/web/assets/${file} holds the bench-only encryption switch: it was built with --mode bench; rebuild it with npm run build`);
      }
    }
  }
  await promisify(execFile)(path.join(REPO_DIR, 'node_modules/.bin/vite'), ['build', '--config', 'web/vite.config.ts', '--mode', 'bench', '--outDir', dir, '--emptyOutDir', '--logLevel', 'warn'], { cwd: REPO_DIR, timeout: 120_000 });
  const bundles = (await readdir(path.join(dir, 'assets'))).filter((f) => f.endsWith('.js'));
  const texts = await Promise.all(bundles.map((f) => readFile(path.join(dir, 'assets', f), 'utf8')));
  if (!texts.some((t) => SWITCH_IN_BUNDLE.test(t))) throw new Error('the bench build has no encryption switch (web/src/consult/ConsultPage.tsx, __BENCH_BUILD__)');
}

/** The /assets/ files an index.html loads, in order (the same template in both builds). */
const assetRefs = (html: string) => [...html.matchAll(/(?:src|href)="\/assets\/([^"]+)"/g)].map((m) => m[1]!);

/**
 * The context's pages run the bench build. The node serves its own pages (the product's
 * index.html, headers and all: answering a navigation from here would cost the page its
 * SameSite=Strict session cookie on the signaling socket, Chromium drops it then); what
 * changes is the code: every /assets/ request is answered with the bench build's file — the
 * product's entry script and stylesheet by their place in index.html, the rest (the frame
 * cryptor worker) by name — under the headers the node gives that asset (CSP, permissions).
 */
async function serveBenchBuild(context: BrowserContext, origin: string, buildDir: string, served: Set<string>): Promise<void> {
  const product = assetRefs(await readFile(path.join(webAppDir(), 'index.html'), 'utf8'));
  const bench = assetRefs(await readFile(path.join(buildDir, 'index.html'), 'utf8'));
  if (product.length !== bench.length || product.length === 0) throw new Error(`dist/web/index.html and the bench build load different assets (${product.join(', ')} / ${bench.join(', ')})`);
  const benchFor = new Map(product.map((name, i) => [name, bench[i]!]));
  let assetHeaders: Record<string, string> | undefined;
  await context.route(`${origin}/assets/**`, async (route) => {
    const name = new URL(route.request().url()).pathname.slice('/assets/'.length);
    const file = path.join(buildDir, 'assets', benchFor.get(name) ?? name);
    if (route.request().method() !== 'GET' || name.includes('/') || !existsSync(file)) return route.fulfill({ status: 404, body: 'not in the bench build' });
    const response = await route.fetch();
    served.add(path.basename(file));
    if (response.ok()) {
      assetHeaders ??= Object.fromEntries(Object.entries(response.headers()).filter(([h]) => !['content-type', 'content-length', 'etag', 'last-modified'].includes(h)));
      return route.fulfill({ response, body: await readFile(file) });
    }
    // A name only the bench build has (dist/web is older than the source): the node's headers for its assets.
    return route.fulfill({ status: 200, headers: { ...assetHeaders, 'content-type': file.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8' }, body: await readFile(file) });
  });
}

/**
 * In every page: when the admit click is dispatched, and when inbound video first decodes
 * (getStats of the connections the chromium.ts hook keeps on window.__pcs, every 20 ms).
 * Runs in the page; typed loosely because this file compiles without the DOM library.
 */
/** Wall-clock moments (Date.now(): one clock for both pages) one page notes during a run. */
interface PageMoments {
  /** The admit click was dispatched (the clinician's page). */
  admitAt?: number;
  /** Its RTCPeerConnection was made, connected, first received video bytes, first decoded a video frame. */
  pcAt?: number;
  connectedAt?: number;
  bytesAt?: number;
  firstFrameAt?: number;
}

/**
 * In every page: when the admit click is dispatched, when the connection is made and
 * connected, and when inbound video first arrives and first decodes (getStats of the
 * connections the chromium.ts hook keeps on window.__pcs, every 20 ms).
 * Runs in the page; typed loosely because this file compiles without the DOM library.
 */
async function addBenchHooks(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const w = globalThis as any;
    const bench: PageMoments = {};
    w.__bench = bench;
    w.addEventListener('click', (event: any) => {
      if (event.target?.closest?.('[data-testid="admit"]')) bench.admitAt ??= Date.now();
    }, true);
    const Tracked = w.RTCPeerConnection;
    w.RTCPeerConnection = class extends Tracked {
      constructor(...args: unknown[]) {
        super(...args);
        bench.pcAt ??= Date.now();
        this.addEventListener('connectionstatechange', () => {
          if (this.connectionState === 'connected') bench.connectedAt ??= Date.now();
        });
      }
    };
    let busy = false;
    const timer = setInterval(async () => {
      const pcs = ((w.__pcs ?? []) as any[]).filter((pc) => pc.connectionState !== 'closed');
      if (busy || pcs.length === 0) return;
      busy = true;
      try {
        for (const pc of pcs) {
          const report = await pc.getStats();
          for (const s of report.values()) {
            if (s.type !== 'inbound-rtp' || s.kind !== 'video') continue;
            if (s.bytesReceived > 0) bench.bytesAt ??= Date.now();
            if (s.framesDecoded > 0) {
              bench.firstFrameAt = Date.now();
              clearInterval(timer);
              return;
            }
          }
        }
      } finally {
        busy = false;
      }
    }, 20);
  });
}

async function senderBytes(page: Page): Promise<SenderBytes> {
  return page.evaluate(async () => {
    const pcs = ((globalThis as any).__pcs as any[]).filter((pc) => pc.connectionState !== 'closed');
    const out = { bytes: 0, frames: 0, width: 0, height: 0, limitedSeconds: 0, at: Date.now() };
    for (const pc of pcs) {
      for (const s of (await pc.getStats()).values() as Iterable<any>) {
        if (s.type !== 'outbound-rtp' || s.kind !== 'video') continue;
        out.bytes += (s.bytesSent ?? 0) + (s.headerBytesSent ?? 0);
        out.frames += s.framesSent ?? 0;
        out.width = Math.max(out.width, s.frameWidth ?? 0);
        out.height = Math.max(out.height, s.frameHeight ?? 0);
        out.limitedSeconds += (s.qualityLimitationDurations?.cpu ?? 0) + (s.qualityLimitationDurations?.bandwidth ?? 0);
      }
    }
    return out;
  });
}

/** Where each page stands (its screen's test id and reason), for a failed run's message. */
async function describePages(pages: Record<string, Page>): Promise<string> {
  const parts = await Promise.all(
    Object.entries(pages).map(async ([who, page]) => {
      const screen = await page
        .evaluate(() => {
          const main = (globalThis as any).document.querySelector('main');
          return main ? `${main.getAttribute('data-testid') ?? 'main'}${main.getAttribute('data-reason') ? ` (${main.getAttribute('data-reason')})` : ''}` : 'no screen';
        })
        .catch((err: Error) => `unreadable: ${err.message}`);
      return `${who} at ${new URL(page.url()).pathname}: ${screen}`;
    }),
  );
  return parts.join(', ');
}

const benchState = (page: Page) => page.evaluate(() => (globalThis as any).__bench as PageMoments);

/**
 * A node with its own PGlite copy: the browser tests' node (test/browser/support/browser-node.ts),
 * whose template the test run's global setup would make; here a run dir of our own holds it.
 */
async function startNodeOutsideVitest(shield: boolean): Promise<{ web: BrowserNode; stop(): Promise<void> }> {
  const runDir = await mkdtemp(path.join(os.tmpdir(), `telesalud-bench-${process.pid}-media-`));
  const previous = process.env.TELESALUD_TEST_RUN_DIR;
  process.env.TELESALUD_TEST_RUN_DIR = runDir;
  let dropTemplates: (() => Promise<void>) | undefined;
  const restore = async () => {
    await dropTemplates?.().catch(() => undefined);
    if (previous === undefined) delete process.env.TELESALUD_TEST_RUN_DIR;
    else process.env.TELESALUD_TEST_RUN_DIR = previous;
    await rm(runDir, { recursive: true, force: true });
  };
  try {
    const { default: prepareTemplates } = await import('../src/test-support/global-setup.js');
    dropTemplates = await prepareTemplates();
    const web = await startBrowserNode({ TELESALUD_SHIELD: shield ? 'on' : 'off' });
    return {
      web,
      async stop() {
        await web.stop().catch(() => undefined);
        await restore();
      },
    };
  } catch (err) {
    await restore();
    throw err;
  }
}

export async function benchConsultMedia(options: MediaBenchOptions = {}): Promise<ConsultMediaFigures> {
  const runs = Math.max(options.runs ?? MIN_RUNS, MIN_RUNS);
  const bitrateRuns = Math.min(options.bitrateRuns ?? 3, runs);
  const windowSeconds = options.windowSeconds ?? 10;
  const budgetMs = (options.budgetSeconds ?? 160) * 1000;
  const log = options.log ?? (() => undefined);
  const started = performance.now();
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const buildDir = await mkdtemp(path.join(os.tmpdir(), `telesalud-bench-${process.pid}-media-web-`));
    cleanups.push(() => rm(buildDir, { recursive: true, force: true }));
    await buildBenchWebApp(buildDir);
    log(`bench build of the web app in ${buildDir}`);

    const node = await startNodeOutsideVitest(options.shield ?? true);
    cleanups.push(() => node.stop());
    const { web } = node;
    const doctor = await web.account('doctora-bench', 'clinician', 'Clínica Bench');
    const patientAccount = await web.account('paciente-bench', 'patient', 'Paciente Bench');
    const appointmentId = await web.appointment(patientAccount.patientId!, doctor.practitionerId!);

    const served = new Set<string>();
    const pageErrors: string[] = [];
    // Each in a Chromium of its own, as on two devices: two pages of one browser share its fake
    // camera, and reopening it at each run's page load held both senders' video back ~2.4 s.
    const participant = async (): Promise<Participant> => {
      const browser: Browser = await launchChromium();
      cleanups.push(() => browser.close());
      const p = await newParticipant(browser);
      await addBenchHooks(p.context);
      await serveBenchBuild(p.context, web.origin, buildDir, served);
      p.page.on('pageerror', (err) => pageErrors.push(err.message));
      return p;
    };
    const host = await participant();
    const patient = await participant();
    await signInThroughConsult(host.page, web.origin, appointmentId, doctor.email, doctor.totpSecret);
    await signInThroughConsult(patient.page, web.origin, appointmentId, patientAccount.email);
    const benchEntry = assetRefs(await readFile(path.join(buildDir, 'index.html'), 'utf8')).find((f) => f.endsWith('.js'));
    if (!benchEntry || !served.has(benchEntry)) throw new Error('the pages did not load the bench build');
    const failed = async (what: string, err: unknown) =>
      new Error(`${what}: ${(err as Error).message}; ${await describePages({ clinician: host.page, patient: patient.page })}${pageErrors.length ? `; page errors: ${pageErrors.slice(-3).join(' | ')}` : ''}`);
    const frameTransform = await host.page.evaluate(() => ('RTCRtpScriptTransform' in globalThis ? 'RTCRtpScriptTransform' : 'createEncodedStreams' in ((globalThis as any).RTCRtpSender?.prototype ?? {}) ? 'encoded insertable streams' : 'none'));

    const consultUrl = (e2ee: boolean) => `${web.origin}/consult/${appointmentId}${e2ee ? '' : '?e2ee=off'}`;
    const oneRun = async (e2ee: boolean, measureBitrate: boolean): Promise<MediaRun> => {
      await patient.page.goto(consultUrl(e2ee));
      await joinFromDeviceCheck(patient.page);
      await patient.page.getByTestId('waiting-room').waitFor();
      await host.page.goto(consultUrl(e2ee));
      await joinFromDeviceCheck(host.page);
      await host.page.getByTestId('call').waitFor();
      await admitNext(host.page, e2ee);
      const firstFrame = (page: Page) => page.waitForFunction(() => (globalThis as any).__bench.firstFrameAt, undefined, { polling: 50, timeout: 20_000 });
      await Promise.all([firstFrame(host.page), firstFrame(patient.page)]);
      const [h, p] = await Promise.all([benchState(host.page), benchState(patient.page)]);
      if (h.admitAt === undefined) throw new Error('the admit click was not seen');
      // What was measured is what was meant: both pages encrypt, or both do not.
      const expected = e2ee ? 'encrypted' : 'not-encrypted';
      for (const page of [host.page, patient.page]) {
        const status = await page.getByTestId('e2ee-status').getAttribute('data-state');
        if (status !== (e2ee ? 'on' : 'off')) throw new Error(`e2ee-status ${status} in a run with encryption ${e2ee ? 'on' : 'off'}`);
        await waitUntil(`peer ${expected}`, () => page.getByTestId('peer-encryption').getAttribute('data-state'), (s) => s === expected, 5_000, 50);
      }
      const later = (k: keyof PageMoments) => Math.max(h[k] ?? NaN, p[k] ?? NaN) - h.admitAt!;
      const run: MediaRun = { e2ee, clinicianMs: h.firstFrameAt! - h.admitAt, patientMs: p.firstFrameAt! - h.admitAt, bothMs: later('firstFrameAt'), phases: { pcMs: later('pcAt'), connectedMs: later('connectedAt'), bytesMs: later('bytesAt') } };
      if (measureBitrate) {
        // Past the start-up (bandwidth estimate ramping, first key frames) into the steady call.
        await sleep(3000);
        const before = await Promise.all([senderBytes(host.page), senderBytes(patient.page)]);
        await sleep(windowSeconds * 1000);
        const after = await Promise.all([senderBytes(host.page), senderBytes(patient.page)]);
        const sum = (f: (s: SenderBytes, i: number) => number) => f(after[0]!, 0) + f(after[1]!, 1);
        run.window = {
          seconds: sum((s, i) => s.at - before[i]!.at) / 2 / 1000,
          bytes: sum((s, i) => s.bytes - before[i]!.bytes),
          frames: sum((s, i) => s.frames - before[i]!.frames),
          width: Math.max(after[0]!.width, after[1]!.width),
          height: Math.max(after[0]!.height, after[1]!.height),
          limitedShare: sum((s, i) => s.limitedSeconds - before[i]!.limitedSeconds) / (2 * windowSeconds),
        };
      }
      await host.page.getByTestId('hang-up').click();
      await patient.page.getByTestId('call-ended').waitFor();
      await waitUntil('room destroyed', async () => web.node.ctx.consult.room(appointmentId), (r) => r === undefined, 5_000, 50);
      return run;
    };

    // One warm-up (first call in these browsers: codecs, worker, JIT), then ABBA: on off off on on off …
    try {
      await oneRun(true, false);
    } catch (err) {
      throw await failed('warm-up run', err);
    }
    const order = Array.from({ length: 2 * runs }, (_, i) => Math.floor((i + 1) / 2) % 2 === 0);
    const done: MediaRun[] = [];
    let stoppedEarly: string | undefined;
    let machineLoad = 0;
    for (let i = 0; i < order.length; i++) {
      if (performance.now() - started > budgetMs) {
        stoppedEarly = `time budget of ${(budgetMs / 1000).toFixed(0)} s reached after ${done.length} runs`;
        break;
      }
      const e2ee = order[i]!;
      // The first runs of each mode: if the time budget ends the loop early, the bitrate is already measured.
      const earlierOfMode = order.slice(0, i).filter((x) => x === e2ee).length;
      try {
        done.push(await oneRun(e2ee, earlierOfMode < bitrateRuns));
      } catch (err) {
        throw await failed(`run ${i + 1} (encryption ${e2ee ? 'on' : 'off'})`, err);
      }
      machineLoad = Math.max(machineLoad, os.loadavg()[0]!);
      const last = done[done.length - 1]!;
      log(`  run ${i + 1}/${order.length} encryption ${e2ee ? 'on ' : 'off'}: admit → frames ${last.bothMs} ms (clinician ${last.clinicianMs}, patient ${last.patientMs})${last.window ? `, ${((last.window.bytes * 8) / last.window.seconds / 2000).toFixed(0)} kbit/s per sender, ${(last.window.bytes / last.window.frames).toFixed(0)} B/frame${last.window.limitedShare > 0 ? `, encoder held back by CPU or bandwidth ${(last.window.limitedShare * 100).toFixed(0)}% of the window` : ''}` : ''}`);
    }
    // The page, its stylesheet and the frame cryptor worker all came from the bench build.
    const unserved = (await readdir(path.join(buildDir, 'assets'))).filter((f) => !served.has(f));
    if (unserved.length > 0) throw new Error(`the pages loaded ${unserved.join(', ')} from elsewhere than the bench build`);

    const mode = (e2ee: boolean): ModeFigures => {
      const of = done.filter((r) => r.e2ee === e2ee);
      const all = of.flatMap((r) => (r.window ? [r.window] : []));
      // A window in which the encoder was held back (CPU, bandwidth) encodes differently: left out while clean ones remain.
      const clean = all.filter((w) => w.limitedShare <= LIMITED_SHARE_ALLOWED);
      const windows = clean.length > 0 ? clean : all;
      return {
        runs: of.length,
        medianMs: median(of.map((r) => r.bothMs)),
        p90Ms: quantile(of.map((r) => r.bothMs), 0.9),
        clinicianMedianMs: median(of.map((r) => r.clinicianMs)),
        patientMedianMs: median(of.map((r) => r.patientMs)),
        phases: { pcMs: median(of.map((r) => r.phases.pcMs)), connectedMs: median(of.map((r) => r.phases.connectedMs)), bytesMs: median(of.map((r) => r.phases.bytesMs)) },
        kbitPerSecond: median(windows.map((w) => (w.bytes * 8) / w.seconds / 2 / 1000)),
        bytesPerFrame: median(windows.map((w) => w.bytes / w.frames)),
        windows: windows.length,
        windowsLeftOut: all.length - windows.length,
        windowsAllLimited: clean.length === 0 && all.length > 0,
      };
    };
    const on = mode(true);
    const off = mode(false);
    const sealed = done.flatMap((r) => (r.e2ee && r.window && r.window.limitedShare <= LIMITED_SHARE_ALLOWED ? [r.window] : []));
    return {
      on,
      off,
      runs: done,
      ratio: on.medianMs / off.medianMs,
      overheadPercent: (on.kbitPerSecond / off.kbitPerSecond - 1) * 100,
      sealingPercent: median(sealed.map((w) => ((SEALING_BYTES_PER_FRAME * w.frames) / w.bytes) * 100)),
      frameTransform,
      windowSeconds,
      machineLoad,
      shield: (options.shield ?? true) ? 'on' : 'off (TELESALUD_SHIELD=off)',
      seconds: (performance.now() - started) / 1000,
      stoppedEarly,
    };
  } finally {
    while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
  }
}

export function printConsultMediaFigures(f: ConsultMediaFigures, log: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): void {
  const ratio = (n: number) => `${n.toFixed(2)}×`;
  const ms = (n: number) => `${n.toFixed(0)} ms`;
  const w = f.runs.find((r) => r.window)?.window;
  log('');
  log(`Consultation media, two Chromium browsers on loopback (fake camera and microphone, no ICE servers; frame encryption through ${f.frameTransform}${w ? `; video ${w.width}×${w.height}` : ''})`);
  log(`  admit → first decoded video frame on both sides, ${f.on.runs} + ${f.off.runs} runs alternated (after one warm-up run):`);
  log(`    encrypted:     median ${ms(f.on.medianMs)}, p90 ${ms(f.on.p90Ms)} (target ≤ ${TARGET_ADMIT_TO_FRAME_MS} ms: ${ratio(f.on.medianMs / TARGET_ADMIT_TO_FRAME_MS)}); clinician side ${ms(f.on.clinicianMedianMs)}, patient side ${ms(f.on.patientMedianMs)}`);
  log(`    not encrypted: median ${ms(f.off.medianMs)}, p90 ${ms(f.off.p90Ms)}; clinician side ${ms(f.off.clinicianMedianMs)}, patient side ${ms(f.off.patientMedianMs)}`);
  const phases = (m: ModeFigures) => `connections made ${ms(m.phases.pcMs)}, connected ${ms(m.phases.connectedMs)}, first video bytes ${ms(m.phases.bytesMs)}, decoded ${ms(m.medianMs)}`;
  log(`    where it goes (medians since admit, the later page): encrypted: ${phases(f.on)}; not: ${phases(f.off)}`);
  log(`    encrypted / not encrypted: ${ratio(f.ratio)} median, ${ratio(f.on.p90Ms / f.off.p90Ms)} p90 (target ≤ ${TARGET_RATIO.toFixed(2)}×)`);
  if (Number.isNaN(f.on.kbitPerSecond) || Number.isNaN(f.off.kbitPerSecond)) {
    log('  video bitrate: not measured (no bitrate run of each mode)');
  } else {
    const counted = (m: ModeFigures) => `${m.windows} window${m.windows === 1 ? '' : 's'}${m.windowsLeftOut ? ` (${m.windowsLeftOut} left out: encoder held back)` : ''}${m.windowsAllLimited ? ' (all held back by CPU or bandwidth: unreliable)' : ''}`;
    log(`  video bitrate per sender over ${f.windowSeconds} s steady windows (RTP payload + headers, median; encrypted ${counted(f.on)}, not ${counted(f.off)}):`);
    log(`    encrypted ${f.on.kbitPerSecond.toFixed(0)} kbit/s, not encrypted ${f.off.kbitPerSecond.toFixed(0)} kbit/s → overhead ${f.overheadPercent.toFixed(2)}% (target ≤ ${TARGET_OVERHEAD_PERCENT}%: ${ratio(Math.max(f.overheadPercent, 0) / TARGET_OVERHEAD_PERCENT)})`);
    log(`    per frame: ${f.on.bytesPerFrame.toFixed(0)} B encrypted, ${f.off.bytesPerFrame.toFixed(0)} B not; sealing adds ${SEALING_BYTES_PER_FRAME} B a frame (GCM tag, IV, key id) = ${f.sealingPercent.toFixed(2)}% of the encrypted bytes (the measured overhead also carries the encoder's run-to-run spread)`);
  }
  log(`  the node's shield: ${f.shield}`);
  if (f.stoppedEarly) log(`  stopped early: ${f.stoppedEarly}`);
  if (f.machineLoad > os.cpus().length) log(`  note: machine load reached ${f.machineLoad.toFixed(1)} on ${os.cpus().length} cores: the times are inflated by other work (the ratio holds better, the modes alternate)`);
  log(`  took ${f.seconds.toFixed(0)} s`);
}

const isMain = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const int = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);
  benchConsultMedia({ runs: int('BENCH_MEDIA_RUNS', MIN_RUNS), bitrateRuns: int('BENCH_MEDIA_BITRATE_RUNS', 3), windowSeconds: int('BENCH_MEDIA_WINDOW_SECONDS', 10), budgetSeconds: int('BENCH_MEDIA_BUDGET_SECONDS', 160), shield: process.env.BENCH_MEDIA_SHIELD !== 'off', log: (l) => process.stdout.write(`${l}\n`) })
    .then((figures) => printConsultMediaFigures(figures))
    .catch((err: Error) => {
      process.stderr.write(`consult media bench failed: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    });
}
