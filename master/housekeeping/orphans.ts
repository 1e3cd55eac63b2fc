import type { Etcd3 } from 'etcd3';
import { JOBS_PREFIX, RUNS_PREFIX, prefixEnd, runsPrefix } from '../../shared/keys.js';
import { purgeHistory } from './trim.js';

/** Names visited per sweep: a bound on the loop (one read each). */
const NAMES_PER_SWEEP_MAX = 100_000;
/**
 * Orphaned records must have ended this long ago. A job created again under the name has runs
 * of its own, and the housekeeper may not have seen its definition yet.
 */
const ORPHAN_MIN_AGE_MS = 10 * 60_000;

/** Job names that have run records, in key order: a skip scan, one keys-only read per name. */
export async function namesWithHistory(client: Etcd3): Promise<string[]> {
  const names: string[] = [];
  let from: Buffer = Buffer.from(RUNS_PREFIX);
  const end = prefixEnd(RUNS_PREFIX);
  for (let i = 0; i < NAMES_PER_SWEEP_MAX; i++) {
    const response = await client.kv.range({ key: from, range_end: end, limit: 1, keys_only: true });
    const key = response.kvs[0]?.key.toString();
    if (key === undefined) break;
    const slash = key.indexOf('/', RUNS_PREFIX.length);
    if (slash < 0) {
      // Not a run key (nothing of ours writes one): step over it.
      from = Buffer.concat([Buffer.from(key), Buffer.from([0])]);
      continue;
    }
    const name = key.slice(RUNS_PREFIX.length, slash);
    names.push(name);
    from = prefixEnd(runsPrefix(name));
  }
  return names;
}

/**
 * Deletes the final run records of jobs that no longer exist: the records of runs that were
 * still live at `job rm` (which leaves those to their workers) and of jobs deleted by other
 * means than `job rm`. `isKnown` is the housekeeper's job set; a name it does not know is
 * checked in the store before anything of it is deleted.
 */
export async function trimOrphans(client: Etcd3, isKnown: (name: string) => boolean, nowMs: number): Promise<number> {
  let deleted = 0;
  for (const name of await namesWithHistory(client)) {
    if (isKnown(name)) continue;
    const definition = await client.kv.range({ key: Buffer.from(`${JOBS_PREFIX}${name}`), count_only: true });
    if (Number(definition.count) > 0) continue;
    deleted += await purgeHistory(client, name, { endedBeforeMs: nowMs - ORPHAN_MIN_AGE_MS });
  }
  return deleted;
}
