import type { RaftNode, ReadState } from '../raft/types.js';
import { StoreError } from '../mvcc/errors.js';

interface PendingRead {
  resolve(): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
  expired?: boolean;
}

/**
 * Linearizable reads through Raft's ReadIndex, batched: one read-index request is out at a time
 * (as etcd's read loop does), and every read that arrives meanwhile shares the next one. Each
 * costs the leader a heartbeat round, so under load a request per event-loop turn would spend
 * the cluster's time on rounds instead of reads. Reads are released once the member has applied
 * up to the index the leader confirmed. A request unanswered for RETRY_MS (lost in a leader
 * change or a dropped message) is sent again with its reads.
 */
const RETRY_MS = 500;

export class ReadIndexQueue {
  private waiting: PendingRead[] = [];
  private readonly inflight = new Map<string, PendingRead[]>();
  private readonly ready: { index: number; reads: PendingRead[] }[] = [];
  private counter = 0;
  private sentAtMs = 0;

  constructor(
    private readonly node: RaftNode,
    private readonly memberId: bigint,
    private readonly applied: () => number,
    private readonly timeoutMs: number,
    private readonly nowMs: () => number = () => performance.now(),
  ) {}

  wait(): Promise<void> {
    return new Promise((resolve, reject) => {
      const read: PendingRead = { resolve, reject, timer: setTimeout(() => this.expire(read), this.timeoutMs) };
      this.waiting.push(read);
    });
  }

  /** Sends one read-index request for everything waiting. */
  flush(): void {
    if (this.inflight.size > 0) {
      if (this.nowMs() - this.sentAtMs < RETRY_MS) return;
      for (const reads of this.inflight.values()) this.waiting.push(...reads);
      this.inflight.clear();
    }
    this.waiting = this.waiting.filter((read) => !read.expired);
    if (this.waiting.length === 0) return;
    const batch = this.waiting;
    this.waiting = [];
    // The leader keys pending reads by context, across every member that forwards one: the
    // member ID keeps two members' counters from colliding (a collision answers only one of them).
    const context = Buffer.alloc(16);
    context.writeBigUInt64BE(this.memberId, 0);
    context.writeDoubleBE(++this.counter, 8);
    const result = this.node.readIndex(context);
    if (!result.ok) {
      for (const read of batch) this.settle(read, new StoreError('no-leader'));
      return;
    }
    this.inflight.set(context.toString('hex'), batch);
    this.sentAtMs = this.nowMs();
  }

  answer(states: readonly ReadState[]): void {
    for (const state of states) {
      const key = Buffer.from(state.requestContext).toString('hex');
      const reads = this.inflight.get(key);
      if (reads === undefined) continue;
      this.inflight.delete(key);
      this.ready.push({ index: state.index, reads });
    }
  }

  /** Releases reads whose index has been applied. */
  release(): void {
    const applied = this.applied();
    for (let i = this.ready.length - 1; i >= 0; i--) {
      const entry = this.ready[i] as { index: number; reads: PendingRead[] };
      if (entry.index > applied) continue;
      this.ready.splice(i, 1);
      for (const read of entry.reads) this.settle(read, null);
    }
  }

  private expire(read: PendingRead): void {
    read.expired = true;
    read.reject(new StoreError('timeout'));
    read.resolve = () => {};
    read.reject = () => {};
  }

  private settle(read: PendingRead, error: Error | null): void {
    clearTimeout(read.timer);
    if (error === null) read.resolve();
    else read.reject(error);
  }

  close(error: Error): void {
    for (const read of this.waiting) this.settle(read, error);
    for (const reads of this.inflight.values()) for (const read of reads) this.settle(read, error);
    for (const entry of this.ready) for (const read of entry.reads) this.settle(read, error);
    this.waiting = [];
    this.inflight.clear();
    this.ready.length = 0;
  }
}
