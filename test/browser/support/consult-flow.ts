import type { Page } from 'playwright-core';
import { currentTotpCode } from '../../../src/auth/mfa/totp.js';
import { PASSWORD } from './browser-node.js';
import { waitUntil } from './chromium.js';

// No vitest here: the media benchmark (bench/consult-media.ts) drives the same flow outside a test run.

/** Opens the consultation page signed out, signs in on the sign-in page it redirects to, and lands back. */
export async function signInThroughConsult(page: Page, origin: string, appointmentId: string, email: string, totpSecret?: string): Promise<void> {
  await page.goto(`${origin}/consult/${appointmentId}`);
  await page.waitForURL(/\/sign-in\?next=/);
  await page.fill('input[autocomplete="username"]', email);
  await page.fill('input[autocomplete="current-password"]', PASSWORD);
  if (totpSecret) await page.fill('input[autocomplete="one-time-code"]', currentTotpCode(totpSecret));
  await page.click('button[type="submit"]');
  await page.waitForURL(`${origin}/consult/${appointmentId}`);
}

/** The device check shows a live preview; one click joins. */
export async function joinFromDeviceCheck(page: Page): Promise<void> {
  await page.getByTestId('device-check').waitFor();
  const previewWidth = () => page.locator('[data-testid="device-check"] video').evaluate((v) => (v as unknown as { videoWidth: number }).videoWidth);
  await waitUntil('a live camera preview', previewWidth, (width) => width > 0, 10_000, 50);
  await page.getByTestId('join').click();
}

/** Admits the first one waiting, after checking the lobby shows whether they encrypt end to end. */
export async function admitNext(host: Page, expectE2ee = true): Promise<void> {
  const entry = host.getByTestId('lobby-entry').first();
  await entry.waitFor();
  const shown = await entry.getAttribute('data-e2ee');
  if (shown !== String(expectE2ee)) throw new Error(`lobby entry shows data-e2ee=${shown}, expected ${expectE2ee}`);
  await entry.getByTestId('admit').click();
}
