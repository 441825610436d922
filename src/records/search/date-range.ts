/**
 * A FHIR date search value stands for a range as wide as its precision:
 * "2024" is the whole year, "2024-03-05" the whole day, "2024-03-05T10:00Z" that minute.
 */
export interface DateRange {
  low: Date;
  high: Date; // exclusive
}

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/** Date.UTC reads years 0–99 as 1900–1999; this does not. */
function utc(year: number, monthIndex: number, day: number): Date {
  const d = new Date(0);
  d.setUTCFullYear(year, monthIndex, day);
  return d;
}

export function parseDateRange(value: string): DateRange | undefined {
  const m = DATE_RE.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : undefined;
  const day = d ? Number(d) : undefined;
  if (year < 1 || (month !== undefined && (month < 1 || month > 12))) return undefined;
  if (day !== undefined) {
    const last = utc(year, month!, 0).getUTCDate();
    if (day < 1 || day > last) return undefined;
  }
  if (h === undefined) {
    const low = utc(year, (month ?? 1) - 1, day ?? 1);
    const high = day !== undefined ? utc(year, month! - 1, day + 1) : month !== undefined ? utc(year, month, 1) : utc(year + 1, 0, 1);
    return { low, high };
  }
  if (Number(h) > 23 || Number(mi) > 59 || (s !== undefined && Number(s) > 59)) return undefined;
  // A time without a zone is read as UTC, the server's reference.
  const iso = `${y}-${mo}-${d}T${h}:${mi}:${s ?? '00'}${frac ? `.${frac.slice(0, 3)}` : ''}${tz ?? 'Z'}`;
  const low = new Date(iso);
  if (Number.isNaN(low.getTime())) return undefined;
  const width = frac ? 1 : s !== undefined ? 1000 : 60_000;
  return { low, high: new Date(low.getTime() + width) };
}

/**
 * A timestamp PostgreSQL can read. Instants before year 1 or after 9999 (reachable through
 * time zones at the edges of the calendar) become -infinity / infinity, which still order right.
 */
export function sqlTimestamp(date: Date): string {
  const year = date.getUTCFullYear();
  if (year < 1) return '-infinity';
  if (year > 9999) return 'infinity';
  return date.toISOString();
}
