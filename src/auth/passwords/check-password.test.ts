import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from './argon2id.js';
import { checkPassword, nextPasswordHistory, type PasswordCheckResult } from './check-password.js';
import { DEFAULT_PASSWORD_POLICY as policy, parsePasswordPolicy } from './policy.js';
import { preloadPasswordChecks } from './preload.js';

const maria = ['María José González Ruiz', 'mariajose.gonzalez@hospital-sanjuan.es'];
const codes = (r: PasswordCheckResult) => r.problems.map((p) => p.code).sort();

beforeAll(async () => {
  await preloadPasswordChecks();
});

describe('checking a new password', () => {
  it.each([
    'correct horse battery staple',
    'purple elephant reads quietly',
    'caballo correcto grapa batería',
    'el perro come manzanas verdes',
    'murciélago azul bajo la lluvia',
  ])('accepts the passphrase %j', async (password) => {
    const result = await checkPassword(password, { policy, userInputs: maria });
    expect(result.problems).toEqual([]);
    expect(result.ok).toBe(true);
    expect(result.score).toBeGreaterThanOrEqual(3);
  });

  it('refuses "Contraseña123!" ("Password123!" in Spanish)', async () => {
    const result = await checkPassword('Contraseña123!', { policy, userInputs: maria });
    expect(result.ok).toBe(false);
    expect(codes(result)).toContain('breached');
    expect(result.problems).toContainEqual({ code: 'breached', match: 'decorated' });
  });

  it('refuses a top breached password even though it is long enough', async () => {
    for (const password of ['qwertyuiop123', 'ILOVEYOU1234']) {
      const result = await checkPassword(password, { policy });
      expect(result.ok).toBe(false);
      expect(result.problems).toContainEqual({ code: 'breached', match: 'exact' });
      expect(codes(result)).not.toContain('too-short');
    }
    const decorated = await checkPassword('Barcelona2024!', { policy });
    expect(decorated.problems).toContainEqual({ code: 'breached', match: 'decorated' });
  });

  it("refuses the user's own name or email, however it is written", async () => {
    for (const password of ['Gonzalez.Ruiz#2024!', 'MARIAJOSE-es-genial-7', 'gonzález y sus gatos grises', 'Rz#mariajosegonzalez']) {
      const result = await checkPassword(password, { policy, userInputs: maria });
      expect(codes(result), password).toContain('contains-personal-info');
      expect(result.ok).toBe(false);
    }
    // The same passphrase is fine for someone else.
    const other = await checkPassword('gonzález y sus gatos grises', { policy, userInputs: ['Pedro Martín', 'pmartin@hospital-sanjuan.es'] });
    expect(other.ok).toBe(true);
    // zxcvbn is told about the user too: its feedback points at the personal data.
    const weak = await checkPassword('mariajose1985', { policy, userInputs: maria });
    expect(weak.feedback.warning).toBe('userInputs');
  });

  it('refuses short and over-long passwords, the latter before any costly check', async () => {
    const short = await checkPassword('Ab1!xY', { policy });
    expect(short.problems).toContainEqual({ code: 'too-short', minLength: 12 });

    const started = performance.now();
    const long = await checkPassword('x'.repeat(1_000_000), { policy, previousHashes: ['$argon2id$v=19$m=65536,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$4gHqUHbNHmHs1zqcTzKxhH0cBqwr6fFhLJ7LE9Udxic'] });
    expect(long).toEqual({ ok: false, problems: [{ code: 'too-long', maxLength: 128 }], score: null, feedback: { warning: null, suggestions: [] } });
    expect(performance.now() - started).toBeLessThan(50);
    expect(codes(await checkPassword('y'.repeat(129), { policy }))).toEqual(['too-long']);
    // Lengths are characters, not bytes or UTF-16 units: 12 emoji are 12 characters.
    expect(codes(await checkPassword('🦜🌵🚲🎻🧭🪁🥥🧊🦔🪐🎈🧩', { policy }))).not.toContain('too-short');
  });

  it('scores hostile 64+ character input quickly', async () => {
    for (const password of ['p4ssw0rd'.repeat(16), '@4$5!1|0'.repeat(16)]) {
      const started = performance.now();
      const result = await checkPassword(password, { policy });
      expect(result.score).not.toBeNull();
      // ~0.1–0.2 s alone here (uncapped: 1.5–4 s); the bound leaves room for a loaded machine.
      expect(performance.now() - started).toBeLessThan(3000);
    }
    // Only the first 64 characters are scored: a strong tail does not rescue a weak start.
    const weakStart = 'a'.repeat(64);
    const [capped, withTail] = await Promise.all([
      checkPassword(weakStart, { policy }),
      checkPassword(`${weakStart}Xq7!vL2#pR9$kM4&`, { policy }),
    ]);
    expect(withTail.score).toBe(capped.score);
    expect(codes(withTail)).toEqual(['too-weak']);
    expect((await checkPassword('aB1!'.repeat(32), { policy })).problems).toContainEqual({ code: 'too-weak', score: 1, minScore: 3 });
  });

  it('applies the admin policy: length, score and context words', async () => {
    const strict = parsePasswordPolicy({ minLength: 30, minScore: 4, contextWords: ['San Juan de Dios', 'Cartagena'] });
    expect(codes(await checkPassword('correct horse battery staple', { policy: strict }))).toEqual(['too-short']);
    // The hospital's name is guessable here even though zxcvbn's dictionaries do not know it.
    const local = 'SanJuanDeDios2024';
    const plain = await checkPassword(local, { policy });
    expect(plain.score).toBeGreaterThanOrEqual(3);
    const withContext = await checkPassword(local, { policy: { ...policy, contextWords: strict.contextWords } });
    expect(withContext.score).toBeLessThan(3);
    expect(codes(withContext)).toEqual(['too-weak']);
  });

  it('refuses the last 5 passwords but lets the 6th-previous be reused', async () => {
    const passwords = ['primera clave de marzo', 'segunda clave de abril', 'tercera clave de mayo', 'cuarta clave de junio', 'quinta clave de julio', 'sexta clave de agosto'];
    let history: string[] = [];
    for (const password of passwords) history = nextPasswordHistory(await hashPassword(password), history, policy);
    expect(history).toHaveLength(5); // the current password and the four before it

    // Even when the caller keeps a longer history, only the newest `historySize` count: the
    // 6th-previous hash is there but ignored.
    const previousHashes = [...history, await hashPassword(passwords[0]!)];
    const oldest = await checkPassword(passwords[0]!, { policy, previousHashes });
    expect(oldest.problems, 'the 6th-previous password').toEqual([]);
    for (const recent of [passwords[1]!, passwords[5]!]) {
      const result = await checkPassword(recent, { policy, previousHashes });
      expect(result.problems, recent).toEqual([{ code: 'reused', historySize: 5 }]);
    }
    // History off: anything goes, and nothing is kept.
    const noHistory = parsePasswordPolicy({ historySize: 0 });
    expect((await checkPassword(passwords[5]!, { policy: noHistory, previousHashes: history })).ok).toBe(true);
    expect(nextPasswordHistory('h', history, noHistory)).toEqual([]);
    // Damaged history entries are skipped, not fatal.
    expect((await checkPassword(passwords[0]!, { policy, previousHashes: ['garbage', ''] })).ok).toBe(true);
  });

  it('never throws and stays consistent on arbitrary input', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 40 }), async (password) => {
        const result = await checkPassword(password, { policy, userInputs: maria });
        expect(result.ok).toBe(result.problems.length === 0);
        if (result.score !== null) expect(result.score).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 40 },
    );
  });
});
