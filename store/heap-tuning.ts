import type { Logger } from '../shared/log.js';
import { startIdleHeapTrimmer } from './idle-heap-trimmer.js';
import { capYoungGeneration } from './young-generation-cap.js';

/**
 * What a process that hosts a store does to keep its resident memory near what its data needs
 * (docs/store.md, "Memory"): a smaller young generation under load, the heap given back when idle.
 * One per process: the heap is the process's, so the commands call it, not the store.
 */
export function startHeapTuning(log: Logger): () => void {
  const stops = [capYoungGeneration(log), startIdleHeapTrimmer(log)];
  return () => {
    for (const stop of stops) stop();
  };
}
