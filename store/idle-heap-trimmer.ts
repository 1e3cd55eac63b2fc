import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Logger } from '../shared/log.js';
import { readHeapSizes, type HeapSizes } from './heap-sizes.js';

/**
 * Gives back the heap a burst of work left behind once the store process has gone quiet.
 *
 * After a burst (a bulk load, a watch fan-out) V8 keeps its young generation at full size and the
 * old generation's garbage until it next collects, which a quiet process may not do for a long
 * time: V8's own memory reducer waits for a drop in the allocation rate, and the heartbeats of a
 * Raft group keep allocating. One full collection when the process has been nearly idle for a
 * few seconds returns that memory at the price of a few pauses (~40 ms each with 200k keys) that
 * no request is waiting on. It takes more than one, a tick apart: the first frees the old
 * generation's garbage; V8 shrinks its young generation only once it has seen the allocation rate
 * drop, over the next ones.
 */

/** One sample per tick: CPU the whole process used since the last one, and V8's heap sizes. */
export interface HeapSample extends HeapSizes {
  readonly cpuMicros: number;
  readonly tickMicros: number;
}

export interface IdleHeapPolicyOptions {
  /** A tick counts as quiet when the process used less than this share of one core. */
  readonly quietCpuShare: number;
  /** Consecutive quiet ticks before a collection. */
  readonly quietTicks: number;
  /**
   * Collect only when the committed heap has grown this much past what the last one left, or the
   * young generation is larger than YOUNG_SHRUNK_BYTES (V8 gives it back only at a collection).
   */
  readonly growthBytes: number;
}

export const DEFAULT_IDLE_HEAP_POLICY: IdleHeapPolicyOptions = {
  quietCpuShare: 0.05,
  quietTicks: 5,
  growthBytes: 16 * 1024 * 1024,
};

/** A quiet spell runs at most this many collections, one per tick... */
const COLLECTIONS_PER_SPELL_MAX = 4;
/** ...and another only while the last one gave back at least this much, or left the young generation above this size. */
const FREED_TO_GO_ON_BYTES = 4 * 1024 * 1024;
const YOUNG_SHRUNK_BYTES = 4 * 1024 * 1024;

/**
 * The decision alone, as a pure function of the samples: after `quietTicks` quiet ticks in a row,
 * if the heap grew since the last collection or the young generation is at its burst size, collect
 * on this tick and on the next quiet ones while each still gives memory back or the young
 * generation has not shrunk yet; then wait for activity and a new quiet spell.
 */
export class IdleHeapPolicy {
  private quietRun = 0;
  /** Set by activity; a quiet spell starts collecting once at most. */
  private armed = false;
  /** Collections run in this quiet spell, and whether the next quiet tick runs one more. */
  private spellCollections = 0;
  private goOn = false;
  private baselineBytes: number;

  constructor(initialCommittedBytes: number, private readonly options: IdleHeapPolicyOptions = DEFAULT_IDLE_HEAP_POLICY) {
    this.baselineBytes = initialCommittedBytes;
  }

  /** Whether to collect now. */
  observe(sample: HeapSample): boolean {
    const isQuiet = sample.cpuMicros < sample.tickMicros * this.options.quietCpuShare;
    if (!isQuiet) {
      this.quietRun = 0;
      this.armed = true;
      this.goOn = false;
      return false;
    }
    this.quietRun++;
    if (this.goOn) return true;
    if (!this.armed || this.quietRun < this.options.quietTicks) return false;
    this.armed = false;
    this.spellCollections = 0;
    return sample.committedBytes > this.baselineBytes + this.options.growthBytes || sample.youngBytes > YOUNG_SHRUNK_BYTES;
  }

  /** What a collection found and left: whether to go on, and the growth the next spell waits for. */
  collected(beforeBytes: number, after: HeapSizes): void {
    this.spellCollections++;
    this.baselineBytes = after.committedBytes;
    const isWorthAnother = beforeBytes - after.committedBytes >= FREED_TO_GO_ON_BYTES || after.youngBytes > YOUNG_SHRUNK_BYTES;
    this.goOn = this.spellCollections < COLLECTIONS_PER_SPELL_MAX && isWorthAnother;
  }
}

/** V8's collector as a function, from a fresh context that exposes it; null where it cannot be had. */
function collectorFunction(): (() => void) | null {
  const own: unknown = (globalThis as { gc?: unknown }).gc;
  if (typeof own === 'function') return own as () => void;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

const TICK_MS = 1000;

/**
 * Runs the policy on a timer that does not keep the process alive. One per process (the heap is
 * the process's): the `etcron store` and `etcron up` commands start it, not the store itself.
 */
export function startIdleHeapTrimmer(log: Logger, options: IdleHeapPolicyOptions = DEFAULT_IDLE_HEAP_POLICY): () => void {
  const gc = collectorFunction();
  if (gc === null) {
    log.debug('the runtime does not expose its collector; idle heap trimming is off');
    return () => {};
  }
  const policy = new IdleHeapPolicy(readHeapSizes().committedBytes, options);
  let lastCpu = process.cpuUsage();
  let lastAt = performance.now();
  const timer = setInterval(() => {
    const cpu = process.cpuUsage(lastCpu);
    const now = performance.now();
    const sample = { cpuMicros: cpu.user + cpu.system, tickMicros: (now - lastAt) * 1000, ...readHeapSizes() };
    if (policy.observe(sample)) {
      const started = performance.now();
      gc();
      const after = readHeapSizes();
      policy.collected(sample.committedBytes, after);
      log.debug({ beforeBytes: sample.committedBytes, afterBytes: after.committedBytes, youngBytes: after.youngBytes, pauseMs: Math.round(performance.now() - started) }, 'idle: heap trimmed');
    }
    // The collection's own CPU is not activity.
    lastCpu = process.cpuUsage();
    lastAt = performance.now();
  }, TICK_MS);
  timer.unref();
  return () => clearInterval(timer);
}
