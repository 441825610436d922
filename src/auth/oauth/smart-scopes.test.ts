import { describe, expect, it } from 'vitest';
import { appScopesCover, parseAppScopes } from './app-scopes.js';
import { grantsCover, parseScopes, requireScope, ScopeError, scopeAllows, ScopeRefused } from './smart-scopes.js';

describe('SMART system scopes', () => {
  it('reads v1 read/write/* and v2 cruds', () => {
    const { grants } = parseScopes('system/Patient.read  system/Appointment.write system/Observation.rs system/Condition.*');
    expect(scopeAllows(grants, 'Patient', 'r')).toBe(true);
    expect(scopeAllows(grants, 'Patient', 's')).toBe(true);
    expect(scopeAllows(grants, 'Patient', 'u')).toBe(false);
    expect(scopeAllows(grants, 'Appointment', 'c')).toBe(true);
    expect(scopeAllows(grants, 'Appointment', 'r')).toBe(false);
    expect(scopeAllows(grants, 'Observation', 's')).toBe(true);
    expect(scopeAllows(grants, 'Observation', 'c')).toBe(false);
    expect(scopeAllows(grants, 'Condition', 'd')).toBe(true);
    expect(scopeAllows(grants, 'Encounter', 'r')).toBe(false);
    expect(scopeAllows(parseScopes('system/*.read').grants, 'Encounter', 'r')).toBe(true);
  });

  it.each([
    ['', /no scopes/],
    ['patient/Patient.read', /only system\//],
    ['system/Patient.rad', /is not system/],
    ['system/Patient.sr', /is not system/],
    ['system/Patient.', /is not system/],
    ['system/Spaceship.read', /not a resource type/],
    ['system/Observation.rs?category=vital-signs', /query constraints/],
    ['openid', /is not system/],
  ])('refuses %j with a reason', (text, reason) => {
    expect(() => parseScopes(text)).toThrow(ScopeError);
    expect(() => parseScopes(text)).toThrow(reason);
  });

  it('lets a token narrow its client scopes but never widen them', () => {
    const granted = parseScopes('system/Patient.read system/Observation.*').grants;
    expect(grantsCover(granted, parseScopes('system/Patient.r').grants)).toBe(true);
    expect(grantsCover(granted, parseScopes('system/Observation.read system/Patient.s').grants)).toBe(true);
    expect(grantsCover(granted, parseScopes('system/Patient.write').grants)).toBe(false);
    expect(grantsCover(granted, parseScopes('system/*.read').grants)).toBe(false);
    expect(grantsCover(parseScopes('system/*.*').grants, parseScopes('system/*.read system/Encounter.c').grants)).toBe(true);
  });

  it('passes actors without scopes and refuses the rest with a 403 naming the missing scope', () => {
    expect(() => requireScope({ ref: 'admin-token', scope: { kind: 'full' } }, 'Patient', 'd')).not.toThrow();
    const client = { ref: 'client:x', scope: { kind: 'full' as const }, scopes: ['system/Patient.read'] };
    expect(() => requireScope(client, 'Patient', 'r')).not.toThrow();
    try {
      requireScope(client, 'Observation', 's');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ScopeRefused);
      expect((err as ScopeRefused).status).toBe(403);
      expect((err as ScopeRefused).message).toContain('system/Observation.read');
    }
  });
});

describe('SMART App Launch scopes (apps acting for a user)', () => {
  it('reads patient/ and user/ scopes (v1 and v2), launch/patient and offline_access, and sets aside what is not granted here', () => {
    const parsed = parseAppScopes('openid fhirUser launch/patient patient/Observation.rs user/Patient.read offline_access');
    expect(parsed.scopes).toEqual(['patient/Observation.rs', 'user/Patient.read', 'launch/patient', 'offline_access']);
    expect(parsed.launchPatient).toBe(true);
    expect(parsed.offlineAccess).toBe(true);
    expect(parsed.notGranted).toEqual(['openid', 'fhirUser']);
    expect(parsed.grants.map((g) => `${g.level}:${g.type}:${[...g.interactions].join('')}`)).toEqual(['patient:Observation:rs', 'user:Patient:rs']);
  });

  it.each([
    ['launch/patient', /no resource scope/],
    ['system/Patient.read', /system\/ scopes are for client credentials/],
    ['patient/Observation.rs?category=vital-signs', /query constraints/],
    ['patient/Spaceship.read', /not a resource type/],
    ['launch/patient sudo', /"sudo" is not a scope of this server/],
  ])('refuses %j with a reason', (text, reason) => {
    expect(() => parseAppScopes(text)).toThrow(reason);
  });

  it('covers a request only at the same level, and launch/patient and offline_access only when registered', () => {
    const registered = parseAppScopes('launch/patient patient/*.read');
    expect(appScopesCover(registered, parseAppScopes('launch/patient patient/Observation.read'))).toBe(true);
    expect(appScopesCover(registered, parseAppScopes('user/Observation.read'))).toBe(false);
    expect(appScopesCover(registered, parseAppScopes('patient/Observation.write'))).toBe(false);
    expect(appScopesCover(registered, parseAppScopes('patient/*.read offline_access'))).toBe(false);
    expect(appScopesCover(parseAppScopes('patient/*.read'), parseAppScopes('launch/patient patient/*.read'))).toBe(false);
  });

  it('names the level in a refusal of an app token', () => {
    const app = { ref: 'Patient/x', scope: { kind: 'patient-compartment' as const, patients: ['Patient/x'] }, scopes: ['patient/Patient.read'] };
    expect(() => requireScope(app, 'Observation', 's')).toThrow(/patient\/Observation\.read/);
    expect(() => requireScope(app, 'Patient', 'r')).not.toThrow();
  });
});
