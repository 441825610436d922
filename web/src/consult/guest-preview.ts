import { useEffect, useState } from 'react';
import { ApiError, request } from '../app/api.js';
import { adoptClinicTimeZone } from '../app/clinic-time.js';

/** What a guest's page knows before joining (POST /api/consult/guest-links/preview): no names, only when. */
export type GuestPreview = { state: 'loading' } | { state: 'usable'; start: string | undefined } | { state: 'unusable' } | { state: 'unknown' };

/**
 * Asks once what the guest link is for. The answer names the clinic's zone, adopted before the time
 * is shown. The token goes in the body, never in a URL (logs, history); the route is public, so no
 * session is asked for (a guest has none). Unreachable, the page still lets the guest try to join:
 * the join itself is the authority on the link.
 */
export function useGuestPreview(token: string | undefined): GuestPreview {
  const [preview, setPreview] = useState<GuestPreview>({ state: token ? 'loading' : 'unknown' });
  useEffect(() => {
    if (!token) return;
    let live = true;
    request<{ start?: unknown; clinic?: { timeZone?: unknown } }>('POST', '/api/consult/guest-links/preview', { body: { token }, publicRoute: true }).then(
      (answer) => {
        adoptClinicTimeZone(answer);
        if (live) setPreview({ state: 'usable', start: typeof answer.start === 'string' ? answer.start : undefined });
      },
      (err: unknown) => live && setPreview({ state: err instanceof ApiError && err.status === 404 ? 'unusable' : 'unknown' }),
    );
    return () => {
      live = false;
    };
  }, [token]);
  return preview;
}
