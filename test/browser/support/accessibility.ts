import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  targets: string[];
}

/**
 * axe-core's WCAG 2.1 A/AA checks on the page as it is now. Injected through the devtools
 * protocol (page.evaluate), which the page's CSP does not govern, so the CSP stays as users get it.
 * Returns the serious and critical violations; a journey test expects none.
 */
export async function seriousAccessibilityViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as any).axe;
    const result = await axe.run((globalThis as any).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return (result.violations as any[]).map((v) => ({ id: String(v.id), impact: v.impact ?? null, help: String(v.help), targets: (v.nodes as any[]).map((n) => String(n.target)) }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Where journey screenshots go: kept as test artifacts (TELESALUD_ARTIFACTS_DIR, else .test-data/artifacts). */
export const ARTIFACTS_DIR = process.env.TELESALUD_ARTIFACTS_DIR || path.resolve(import.meta.dirname, '../../../.test-data/artifacts');

/** A full-page screenshot of one step of a journey, named `<journey>/<step>.png`. */
export async function screenshotStep(page: Page, journey: string, step: string): Promise<string> {
  const dir = path.join(ARTIFACTS_DIR, journey);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${step}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
