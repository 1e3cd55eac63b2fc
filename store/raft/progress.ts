import { assert } from '../../shared/assert.js';

/**
 * A bounded window of in-flight append messages to one follower, identified by the last index each
 * carried. A ring buffer: `start` is the oldest, `count` how many are in flight.
 */
export class Inflights {
  private readonly buffer: number[];
  private start = 0;
  count = 0;

  constructor(readonly capacity: number) {
    assert(Number.isSafeInteger(capacity) && capacity > 0, `inflights capacity ${capacity}`);
    this.buffer = new Array<number>(capacity).fill(0);
  }

  full(): boolean {
    return this.count === this.capacity;
  }

  add(lastIndex: number): void {
    assert(!this.full(), 'inflights window overflow');
    this.buffer[(this.start + this.count) % this.capacity] = lastIndex;
    this.count++;
  }

  /** Frees every message whose last index is <= `index`: the follower acknowledged them. */
  freeLE(index: number): void {
    while (this.count > 0 && (this.buffer[this.start] as number) <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  /** Frees the oldest slot so a heartbeat response can unstick a window whose acks were lost. */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

/**
 * How the leader replicates to one follower:
 * - probe: one append per heartbeat interval until we find where the logs match;
 * - replicate: optimistic pipelining, bounded by the inflights window;
 * - snapshot: a snapshot is on its way; nothing else is sent until it is reported or acked.
 */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export class Progress {
  /** Highest index known to be durable on the follower. Invariant: match < next. */
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** Index of the snapshot in flight while state is 'snapshot'. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round; the leader counts itself active. */
  recentActive = false;
  /** In probe state: a probe is outstanding, wait for its answer or the next heartbeat. */
  msgAppFlowPaused = false;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMsgs: number) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // The snapshot (if it arrived) covers up to pendingSnapshot; probe right after it.
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState('probe');
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState('probe');
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  /** The follower acknowledged up to `index`; false when that is old news. */
  maybeUpdate(index: number): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    this.next = Math.max(this.next, index + 1);
    return updated;
  }

  /**
   * The follower rejected an append at `rejected`; `matchHint` is where it suggests we probe.
   * Returns false when the rejection is stale (an answer to an older message).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1);
    this.msgAppFlowPaused = false;
    return true;
  }

  /** Records an append carrying `count` entries starting at `nextIndex`. */
  sentEntries(count: number, nextIndex: number): void {
    switch (this.state) {
      case 'replicate':
        if (count > 0) {
          const last = nextIndex + count - 1;
          this.next = last + 1;
          this.inflights.add(last);
        }
        return;
      case 'probe':
        if (count > 0) this.msgAppFlowPaused = true;
        return;
      case 'snapshot':
        assert(false, 'appends are not sent while a snapshot is in flight');
    }
  }

  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.msgAppFlowPaused;
      case 'replicate':
        return this.inflights.full();
      case 'snapshot':
        return true;
    }
  }
}
