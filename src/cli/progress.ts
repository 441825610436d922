/**
 * A progress line on stderr for long commands: redrawn in place on a terminal, a line every
 * few seconds in a log. Quiet for the first second, so quick runs print nothing extra.
 */
export function progressLine(): { update: (text: string) => void; end: () => void } {
  const started = Date.now();
  let last = 0;
  let shown = false;
  const tty = process.stderr.isTTY === true;
  return {
    update(text) {
      const now = Date.now();
      if (now - started < 1000 || now - last < (tty ? 200 : 5000)) return;
      last = now;
      shown = true;
      process.stderr.write(tty ? `\r\x1b[2K${text}` : `${text}\n`);
    },
    end() {
      if (shown && tty) process.stderr.write('\n');
    },
  };
}

export const percent = (done: number, total: number) => `${total > 0 ? Math.min(100, Math.floor((100 * done) / total)) : 100}%`;
