import { assert } from '../../shared/assert.js';

/**
 * An ordered map from keys to values, each key a latin1 string (one char per byte), so that
 * JavaScript's string order is exactly etcd's byte order. Kept as a list of sorted chunks: inserts
 * move at most one chunk's worth of pointers, and a range scan is a binary search followed by a
 * walk. It is also the store's point lookup: a hash map beside it cost ~36 bytes per key and a
 * rehash that doubles its table at once (issue #3), for lookups a few hundred nanoseconds faster.
 */
const CHUNK_MAX = 512;

/** `keys` is sorted and `values[i]` belongs to `keys[i]`. */
interface Chunk<V> {
  keys: string[];
  values: V[];
}

export class SortedKeys<V> {
  private chunks: Chunk<V>[] = [];
  private total = 0;

  get size(): number {
    return this.total;
  }

  get(key: string): V | undefined {
    if (this.chunks.length === 0) return undefined;
    const chunk = this.chunks[this.chunkFor(key)] as Chunk<V>;
    const at = lowerBound(chunk.keys, key);
    return chunk.keys[at] === key ? chunk.values[at] : undefined;
  }

  /** Inserts `key` with `value`; the key must be absent. */
  insert(key: string, value: V): void {
    if (this.chunks.length === 0) {
      this.chunks.push({ keys: [key], values: [value] });
      this.total = 1;
      return;
    }
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    assert(chunk !== undefined, 'chunk exists');
    const at = lowerBound(chunk.keys, key);
    assert(chunk.keys[at] !== key, 'inserted key is absent');
    chunk.keys.splice(at, 0, key);
    chunk.values.splice(at, 0, value);
    this.total++;
    if (chunk.keys.length > CHUNK_MAX) {
      const half = chunk.keys.length >> 1;
      this.chunks.splice(ci + 1, 0, { keys: chunk.keys.splice(half), values: chunk.values.splice(half) });
    }
  }

  remove(key: string): boolean {
    if (this.chunks.length === 0) return false;
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    assert(chunk !== undefined, 'chunk exists');
    const at = lowerBound(chunk.keys, key);
    if (chunk.keys[at] !== key) return false;
    chunk.keys.splice(at, 1);
    chunk.values.splice(at, 1);
    this.total--;
    if (chunk.keys.length === 0) this.chunks.splice(ci, 1);
    return true;
  }

  /**
   * Visits entries with keys in [from, to) in order; `to` undefined means no upper bound. The
   * visitor returns false to stop early.
   */
  forEachInRange(from: string, to: string | undefined, visit: (key: string, value: V) => boolean): void {
    if (this.chunks.length === 0) return;
    let ci = this.chunkFor(from);
    let chunk = this.chunks[ci];
    if (chunk === undefined) return;
    let at = lowerBound(chunk.keys, from);
    while (chunk !== undefined) {
      for (; at < chunk.keys.length; at++) {
        const key = chunk.keys[at] as string;
        if (to !== undefined && key >= to) return;
        if (!visit(key, chunk.values[at] as V)) return;
      }
      ci++;
      chunk = this.chunks[ci];
      at = 0;
    }
  }

  /** Every entry in key order. Do not insert or remove while iterating. */
  *entries(): Generator<[string, V]> {
    for (const chunk of this.chunks) {
      for (let i = 0; i < chunk.keys.length; i++) yield [chunk.keys[i] as string, chunk.values[i] as V];
    }
  }

  /** Index of the chunk that holds `key` or would hold it. */
  private chunkFor(key: string): number {
    let low = 0;
    let high = this.chunks.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      const keys = (this.chunks[mid] as Chunk<V>).keys;
      const last = keys[keys.length - 1] as string;
      if (last < key) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

function lowerBound(sorted: readonly string[], key: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if ((sorted[mid] as string) < key) low = mid + 1;
    else high = mid;
  }
  return low;
}
