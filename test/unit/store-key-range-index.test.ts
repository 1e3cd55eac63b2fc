import { describe, expect, it } from 'vitest';
import { KeyRangeIndex } from '../../store/mvcc/key-range-index.js';
import { seededRandom } from '../../shared/random.js';

/** Keys of one to three letters from a small alphabet, so that ranges overlap a lot. */
function randomKey(int: (n: number) => number): Buffer {
  return Buffer.from(Array.from({ length: 1 + int(3) }, () => 'abcd'.charCodeAt(int(4))));
}

describe('KeyRangeIndex', () => {
  it('finds exactly the ranges holding a key, as testing every range does, across adds and deletes', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const { int } = seededRandom(seed);
      const index = new KeyRangeIndex<number>();
      const live = new Map<number, { from: Buffer; end: Buffer | null }>();
      for (let step = 0; step < 300; step++) {
        if (live.size > 0 && int(3) === 0) {
          const victim = [...live.keys()][int(live.size)] as number;
          live.delete(victim);
          index.delete(victim);
        } else {
          const a = randomKey(int);
          const b = randomKey(int);
          const [from, end] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
          const range = { from, end: int(5) === 0 ? null : end };
          live.set(step, range);
          index.add(step, range.from, range.end);
        }
        const key = randomKey(int);
        const found: number[] = [];
        index.forEachHolding(key, (v) => found.push(v));
        const expected = [...live].filter(([, r]) => Buffer.compare(r.from, key) <= 0 && (r.end === null || Buffer.compare(key, r.end) < 0)).map(([v]) => v);
        expect(found.sort((x, y) => x - y), `seed ${seed} step ${step} key ${key.toString()}`).toEqual(expected.sort((x, y) => x - y));
      }
      expect(index.size).toBe(live.size);
    }
  });

  it('treats the end as exclusive and a null end as unbounded', () => {
    const index = new KeyRangeIndex<string>();
    index.add('a-c', Buffer.from('a'), Buffer.from('c'));
    index.add('b-', Buffer.from('b'), null);
    const at = (key: string): string[] => {
      const out: string[] = [];
      index.forEachHolding(Buffer.from(key), (v) => out.push(v));
      return out.sort();
    };
    expect(at('a')).toEqual(['a-c']);
    expect(at('bz')).toEqual(['a-c', 'b-']);
    expect(at('c')).toEqual(['b-']);
    expect(at('\u0000')).toEqual([]);
    expect(at('zzz')).toEqual(['b-']);
  });
});
