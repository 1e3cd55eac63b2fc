/** One scheduled look at something (a lease, a job): when, and which. */
export interface DeadlineEntry<T> {
  readonly atMs: number;
  readonly id: T;
}

/**
 * A binary min-heap of deadlines. Entries are never updated in place: a new deadline pushes a new
 * entry and the owner skips entries that no longer match (lazy deletion), so a renewal costs
 * O(log n) and finding the next deadline costs nothing while nothing is due.
 */
export class DeadlineHeap<T> {
  private readonly items: DeadlineEntry<T>[] = [];

  get size(): number {
    return this.items.length;
  }

  clear(): void {
    this.items.length = 0;
  }

  push(entry: DeadlineEntry<T>): void {
    const items = this.items;
    items.push(entry);
    let child = items.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if ((items[parent] as DeadlineEntry<T>).atMs <= entry.atMs) break;
      items[child] = items[parent] as DeadlineEntry<T>;
      child = parent;
    }
    items[child] = entry;
  }

  peek(): DeadlineEntry<T> | undefined {
    return this.items[0];
  }

  pop(): DeadlineEntry<T> | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    // Sift the former last entry down from the root.
    let parent = 0;
    for (;;) {
      const left = 2 * parent + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const smaller = right < items.length &&
        (items[right] as DeadlineEntry<T>).atMs < (items[left] as DeadlineEntry<T>).atMs ? right : left;
      if ((items[smaller] as DeadlineEntry<T>).atMs >= last.atMs) break;
      items[parent] = items[smaller] as DeadlineEntry<T>;
      parent = smaller;
    }
    items[parent] = last;
    return top;
  }
}
