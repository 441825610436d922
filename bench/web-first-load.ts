/**
 * First load of the patient portal in a real browser: how long a patient waits, on a cold
 * cache, before the sign-in page can be used, and once signed in before /portal shows their
 * appointments; and how much JavaScript they download for it.
 *
 * `telesalud serve --demo` (the build in dist/, embedded PGlite, the demo clinic and its demo
 * patient, who has a telehealth appointment today) as its own process; Debian's Chromium
 * through playwright-core. Every run is a new browser context: empty HTTP cache, no service
 * worker, no cookies — what a first visit is. Loopback, so the figures are the browser's and
 * the node's work (parse, compile, render, API round trips) without network latency: a phone
 * on 4G adds its round trips and transfer time on top.
 *
 * Each page carries an init script that notes performance.now() (ms since navigation start)
 * at the moment the element that means "ready" enters the DOM: the sign-in form, rendered by
 * React with its handlers attached (React attaches events at the root before the first
 * commit), so it is interactive; and, on /portal, the first appointment card (the demo patient
 * always has one, today's telehealth appointment: the list is there once its data is). A MutationObserver sees it at the commit that inserts it,
 * before paint, so the figures can be early by one frame (~16 ms). Navigation timing gives
 * time to first byte, DOMContentLoaded and load; the paint timeline the first contentful paint.
 *
 * The signed-in run signs in through the context's own request client first (it sets the
 * session cookie without loading any asset), so the portal load is still a cold one.
 *
 * JavaScript: every script response of a signed-in portal load (entry, lazy chunks), its size
 * as transferred (what this node sends: it does not compress) and gzipped at level 9 (what a
 * compressing server or CDN in front would send).
 *
 * Environment: BENCH_WEB_RUNS (10 per page, 3–50), BENCH_WEB_BUDGET_SECONDS (120: no new run
 * starts after that). `npx tsx bench/web-first-load.ts` prints the figures.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Browser, BrowserContext } from 'playwright-core';
import { launchChromium } from '../test/browser/support/chromium.js';
import { REPO_DIR } from './build.js';
import { int, ms, ratio, table } from './report.js';
import { startServer } from './server-process.js';

export const TARGET_INTERACTIVE_MS = 1500;

export interface WebBenchOptions {
  runs: number;
  budgetSeconds: number;
}

export interface PageLoad {
  /** ms from navigation start: the ready element in the DOM; first byte; DOMContentLoaded; load; first contentful paint. */
  ready: number;
  ttfb: number;
  domContentLoaded: number;
  load: number;
  fcp: number | undefined;
}

export interface ScriptLoad {
  url: string;
  transferredBytes: number;
  gzipBytes: number;
}

export interface WebFigures {
  signIn: PageLoad[];
  portal: PageLoad[];
  scripts: ScriptLoad[];
  runsWanted: number;
  /** The machine's 1-minute load average when the runs began and ended: other work inflates every figure. */
  loadAverage: [number, number];
}

/**
 * Runs in the page before its own scripts: notes when the first element matching `selector`
 * appears. A string, not a function: tsx's keep-names helpers would not exist in the page.
 */
const readyWatcher = (selector: string): string => `(() => {
  const seen = () => {
    if (window.__readyAt === undefined && document.querySelector(${JSON.stringify(selector)})) window.__readyAt = performance.now();
    return window.__readyAt !== undefined;
  };
  const observer = new MutationObserver(() => { if (seen()) observer.disconnect(); });
  observer.observe(document, { childList: true, subtree: true });
})();`;

async function measure(context: BrowserContext, url: string, selector: string, onScript?: (s: ScriptLoad) => void): Promise<PageLoad> {
  await context.addInitScript(readyWatcher(selector));
  const page = await context.newPage();
  const pending: Promise<void>[] = [];
  if (onScript) {
    page.on('response', (response) => {
      if (response.request().resourceType() !== 'script') return;
      pending.push(
        (async () => {
          const body = await response.body();
          const sizes = await response.request().sizes();
          onScript({ url: new URL(response.url()).pathname, transferredBytes: sizes.responseBodySize + sizes.responseHeadersSize, gzipBytes: gzipSync(body, { level: 9 }).length });
        })(),
      );
    });
  }
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => (globalThis as any).__readyAt !== undefined, undefined, { timeout: 30_000 }).catch(async (err: Error) => {
    // Which page it stopped on (path and the test ids shown), never its text: enough to see why.
    const shown = await page.evaluate(() => [...(globalThis as any).document.querySelectorAll('[data-testid]')].map((e: any) => e.dataset.testid).slice(0, 20)).catch(() => []);
    throw new Error(`${selector} never appeared at ${new URL(page.url()).pathname} (shown: ${shown.join(', ') || 'nothing'}): ${err.message.split('\n')[0]}`);
  });
  const timing = await page.evaluate(() => {
    const p = (globalThis as any).performance;
    const nav = p.getEntriesByType('navigation')[0];
    const fcp = p.getEntriesByName('first-contentful-paint')[0];
    return { ready: (globalThis as any).__readyAt as number, ttfb: nav.responseStart as number, domContentLoaded: nav.domContentLoadedEventEnd as number, load: nav.loadEventEnd as number, fcp: fcp ? (fcp.startTime as number) : undefined };
  });
  await Promise.all(pending);
  await page.close();
  return timing;
}

export async function benchWebFirstLoad(options: WebBenchOptions): Promise<WebFigures> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'telesalud-bench-web-'));
  let browser: Browser | undefined;
  const server = await startServer({ repoDir: REPO_DIR, dataDir, databaseUrl: undefined, adminToken: `bench-web-${process.pid}-${Date.now()}-token-0123456789`, serveArgs: ['--demo'], startTimeoutMs: 180_000 });
  try {
    const demo = JSON.parse(await readFile(path.join(dataDir, 'demo-accounts.json'), 'utf8')) as { patient: { email: string; password: string } };
    browser = await launchChromium();
    const figures: WebFigures = { signIn: [], portal: [], scripts: [], runsWanted: options.runs, loadAverage: [os.loadavg()[0]!, 0] };
    const fresh = async () => browser!.newContext({ ignoreHTTPSErrors: true, locale: 'es-ES', viewport: { width: 414, height: 860 } });
    const deadline = Date.now() + options.budgetSeconds * 1000;
    // One warm-up of each (the node's first answers, Chromium's first process), not counted.
    for (let run = -1; run < options.runs && Date.now() < deadline; run++) {
      const cold = await fresh();
      const signIn = await measure(cold, `${server.url}/sign-in`, '[data-testid="sign-in-form"]');
      await cold.close();

      const patient = await fresh();
      const answer = await patient.request.post(`${server.url}/api/auth/sign-in`, { data: { email: demo.patient.email, password: demo.patient.password } });
      if (answer.status() !== 200) throw new Error(`the demo patient could not sign in: ${answer.status()}`);
      const scripts: ScriptLoad[] = [];
      const portal = await measure(patient, `${server.url}/portal`, '[data-testid="upcoming-appointment"], [data-testid="past-appointment"]', (s) => scripts.push(s));
      await patient.close();
      if (run < 0) continue;
      figures.signIn.push(signIn);
      figures.portal.push(portal);
      if (figures.scripts.length === 0) figures.scripts = scripts;
    }
    figures.loadAverage[1] = os.loadavg()[0]!;
    return figures;
  } finally {
    await browser?.close().catch(() => undefined);
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** Nearest-rank percentile. */
function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function printWebFigures(f: WebFigures): void {
  const runs = f.signIn.length;
  console.log('\nPatient portal first load in Chromium (telesalud serve --demo, PGlite)');
  console.log(`${runs} cold loads per page${runs < f.runsWanted ? ` (of ${f.runsWanted} wanted: the time budget ran out)` : ''}; ms from navigation start, loopback, new browser context each run`);
  const row = (label: string, loads: PageLoad[], pick: (l: PageLoad) => number | undefined) => {
    const values = loads.map(pick).filter((v): v is number => v !== undefined);
    return [label, ms(percentile(values, 50)), ms(percentile(values, 95)), ms(Math.max(...values))];
  };
  const rows: string[][] = [];
  for (const [page, loads, ready] of [
    ['sign-in', f.signIn, 'interactive (form rendered)'],
    ['/portal signed in', f.portal, 'appointments list visible'],
  ] as const) {
    rows.push(row(`${page}: first byte`, loads, (l) => l.ttfb));
    rows.push(row(`${page}: first contentful paint`, loads, (l) => l.fcp));
    rows.push(row(`${page}: DOMContentLoaded`, loads, (l) => l.domContentLoaded));
    rows.push(row(`${page}: load`, loads, (l) => l.load));
    rows.push(row(`${page}: ${ready}`, loads, (l) => l.ready));
  }
  console.log(table(['', 'p50', 'p95', 'max'], rows, [false, true, true, true]));

  const target = (label: string, loads: PageLoad[]) => {
    const p50 = percentile(loads.map((l) => l.ready), 50);
    const p95 = percentile(loads.map((l) => l.ready), 95);
    const met = p95 < TARGET_INTERACTIVE_MS;
    console.log(`${met ? '✓' : '✗'} ${label}: p50 ${ms(p50)} ms, p95 ${ms(p95)} ms; target < ${int(TARGET_INTERACTIVE_MS)} ms to interactive: p95 at ${ratio(p95 / TARGET_INTERACTIVE_MS)} of it (p50 ${ratio(p50 / TARGET_INTERACTIVE_MS)})`);
  };
  target('sign-in page, cold', f.signIn);
  target('/portal, signed-in patient, cold, until the appointments list', f.portal);
  const cores = os.cpus().length;
  if (Math.max(...f.loadAverage) > cores) console.log(`⚠ load average ${f.loadAverage.map((l) => l.toFixed(1)).join(' → ')} on ${cores} cores during the runs: other work took CPU, these figures overstate what a quiet machine shows`);

  const transferred = f.scripts.reduce((n, s) => n + s.transferredBytes, 0);
  const gzip = f.scripts.reduce((n, s) => n + s.gzipBytes, 0);
  console.log(`\nJavaScript a signed-in patient loads for /portal: ${f.scripts.length} files, ${int(transferred / 1024)} KB as transferred by this node (uncompressed), ${int(gzip / 1024)} KB gzipped`);
  console.log(table(['script', 'transferred KB', 'gzip KB'], f.scripts.map((s) => [s.url, (s.transferredBytes / 1024).toFixed(1), (s.gzipBytes / 1024).toFixed(1)]), [false, true, true]));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Math.min(50, Math.max(3, Number(process.env.BENCH_WEB_RUNS || 10)));
  benchWebFirstLoad({ runs, budgetSeconds: Number(process.env.BENCH_WEB_BUDGET_SECONDS || 120) }).then(printWebFigures, (err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
