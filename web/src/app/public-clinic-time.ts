import { request } from './api.js';
import { adoptClinicTimeZone } from './clinic-time.js';

let asked: Promise<void> | undefined;

/**
 * For a page shown before sign-in (an invitation): the clinic's zone from the public
 * GET /api/clinic, asked once per page load; await it before showing a time. Unreachable, the
 * device's zone stays (a time shown is better than none), and the next page load asks again.
 */
export function adoptPublicClinicTimeZone(): Promise<void> {
  asked ??= request<{ timeZone?: unknown }>('GET', '/api/clinic').then(
    (answer) => adoptClinicTimeZone({ clinic: answer }),
    () => undefined,
  );
  return asked;
}
