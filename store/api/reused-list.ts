/**
 * A list emptied and refilled over and over (a busy watcher's held batches, the watchers holding
 * some): clear() lets go of the items but keeps the backing array. An array cut to length 0 gives
 * its backing store up and grows it again as it refills, and under a 1,000-watcher fan-out those
 * regrowths were most of the store's old-generation garbage.
 */
export class ReusedList<T> {
  private readonly items: (T | undefined)[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    this.items[this.count++] = item;
  }

  /** The item at `index` (0 <= index < size). */
  at(index: number): T {
    return this.items[index] as T;
  }

  /** Empties the list; the slots it used are cleared so that their items can be collected. */
  clear(): void {
    this.items.fill(undefined, 0, this.count);
    this.count = 0;
  }
}
