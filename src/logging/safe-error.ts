/**
 * What of an unexpected error may be logged. Database and parser messages can quote the
 * values they choked on (a name, a note): quoted text is masked, the stack keeps only frames.
 */
export function safeError(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err };
  const e = err as Error & { code?: unknown };
  return {
    type: e.name,
    ...(typeof e.code === 'string' ? { code: e.code } : {}),
    message: maskQuoted(e.message).slice(0, 300),
    stack: (e.stack ?? '').split('\n').filter((line) => line.trimStart().startsWith('at ')).slice(0, 12).join('\n'),
  };
}

function maskQuoted(text: string): string {
  return text.replace(/"[^"]*"|'[^']*'|\([^)]*\)=\([^)]*\)/g, '"…"');
}
