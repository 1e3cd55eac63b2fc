import { describe, expect, it } from 'vitest';
import { encodedBytes, fitOutputTail, TRUNCATED_MARKER } from '../../worker/executor/fit-output-tail.js';
import { seededRandom } from '../../shared/random.js';

describe('fitOutputTail', () => {
  it('leaves a tail that fits as it is', () => {
    expect(fitOutputTail('hello\n', 100)).toBe('hello\n');
  });

  it('keeps the newest output of binary data within the encoded bound, marked as cut', () => {
    const random = seededRandom(99);
    for (let round = 0; round < 20; round++) {
      const bytes = Buffer.from(Array.from({ length: 20_000 + random.int(20_000) }, () => random.int(256)));
      const text = `${bytes.toString('utf8')}end-${round}`;
      const bound = 2_000 + random.int(20_000);
      const fitted = fitOutputTail(text, bound);
      expect(encodedBytes(fitted)).toBeLessThanOrEqual(bound);
      expect(fitted.startsWith(TRUNCATED_MARKER)).toBe(true);
      const kept = fitted.slice(TRUNCATED_MARKER.length);
      expect(text.endsWith(kept)).toBe(true);
      expect(kept.endsWith(`end-${round}`)).toBe(true);
      // As much as fits: within one escaped character (6 bytes) and a skipped half pair of the bound.
      expect(encodedBytes(fitted)).toBeGreaterThan(bound - 12);
    }
  });

  it('does not split a surrogate pair', () => {
    const text = '😀'.repeat(1_000);
    const fitted = fitOutputTail(text, 500).slice(TRUNCATED_MARKER.length);
    expect(fitted.length % 2).toBe(0);
    expect(fitted).toBe('😀'.repeat(fitted.length / 2));
  });
});
