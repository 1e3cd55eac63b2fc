import type { Etcd3, IKeyValue, IRequestOp } from 'etcd3';
import { rangeResult, runTxn, type CompareSpec, type TxnOutcome } from '../../shared/etcd/txn.js';

/**
 * Sends the conditional writes a worker makes in one event-loop turn (the claims of a
 * cron-aligned burst, the finish records of runs that ended together) as a few txns instead of one
 * each. A txn is all or nothing, so the batch succeeds only when every item's compares hold; that
 * is the common case (each worker claims its own slots). When it fails, its failure branch holds
 * each item's reads, and every item decides from its own reads alone whether it lost (taken,
 * fenced) or would have passed; those go into the next batch. Each failed batch settles at least
 * one item (reads and compares see one revision), so an item is re-batched at most as often as its
 * batch had items. A batch whose outcome is unknown
 * (deadline, lost reply) hands each item to its own error path: claims read their nonce back,
 * never re-send blindly.
 *
 * Items with the same `group` never share a txn: all writes of a txn get one revision, and two
 * claims of one job must not get the same fence.
 */
export interface BatchItem<R> {
  readonly group: string;
  /** About how many bytes it adds to the request (its values). */
  readonly bytes: number;
  readonly compare: readonly CompareSpec[];
  readonly success: readonly IRequestOp[];
  /** Reads that tell this item's outcome when the batch failed. */
  readonly failure: readonly IRequestOp[];
  /** The batch succeeded: every write is at `revision`. */
  succeeded(revision: number): R;
  /**
   * The batch failed: 'again' if this item's compares held (another item failed it), 'alone' if
   * it must be settled on its own, else its result.
   */
  failed(reads: readonly IKeyValue[][]): R | 'again' | 'alone';
  /** The item sent on its own. Never rejects. */
  alone(): Promise<R>;
  /** The batch's outcome is unknown or it was refused. Never rejects. */
  errored(error: unknown): Promise<R>;
}

/** etcd's default --max-txn-ops: compares, success ops and failure ops each at most this many. */
export const TXN_OPS_MAX = 128;
/** Well under etcd's 1.5 MiB request limit: one big output tail must not fail a whole batch. */
export const TXN_BYTES_MAX = 512 * 1024;

interface Pending {
  readonly item: BatchItem<unknown>;
  readonly resolve: (result: unknown) => void;
}

export class TxnBatcher {
  private queue: Pending[] = [];
  private isFlushScheduled = false;
  private readonly counters = { submitted: 0, txns: 0, items: 0, failedBatches: 0 };

  constructor(private readonly client: Etcd3, private readonly opsMax = TXN_OPS_MAX, private readonly bytesMax = TXN_BYTES_MAX) {}

  /** Queues the item for the next flush (this event-loop turn's items go together). */
  submit<R>(item: BatchItem<R>): Promise<R> {
    this.counters.submitted++;
    return new Promise<R>((resolve) => {
      this.queue.push({ item, resolve: resolve as (result: unknown) => void });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.isFlushScheduled || this.queue.length === 0) return;
    this.isFlushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** Items submitted; txns sent, and the items they carried (an item sent again counts again). */
  stats(): { submitted: number; txns: number; items: number; failedBatches: number } {
    return { ...this.counters };
  }

  private flush(): void {
    this.isFlushScheduled = false;
    const queue = this.queue;
    this.queue = [];
    for (const batch of this.split(queue)) void this.send(batch);
  }

  /** Fills txns in arrival order within the op limits, one item per group per txn. */
  private split(queue: readonly Pending[]): Pending[][] {
    const batches: { items: Pending[]; groups: Set<string>; compare: number; success: number; failure: number; bytes: number }[] = [];
    for (const pending of queue) {
      const { group, compare, success, failure, bytes } = pending.item;
      let target = batches.find((b) => !b.groups.has(group) && b.compare + compare.length <= this.opsMax
        && b.success + success.length <= this.opsMax && b.failure + failure.length <= this.opsMax
        && b.bytes + bytes <= this.bytesMax);
      if (target === undefined) {
        target = { items: [], groups: new Set(), compare: 0, success: 0, failure: 0, bytes: 0 };
        batches.push(target);
      }
      target.items.push(pending);
      target.groups.add(group);
      target.compare += compare.length;
      target.success += success.length;
      target.failure += failure.length;
      target.bytes += bytes;
    }
    return batches.map((b) => b.items);
  }

  private async send(batch: readonly Pending[]): Promise<void> {
    this.counters.txns++;
    this.counters.items += batch.length;
    let outcome: TxnOutcome;
    try {
      outcome = await runTxn(this.client, {
        compare: batch.flatMap((p) => p.item.compare),
        success: batch.flatMap((p) => p.item.success),
        failure: batch.flatMap((p) => p.item.failure),
      });
    } catch (error) {
      await Promise.all(batch.map(async (p) => p.resolve(await p.item.errored(error))));
      return;
    }
    if (outcome.succeeded) {
      for (const p of batch) p.resolve(p.item.succeeded(outcome.revision));
      return;
    }
    this.counters.failedBatches++;
    // The failure branch holds every item's reads, in item order.
    let index = 0;
    const decided = batch.map((p) => {
      const reads = p.item.failure.map(() => rangeResult(outcome, index++));
      return { p, result: p.item.failed(reads) };
    });
    // A failed batch always settles one item; if none did, the reads do not mirror the compares,
    // and sending each alone is what ends the loop.
    const isSettling = decided.some(({ result }) => result !== 'again');
    for (const { p, result } of decided) {
      if (result === 'again') {
        if (isSettling) this.queue.push(p);
        else void p.item.alone().then(p.resolve);
      }
      else if (result === 'alone') void p.item.alone().then(p.resolve);
      else p.resolve(result);
    }
    this.scheduleFlush();
  }
}
