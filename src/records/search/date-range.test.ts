import { describe, expect, it } from 'vitest';
import { parseDateRange } from './date-range.js';

const range = (v: string) => {
  const r = parseDateRange(v);
  return r && [r.low.toISOString(), r.high.toISOString()];
};

describe('FHIR date search values', () => {
  it('span as much as their precision says', () => {
    expect(range('2024')).toEqual(['2024-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z']);
    expect(range('2024-02')).toEqual(['2024-02-01T00:00:00.000Z', '2024-03-01T00:00:00.000Z']);
    expect(range('2024-12-31')).toEqual(['2024-12-31T00:00:00.000Z', '2025-01-01T00:00:00.000Z']);
    expect(range('2024-03-05T10:15Z')).toEqual(['2024-03-05T10:15:00.000Z', '2024-03-05T10:16:00.000Z']);
    expect(range('2024-03-05T10:15:30+02:00')).toEqual(['2024-03-05T08:15:30.000Z', '2024-03-05T08:15:31.000Z']);
  });

  it('refuse impossible dates and other text', () => {
    for (const bad of ['2024-13', '2023-02-29', '2024-04-31', '2024-01-01T25:00Z', 'yesterday', '24-01-01', '', "2024' or '1'='1"]) {
      expect(parseDateRange(bad), bad).toBeUndefined();
    }
    expect(range('2024-02-29')).not.toBeUndefined();
  });
});
