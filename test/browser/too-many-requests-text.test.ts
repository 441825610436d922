import i18next, { type TFunction } from 'i18next';
import { beforeAll, describe, expect, it } from 'vitest';
import { ApiError, failure, retryAfterSeconds } from '../../web/src/app/api-error.js';
import { tooManyRequestsText, waitText } from '../../web/src/app/too-many-requests.js';
import { en } from '../../web/src/i18n/en.js';
import { es } from '../../web/src/i18n/es.js';
import { portalEn, portalEs } from '../../web/src/portal/messages.js';
import { explain } from '../../web/src/portal/explain.js';

/** The words every area shows for a 429, run here in Node with the app's own catalogues. */
describe('too many requests, in words', () => {
  let english: TFunction;
  let spanish: TFunction;
  beforeAll(async () => {
    const resources = { en: { translation: { ...en, portal: portalEn } }, es: { translation: { ...es, portal: portalEs } } };
    english = (await i18next.createInstance().init({ resources, lng: 'en', interpolation: { escapeValue: false } })) as TFunction;
    spanish = (await i18next.createInstance().init({ resources, lng: 'es', interpolation: { escapeValue: false } })) as TFunction;
  });

  it('reads Retry-After as seconds or as an HTTP date, and nothing else', () => {
    const now = Date.parse('2026-11-23T10:00:00Z');
    expect(retryAfterSeconds('30', now)).toBe(30);
    expect(retryAfterSeconds(' 7 ', now)).toBe(7);
    // "Now" still means a wait: the page never says "wait 0 seconds".
    expect(retryAfterSeconds('0', now)).toBe(1);
    expect(retryAfterSeconds('Mon, 23 Nov 2026 10:02:00 GMT', now)).toBe(120);
    expect(retryAfterSeconds('Mon, 23 Nov 2026 09:00:00 GMT', now)).toBe(1);
    for (const bad of [null, '', 'soon', '-5', '1.5', '99999999999']) expect(retryAfterSeconds(bad, now), String(bad)).toBeUndefined();
  });

  it('carries the wait of a refused answer, from the rate limits (JSON) and from FHIR (OperationOutcome)', async () => {
    const api = await failure(new Response(JSON.stringify({ error: 'rate-limited', message: 'too many requests', retryAfterSeconds: 42 }), { status: 429, headers: { 'retry-after': '42', 'content-type': 'application/json' } }));
    expect(api).toMatchObject({ status: 429, code: 'rate-limited', retryAfterSeconds: 42 });
    const fhir = await failure(new Response(JSON.stringify({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'throttled', diagnostics: 'x' }] }), { status: 429, headers: { 'retry-after': '5' } }));
    expect(fhir).toMatchObject({ status: 429, code: 'throttled', retryAfterSeconds: 5 });
    expect((await failure(new Response('', { status: 429 }))).retryAfterSeconds).toBeUndefined();
  });

  it('says how long to wait in seconds, then minutes, in Spanish and English', () => {
    expect(waitText(english, 1)).toBe('Too many attempts in a short time. Please wait 1 second, then try again.');
    expect(waitText(english, 42)).toBe('Too many attempts in a short time. Please wait 42 seconds, then try again.');
    expect(waitText(spanish, 1)).toBe('Demasiados intentos en poco tiempo. Espere 1 segundo y vuelva a intentarlo.');
    expect(waitText(spanish, 42)).toBe('Demasiados intentos en poco tiempo. Espere 42 segundos y vuelva a intentarlo.');
    // From 90 s on, minutes rounded up: nobody counts 900 seconds.
    expect(waitText(english, 900)).toBe('Too many attempts in a short time. Please wait about 15 minutes, then try again.');
    expect(waitText(spanish, 130)).toBe('Demasiados intentos en poco tiempo. Espere unos 3 minutos y vuelva a intentarlo.');
    // No wait named: a moment.
    expect(waitText(spanish, undefined)).toBe('Demasiados intentos en poco tiempo. Espere un momento y vuelva a intentarlo.');
    expect(waitText(english, Number.NaN)).toBe('Too many attempts in a short time. Please wait a moment, then try again.');
  });

  it('answers only for a 429: every other failure is the area’s to word', () => {
    expect(tooManyRequestsText(english, new ApiError(429, 'rate-limited', undefined, 12))).toBe('Too many attempts in a short time. Please wait 12 seconds, then try again.');
    expect(tooManyRequestsText(english, new ApiError(503, undefined, undefined, 12))).toBeUndefined();
    expect(tooManyRequestsText(english, new ApiError(403, 'forbidden'))).toBeUndefined();
    expect(tooManyRequestsText(english, new Error('boom'))).toBeUndefined();
  });

  it('is what the portal tells a patient, never the server’s own words or a status code', () => {
    const refused = new ApiError(429, 'rate-limited', { error: 'rate-limited', message: 'rate limit of 1200 requests a minute reached for account:abc' }, 20);
    const said = explain(spanish, refused);
    expect(said).toBe('Demasiados intentos en poco tiempo. Espere 20 segundos y vuelva a intentarlo.');
    expect(said).not.toMatch(/429|rate|account/);
    // A server error is worded too, never shown as it came.
    expect(explain(english, new ApiError(500, undefined, { message: 'TypeError: x is undefined\n    at handler (/app/src/x.ts:1:1)' }))).not.toMatch(/TypeError|at handler/);
  });
});
