import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../store/api/h2/byte-queue.js';

/** Deterministic sizes: a linear congruential sequence. */
function sizes(seed: number, count: number, max: number): number[] {
  let state = seed;
  return Array.from({ length: count }, () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state % max;
  });
}

describe('queued stream data', () => {
  it('gives back exactly the bytes pushed (messages prefixed), however it is taken', () => {
    for (const seed of [1, 2, 3]) {
      const queue = new ByteQueue();
      const expected: Buffer[] = [];
      const taken: Buffer[] = [];
      const lengths = sizes(seed, 400, 40_000);
      lengths.forEach((length, i) => {
        const bytes = Buffer.alloc(length, i % 251);
        const isMessage = i % 3 !== 0;
        queue.pushParts([bytes], length, isMessage);
        if (isMessage) {
          const prefix = Buffer.alloc(5);
          prefix.writeUInt32BE(length, 1);
          expected.push(prefix);
        }
        expected.push(bytes);
        // Take now and then, in sizes that cut messages and blocks anywhere.
        if (i % 7 === 0) taken.push(queue.take(sizes(seed + i, 1, 100_000)[0] ?? 1));
      });
      while (queue.length > 0) taken.push(queue.take(16_384));
      const all = Buffer.concat(expected);
      expect(Buffer.concat(taken).equals(all), `seed ${seed}`).toBe(true);
      expect(queue.takenTotal).toBe(all.length);
      expect(queue.pushedTotal).toBe(all.length);
    }
  });
});
