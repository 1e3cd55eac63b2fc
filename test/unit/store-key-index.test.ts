import { describe, expect, it } from 'vitest';
import { KeyHistory } from '../../store/mvcc/key-index.js';
import { SortedKeys } from '../../store/mvcc/sorted-keys.js';
import {
  SHARED_VALUE_BYTES_MAX, SLAB_BYTES, ValueArena, type ValueSlab,
} from '../../store/mvcc/value-arena.js';

/** put a@2, put a@3, delete a@4, put a@6: the example of etcd's key_index.go, in our packing. */
function example(): KeyHistory {
  const history = new KeyHistory(2, 0, false);
  history.append(3, 0, false);
  history.append(4, 0, true);
  history.append(6, 0, false);
  return history;
}

function compactAt(history: KeyHistory, rev: number): { dropped: string[]; isGone: boolean } {
  const dropped: string[] = [];
  const isGone = history.compact(rev, (main, sub) => dropped.push(`${main}.${sub}`));
  return { dropped, isGone };
}

describe('KeyHistory: revisions packed two numbers each (issue #3)', () => {
  it('finds the revision in force at any read revision', () => {
    const history = example();
    expect(history.at(1)).toBeUndefined();
    expect(history.at(3)).toEqual({ main: 3, sub: 0, tombstone: false });
    expect(history.at(5)).toEqual({ main: 4, sub: 0, tombstone: true });
    expect(history.at(6)).toEqual({ main: 6, sub: 0, tombstone: false });
    expect(history.at(100)).toEqual({ main: 6, sub: 0, tombstone: false });
  });

  it('compaction at a tombstone drops everything up to it, as etcd does', () => {
    const history = example();
    expect(compactAt(history, 4)).toEqual({ dropped: ['2.0', '3.0', '4.0'], isGone: false });
    expect(history.revisionCount).toBe(1);
    expect(history.at(5)).toBeUndefined();
    expect(history.at(6)).toEqual({ main: 6, sub: 0, tombstone: false });
  });

  it('compaction keeps the put in force at the compact revision', () => {
    const history = example();
    expect(compactAt(history, 3)).toEqual({ dropped: ['2.0'], isGone: false });
    expect(history.at(3)).toEqual({ main: 3, sub: 0, tombstone: false });
    expect(history.at(5)).toEqual({ main: 4, sub: 0, tombstone: true });
    expect(compactAt(history, 3)).toEqual({ dropped: [], isGone: false });
  });

  it('a key whose newest revision is a compacted tombstone is gone', () => {
    const history = new KeyHistory(2, 0, false);
    history.append(5, 1, true);
    expect(compactAt(history, 5)).toEqual({ dropped: ['2.0', '5.1'], isGone: true });
  });

  it('keeps subs above 2^31 and their tombstone mark exact', () => {
    const bigSub = 2 ** 31 + 3;
    const history = new KeyHistory(7, bigSub, true);
    history.append(8, 0, false);
    expect(history.at(7)).toEqual({ main: 7, sub: bigSub, tombstone: true });
  });

  it('refuses a revision that does not grow', () => {
    const history = new KeyHistory(5, 2, false);
    expect(() => history.append(5, 2, false)).toThrow(/must grow/);
    expect(() => history.append(4, 9, false)).toThrow(/must grow/);
    history.append(5, 3, true);
    expect(history.revisionCount).toBe(2);
  });
});

describe('ValueArena (issue #3)', () => {
  it('packs small values into shared slabs and gives big ones a slab of their own', () => {
    const arena = new ValueArena();
    const small = Buffer.alloc(SHARED_VALUE_BYTES_MAX, 1);
    const first = arena.store(small);
    const second = arena.store(small);
    expect(first).not.toBeNull();
    expect(second).toBe(first);
    const big = arena.store(Buffer.alloc(SHARED_VALUE_BYTES_MAX + 1, 2));
    expect(big?.isShared).toBe(false);
    expect(big?.bytes.length).toBe(SHARED_VALUE_BYTES_MAX + 1);
    expect(arena.store(Buffer.alloc(0))).toBeNull();
    expect(arena.liveBytes).toBe(3 * SHARED_VALUE_BYTES_MAX + 1);
  });

  it('reads back every value intact across slab boundaries', () => {
    const arena = new ValueArena();
    type Placed = { slab: ValueSlab; offset: number; value: Buffer };
    const placed: Placed[] = [];
    for (let i = 0; i < 3 * (SLAB_BYTES / 1000); i++) {
      const value = Buffer.from(`${i}:`.padEnd(1000, String.fromCharCode(65 + (i % 26))));
      const slab = arena.store(value);
      expect(slab).not.toBeNull();
      if (slab !== null) placed.push({ slab, offset: slab.used - value.length, value });
    }
    expect(new Set(placed.map((p) => p.slab)).size).toBeGreaterThan(2);
    for (const p of placed) {
      expect(p.slab.view(p.offset, p.value.length).equals(p.value)).toBe(true);
    }
  });

  it('counts holes, marks half-empty slabs sparse, forgets slabs with nothing live', () => {
    const arena = new ValueArena();
    const value = Buffer.alloc(1024, 7);
    const slabs = [];
    for (let i = 0; i < (SLAB_BYTES / 1024) * 2; i++) slabs.push(arena.store(value));
    const full = slabs[0];
    if (full === null || full === undefined) throw new Error('expected a slab');
    expect(arena.isSparse(full)).toBe(false);
    for (let i = 0; i < SLAB_BYTES / 1024 / 2 + 1; i++) arena.release(full, 1024);
    expect(arena.isSparse(full)).toBe(true);
    expect(arena.holeBytes).toBe(SLAB_BYTES / 2 + 1024);
    while (full.liveBytes > 0) arena.release(full, 1024);
    // The first slab is gone from the totals; the second (current, full) slab has no holes.
    expect(arena.holeBytes).toBe(0);
    expect(arena.liveBytes).toBe(SLAB_BYTES);
    expect(() => arena.release(full, 1)).toThrow(/were live/);
  });
});

describe('SortedKeys: the ordered key set behind range reads', () => {
  const keyOf = (i: number): string => `k${String.fromCharCode(i % 256)}${i}`;
  const all = (keys: SortedKeys): string[] => {
    const seen: string[] = [];
    keys.forEachInRange('', undefined, (key) => seen.push(key) > 0);
    return seen;
  };

  it('orders and removes thousands of keys inserted out of order, across chunk splits', () => {
    const keys = new SortedKeys();
    const count = 5000;
    // 7919 is prime and does not divide count, so this visits every index once, out of order.
    for (let n = 0; n < count; n++) expect(keys.insert(keyOf((n * 7919) % count))).toBe(true);
    expect(keys.insert(keyOf(42))).toBe(false);
    expect(keys.size).toBe(count);
    const order = all(keys);
    const bytesOf = (key: string): Buffer => Buffer.from(key, 'latin1');
    const byBytes = [...order].sort((a, b) => Buffer.compare(bytesOf(a), bytesOf(b)));
    expect(order).toEqual(byBytes);
    for (let i = 0; i < count; i += 2) expect(keys.remove(keyOf(i))).toBe(true);
    expect(keys.remove(keyOf(0))).toBe(false);
    expect(keys.size).toBe(count / 2);
    expect(all(keys)).toEqual(byBytes.filter((key) => Number(key.slice(2)) % 2 === 1));
  });

  it('visits [from, to) in order and stops when asked', () => {
    const keys = new SortedKeys();
    for (const key of ['b', 'a\u00ff', 'a', 'c', 'a\u0000']) keys.insert(key);
    const seen: string[] = [];
    keys.forEachInRange('a\u0000', 'c', (key) => seen.push(key) > 0);
    expect(seen).toEqual(['a\u0000', 'a\u00ff', 'b']);
    const firstTwo: string[] = [];
    keys.forEachInRange('', undefined, (key) => firstTwo.push(key) < 2);
    expect(firstTwo).toEqual(['a', 'a\u0000']);
  });
});
