import { stableHash } from '../master/planner/slots.js';

/**
 * Rendezvous (highest random weight) hashing: every worker ranks the live, eligible workers by
 * hash(job, slot, worker) and agrees, without talking, on one preferred worker per (job, slot).
 * Slots spread evenly over workers, and when a worker leaves only its own slots move.
 */
export function preferredWorker(job: string, slot: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const worker of candidates) {
    const score = stableHash(`${job}|${slot}|${worker}`);
    if (score > bestScore || (score === bestScore && best !== undefined && worker < best)) {
      best = worker;
      bestScore = score;
    }
  }
  return best;
}
