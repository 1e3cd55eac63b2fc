import { stableHash } from '../master/planner/slots.js';

/**
 * The one worker that claims a (job, slot) at once; the others wait their takeover delay.
 *
 * A job's `preferWorkers` (affinity) comes first: the first listed worker among the live, eligible
 * candidates. Otherwise rendezvous (highest random weight) hashing: every worker ranks the
 * candidates by hash(job, slot, worker) and agrees, without talking, on one preferred worker per
 * (job, slot). Slots spread evenly over workers, and when a worker leaves only its own slots move.
 */
export function preferredWorker(
  job: string, slot: string, candidates: readonly string[] | ReadonlySet<string>, affinity: readonly string[] = [],
): string | undefined {
  if (affinity.length > 0) {
    const live = new Set(candidates);
    for (const worker of affinity) if (live.has(worker)) return worker;
  }
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
