import { assert } from '../../shared/assert.js';

/**
 * An ordered set of keys, each key a latin1 string (one char per byte), so that JavaScript's string
 * order is exactly etcd's byte order. Kept as a list of sorted chunks: inserts move at most one
 * chunk's worth of pointers, and a range scan is a binary search followed by a walk.
 */
const CHUNK_MAX = 512;

export class SortedKeys {
  private chunks: string[][] = [];
  private total = 0;

  get size(): number {
    return this.total;
  }

  /** Inserts `key` if absent; returns whether it was added. */
  insert(key: string): boolean {
    if (this.chunks.length === 0) {
      this.chunks.push([key]);
      this.total = 1;
      return true;
    }
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    assert(chunk !== undefined, 'chunk exists');
    const at = lowerBound(chunk, key);
    if (chunk[at] === key) return false;
    chunk.splice(at, 0, key);
    this.total++;
    if (chunk.length > CHUNK_MAX) {
      const tail = chunk.splice(chunk.length >> 1);
      this.chunks.splice(ci + 1, 0, tail);
    }
    return true;
  }

  remove(key: string): boolean {
    if (this.chunks.length === 0) return false;
    const ci = this.chunkFor(key);
    const chunk = this.chunks[ci];
    assert(chunk !== undefined, 'chunk exists');
    const at = lowerBound(chunk, key);
    if (chunk[at] !== key) return false;
    chunk.splice(at, 1);
    this.total--;
    if (chunk.length === 0) this.chunks.splice(ci, 1);
    return true;
  }

  /**
   * Visits keys in [from, to) in order; `to` undefined means no upper bound. The visitor returns
   * false to stop early.
   */
  forEachInRange(from: string, to: string | undefined, visit: (key: string) => boolean): void {
    if (this.chunks.length === 0) return;
    let ci = this.chunkFor(from);
    let chunk = this.chunks[ci];
    if (chunk === undefined) return;
    let at = lowerBound(chunk, from);
    while (chunk !== undefined) {
      for (; at < chunk.length; at++) {
        const key = chunk[at] as string;
        if (to !== undefined && key >= to) return;
        if (!visit(key)) return;
      }
      ci++;
      chunk = this.chunks[ci];
      at = 0;
    }
  }

  /** Index of the chunk that holds `key` or would hold it. */
  private chunkFor(key: string): number {
    let low = 0;
    let high = this.chunks.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      const chunk = this.chunks[mid] as string[];
      const last = chunk[chunk.length - 1] as string;
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
