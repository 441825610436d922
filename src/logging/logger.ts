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

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'telesalud', pid: process.pid },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: process.env.TELESALUD_LOG_FILE || 1, sync: false, append: true, mkdir: true }),
  );
}

export type { Logger };
