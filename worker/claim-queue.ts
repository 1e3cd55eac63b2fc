/**
 * Slots waiting for room among a worker's claims in flight. Slots still on time (or claimed
 * ahead) go first, oldest first; a slot that waited past `lateAfterMs` joins the late ones,
 * which go only when no on-time slot waits, newest first. Served in plain arrival order, a
 * backlog (a worker's start-up catch-up, a stall) kept every later slot as late as the backlog
 * was long while arrivals matched the claim rate; this way the backlog waits instead, and what is
 * left of it when its deadline passes is recorded missed by housekeeping.
 */
export interface QueuedSlot {
  /** The slot's start instant (slot + jitter). */
  readonly startMs: number;
}

export class ClaimQueue<T extends QueuedSlot> {
  private onTime: T[] = [];
  private onTimeHead = 0;
  /** In the order they turned late, so by start instant: the oldest at the front. */
  private readonly late: T[] = [];

  constructor(private readonly lateAfterMs: number) {}

  get size(): number {
    return this.onTime.length - this.onTimeHead + this.late.length;
  }

  /** The slot next() would look at first (before any turns late or expires). */
  peek(): T | undefined {
    return this.onTimeHead < this.onTime.length ? this.onTime[this.onTimeHead] : this.late[this.late.length - 1];
  }

  push(item: T): void {
    this.onTime.push(item);
  }

  /** The next slot to claim, if any; `isExpired` slots (past their deadline) go to `onExpired`. */
  next(nowMs: number, isExpired: (item: T) => boolean, onExpired: (item: T) => void): T | undefined {
    while (this.onTimeHead < this.onTime.length) {
      const head = this.onTime[this.onTimeHead] as T;
      this.onTimeHead++;
      this.compact();
      if (nowMs - head.startMs <= this.lateAfterMs) return head;
      this.late.push(head);
    }
    while (this.late.length > 0 && isExpired(this.late[0] as T)) onExpired(this.late.shift() as T);
    return this.late.pop();
  }

  clear(): void {
    this.onTime = [];
    this.onTimeHead = 0;
    this.late.length = 0;
  }

  /** Drops the taken prefix now and then, so the array does not grow for ever. */
  private compact(): void {
    if (this.onTimeHead >= 1024 && this.onTimeHead * 2 >= this.onTime.length) {
      this.onTime = this.onTime.slice(this.onTimeHead);
      this.onTimeHead = 0;
    }
  }
}
