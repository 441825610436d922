import { pino, type Logger } from 'pino';

/**
 * Structured JSON logs. They carry ids, never health data or secrets: the request
 * logger prints method, route pattern and status, not URLs with their query strings
 * (a name search would leak a name), and these paths are redacted wherever they appear.
 */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'password',
  'token',
  'secret',
  '*.password',
  '*.token',
  '*.secret',
];

/** Logs go to stdout, or to `file` (TELESALUD_LOG_FILE), or to a given stream (tests). */
export function createLogger(level: string, output?: string | pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'telesalud', pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    typeof output === 'object' ? output : pino.destination({ dest: output ?? 1, sync: false, append: true, mkdir: true }),
  );
}

/** Commands print their own progress; their logs start at warn unless more is asked for. */
export function commandLogLevel(level: string): string {
  return level === 'info' ? 'warn' : level;
}

export type { Logger };
