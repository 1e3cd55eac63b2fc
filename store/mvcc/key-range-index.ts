/**
 * Finds which of a set of key ranges [from, end) hold a given key, without testing every range:
 * the ranges sorted by their first key form an implicit balanced tree in which each node knows the
 * largest end below it, so a lookup skips every subtree that ends at or before the key and every
 * range that starts after it. The tree is rebuilt on the first lookup after a change, so adding
 * or removing many ranges between lookups costs one sort.
 */
export class KeyRangeIndex<T> {
  private readonly ranges = new Map<T, Range<T>>();
  /** The ranges by first key; null once a change has made it stale. */
  private sorted: Range<T>[] | null = [];
  /** maxEnd[i]: the largest end in the subtree whose root is sorted[i]; null is unbounded. */
  private maxEnd: (Buffer | null)[] = [];

  get size(): number {
    return this.ranges.size;
  }

  /** `end` null: every key from `from` on (etcd's range end "\0"). */
  add(value: T, from: Buffer, end: Buffer | null): void {
    this.ranges.set(value, { value, from, end });
    this.sorted = null;
  }

  delete(value: T): void {
    if (this.ranges.delete(value)) this.sorted = null;
  }

  /** Calls `visit` with every value whose range holds `key`. */
  forEachHolding(key: Buffer, visit: (value: T) => void): void {
    if (this.ranges.size === 0) return;
    const sorted = this.sorted ?? this.rebuild();
    this.search(sorted, key, 0, sorted.length, visit);
  }

  private search(
    sorted: readonly Range<T>[], key: Buffer, lo: number, hi: number, visit: (value: T) => void,
  ): void {
    if (lo >= hi) return;
    const mid = (lo + hi) >>> 1;
    const maxEnd = this.maxEnd[mid] ?? null;
    if (maxEnd !== null && Buffer.compare(maxEnd, key) <= 0) return;
    this.search(sorted, key, lo, mid, visit);
    const range = sorted[mid] as Range<T>;
    if (Buffer.compare(range.from, key) > 0) return;
    if (range.end === null || Buffer.compare(key, range.end) < 0) visit(range.value);
    this.search(sorted, key, mid + 1, hi, visit);
  }

  private rebuild(): Range<T>[] {
    const sorted = [...this.ranges.values()].sort((a, b) => Buffer.compare(a.from, b.from));
    this.maxEnd = new Array<Buffer | null>(sorted.length);
    const fill = (lo: number, hi: number): Buffer | null | undefined => {
      if (lo >= hi) return undefined; // empty: bounds nothing
      const mid = (lo + hi) >>> 1;
      let max = (sorted[mid] as Range<T>).end;
      for (const child of [fill(lo, mid), fill(mid + 1, hi)]) {
        if (child === undefined || max === null) continue;
        if (child === null || Buffer.compare(child, max) > 0) max = child;
      }
      this.maxEnd[mid] = max;
      return max;
    };
    fill(0, sorted.length);
    this.sorted = sorted;
    return sorted;
  }
}

interface Range<T> {
  readonly value: T;
  readonly from: Buffer;
  readonly end: Buffer | null;
}
