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
    ['TELESALUD_REDIS_URL', 'http://127.0.0.1:6379'],
    ['TELESALUD_REDIS_URL', 'not a url'],
    ['TELESALUD_REDIS_PREFIX', 'has spaces in it'],
    ['TELESALUD_TRUSTED_PROXIES', '10.0.0.0/33'],
    ['TELESALUD_TRUSTED_PROXIES', 'lb.internal'],
    ['TELESALUD_TRUSTED_PROXIES', '10.0.0.1, 10.0.0.0/8/1'],
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

  it('runs in farm mode with a redis:// or rediss:// URL, under its own key prefix', () => {
    expect(loadConfig({}).redisUrl).toBeUndefined();
    const farm = loadConfig({ TELESALUD_REDIS_URL: 'redis://127.0.0.1:6379', TELESALUD_DATABASE_URL: 'postgres://u@db.internal:5432/telesalud' });
    expect(farm.redisUrl).toBe('redis://127.0.0.1:6379');
    expect(farm.redisPrefix).toBe('telesalud:');
    const tls = loadConfig({ TELESALUD_REDIS_URL: 'rediss://:pass@redis.internal:6380/2', TELESALUD_REDIS_PREFIX: 'staging:' });
    expect(tls.redisUrl).toBe('rediss://:pass@redis.internal:6380/2');
    expect(tls.redisPrefix).toBe('staging:');
  });

  it('trusts X-Forwarded-For only from the proxies it is given, addresses and ranges of either family', () => {
    expect(loadConfig({}).trustedProxies.has('10.0.0.1')).toBe(false);
    const behind = loadConfig({ TELESALUD_TRUSTED_PROXIES: ' 10.1.0.0/16 , 192.0.2.10, fd00::/8 ' }).trustedProxies;
    expect(behind.entries).toEqual(['10.1.0.0/16', '192.0.2.10', 'fd00::/8']);
    for (const address of ['10.1.200.3', '192.0.2.10', '::ffff:10.1.0.9', 'fd12::1']) expect(behind.has(address)).toBe(true);
    for (const address of ['10.2.0.1', '192.0.2.11', 'fe80::1', 'not an address']) expect(behind.has(address)).toBe(false);
  });

  it('never quotes the Redis URL (it may hold a password) in its error', () => {
    expect(() => loadConfig({ TELESALUD_REDIS_URL: 'http://:hunter2secret@redis:6379' })).toThrow(/^TELESALUD_REDIS_URL: must start with redis:\/\/ or rediss:\/\//);
    expect(() => loadConfig({ TELESALUD_REDIS_URL: 'http://:hunter2secret@redis:6379' })).not.toThrow(/hunter2/);
  });

  it('accepts a real master key and a postgres URL', () => {
    const key = Buffer.alloc(32, 9).toString('base64');
    const config = loadConfig({ TELESALUD_MASTER_KEY: key, TELESALUD_DATABASE_URL: 'postgres://u@db.internal:5432/telesalud' });
    expect(config.masterKey?.length).toBe(32);
    expect(config.databaseUrl).toContain('db.internal');
  });
});

describe('TURN and STUN for video consultations', () => {
  const secret = 'coturn-static-auth-secret-0123';

  it('has no ICE servers by default', () => {
    const config = loadConfig({});
    expect(config.turn).toBeUndefined();
    expect(config.stunUrls).toEqual([]);
  });

  it('reads comma-separated TURN URLs with their secret', () => {
    const config = loadConfig({ TELESALUD_TURN_URLS: 'turn:turn.clinica.example.org:3478?transport=udp, turns:turn.clinica.example.org:443?transport=tcp', TELESALUD_TURN_SECRET: secret, TELESALUD_STUN_URLS: 'stun:127.0.0.1:3478' });
    expect(config.turn).toEqual({ urls: ['turn:turn.clinica.example.org:3478?transport=udp', 'turns:turn.clinica.example.org:443?transport=tcp'], secret });
    expect(config.stunUrls).toEqual(['stun:127.0.0.1:3478']);
  });

  it.each([
    [{ TELESALUD_TURN_URLS: 'turn:turn.example.org:3478' }, 'TELESALUD_TURN_SECRET'],
    [{ TELESALUD_TURN_SECRET: secret }, 'TELESALUD_TURN_URLS'],
    [{ TELESALUD_TURN_URLS: 'https://turn.example.org', TELESALUD_TURN_SECRET: secret }, 'TELESALUD_TURN_URLS'],
    [{ TELESALUD_TURN_URLS: 'stun:turn.example.org:3478', TELESALUD_TURN_SECRET: secret }, 'TELESALUD_TURN_URLS'],
    [{ TELESALUD_TURN_URLS: 'turn:turn.example.org:3478?transport=sctp', TELESALUD_TURN_SECRET: secret }, 'TELESALUD_TURN_URLS'],
    [{ TELESALUD_TURN_URLS: 'turn:turn.example.org:99999', TELESALUD_TURN_SECRET: secret }, 'TELESALUD_TURN_URLS'],
    [{ TELESALUD_TURN_URLS: 'turn:turn.example.org:3478', TELESALUD_TURN_SECRET: 'short' }, 'TELESALUD_TURN_SECRET'],
    [{ TELESALUD_STUN_URLS: 'turn:stun.example.org' }, 'TELESALUD_STUN_URLS'],
  ])('refuses %o naming %s', (env, variable) => {
    let error: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe(variable);
    expect((error as Error).message).not.toContain(secret);
  });
});
