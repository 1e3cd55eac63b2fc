/** One scheduled look at a lease: when, and which. */
export interface DeadlineEntry {
  readonly atMs: number;
  readonly id: bigint;
}

/**
 * A binary min-heap of lease deadlines. Entries are never updated in place: a renewal pushes a new
 * entry and the owner skips entries that no longer match its lease (lazy deletion), so a renewal
 * costs O(log n) and finding the next expiry costs nothing while nothing is due.
 */
export class DeadlineHeap {
  private readonly items: DeadlineEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  clear(): void {
    this.items.length = 0;
  }

  push(entry: DeadlineEntry): void {
    const items = this.items;
    items.push(entry);
    let child = items.length - 1;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      if ((items[parent] as DeadlineEntry).atMs <= entry.atMs) break;
      items[child] = items[parent] as DeadlineEntry;
      child = parent;
    }
    items[child] = entry;
  }

  peek(): DeadlineEntry | undefined {
    return this.items[0];
  }

  pop(): DeadlineEntry | undefined {
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
        (items[right] as DeadlineEntry).atMs < (items[left] as DeadlineEntry).atMs ? right : left;
      if ((items[smaller] as DeadlineEntry).atMs >= last.atMs) break;
      items[parent] = items[smaller] as DeadlineEntry;
      parent = smaller;
    }
    items[parent] = last;
    return top;
  }
}
