import { describe, expect, it } from 'vitest';
import { adoptClinicTimeZone, clinicDayKey, clinicTimeZone, clinicWallTimeToIso, clinicZoneName, formatClinicTime } from '../../web/src/app/clinic-time.js';

/** The page's one module for clinic time, run here in Node: the same Intl and IANA data Chromium uses. */
describe('clinic time in the web app', () => {
  it('formats on the clinic clock whatever the device zone, and names the zone', () => {
    adoptClinicTimeZone({ clinic: { timeZone: 'America/Mexico_City' } });
    expect(clinicTimeZone()).toBe('America/Mexico_City');
    // 03:00 UTC on the 23rd is 21:00 on the 22nd in Mexico City.
    expect(formatClinicTime('2026-11-23T03:00:00Z', 'en-GB', { hour: '2-digit', minute: '2-digit' })).toBe('21:00');
    expect(clinicDayKey('2026-11-23T03:00:00Z')).toBe('2026-11-22');
    expect(clinicZoneName('2026-11-23T03:00:00Z', 'es-ES')).toMatch(/GMT-6|CST/);
    // A bad value from the server shows as nothing instead of breaking the page.
    expect(formatClinicTime('not a date', 'en-GB', { hour: '2-digit' })).toBe('');
    expect(clinicDayKey('')).toBe('');
  });

  it('reads a typed wall-clock time on the clinic clock, across summer-time changes', () => {
    adoptClinicTimeZone({ clinic: { timeZone: 'America/Mexico_City' } });
    expect(clinicWallTimeToIso('2026-11-22T21:00')).toBe('2026-11-23T03:00:00Z');
    adoptClinicTimeZone({ clinic: { timeZone: 'Europe/Madrid' } });
    expect(clinicWallTimeToIso('2026-07-01T10:00')).toBe('2026-07-01T08:00:00Z');
    expect(clinicWallTimeToIso('2026-12-01T10:00')).toBe('2026-12-01T09:00:00Z');
    // The day clocks go forward (02:00 → 03:00) and back (03:00 → 02:00).
    expect(clinicWallTimeToIso('2026-03-29T04:30')).toBe('2026-03-29T02:30:00Z');
    expect(clinicWallTimeToIso('2026-10-25T12:00')).toBe('2026-10-25T11:00:00Z');
    expect(clinicWallTimeToIso('22/11/2026 10:00')).toBeUndefined();
  });

  it('ignores a zone name this browser cannot format with', () => {
    adoptClinicTimeZone({ clinic: { timeZone: 'Europe/Madrid' } });
    adoptClinicTimeZone({ clinic: { timeZone: 'Mars/Olympus' } });
    adoptClinicTimeZone({});
    expect(clinicTimeZone()).toBe('Europe/Madrid');
  });
});
