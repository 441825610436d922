import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

describe('configuration from the environment', () => {
  it('starts on the embedded defaults with nothing set', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8443);
    expect(config.databaseUrl).toBeUndefined();
    expect(config.dataDir).toMatch(/\/data$/);
    expect(config.publicUrl).toBe('https://localhost:8443');
  });

  it.each([
    ['TELESALUD_PORT', 'eighty'],
    ['TELESALUD_PORT', '70000'],
    ['TELESALUD_DATABASE_URL', 'mysql://localhost/db'],
    ['TELESALUD_DATABASE_URL', 'not a url'],
    ['TELESALUD_MASTER_KEY', 'c2hvcnQ='],
    ['TELESALUD_ADMIN_TOKEN', 'short'],
    ['TELESALUD_LOG_LEVEL', 'loud'],
    ['TELESALUD_PUBLIC_URL', 'http://clinic.example.org'],
    ['TELESALUD_SHUTDOWN_TIMEOUT_MS', '-5'],
    ['TELESALUD_MAX_UPLOAD_BYTES', '1'],
    ['TELESALUD_REDIS_URL', 'redis://127.0.0.1:6379'],
  ])('stops with a one-line reason naming %s when it is %s', (variable, value) => {
    let error: unknown;
    try {
      loadConfig({ [variable]: value });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message.startsWith(`${variable}: `)).toBe(true);
    expect((error as Error).message).not.toContain('\n');
  });

  it('wants a certificate and its key together', () => {
    expect(() => loadConfig({ TELESALUD_TLS_CERT: '/tmp/cert.pem' })).toThrow(/^TELESALUD_TLS_KEY: /);
  });

  it('never puts a secret value in its error', () => {
    const secret = 'tooshort-secret';
    expect(() => loadConfig({ TELESALUD_ADMIN_TOKEN: secret })).toThrow(ConfigError);
    try {
      loadConfig({ TELESALUD_ADMIN_TOKEN: secret });
    } catch (err) {
      expect((err as Error).message).not.toContain(secret);
    }
  });

  it('accepts a real master key and a postgres URL', () => {
    const key = Buffer.alloc(32, 9).toString('base64');
    const config = loadConfig({ TELESALUD_MASTER_KEY: key, TELESALUD_DATABASE_URL: 'postgres://u@db.internal:5432/telesalud' });
    expect(config.masterKey?.length).toBe(32);
    expect(config.databaseUrl).toContain('db.internal');
  });
});
