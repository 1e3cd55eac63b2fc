import type { Etcd3, IKeyValue } from 'etcd3';
import { runKey, runsPrefix, prefixEnd } from '../../shared/keys.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { deleteOp, revisionOf, runTxn } from '../../shared/etcd/txn.js';
import { rangePages } from '../../shared/etcd/range-pages.js';
import { decodeRunRecord, isLiveState } from '../../shared/history/records.js';
import { missedAfterMs } from './missed.js';

/** Keys deleted per txn: well under etcd's 128 ops per txn, counting one compare per delete. */
const TRIM_BATCH_KEYS = 50;
/** Run records per read while looking for what to trim. */
const TRIM_READ_PAGE_KEYS = 20;
/** Keys deleted per job per pass. */
const TRIM_KEYS_PER_PASS_MAX = 500;
/**
 * Records younger than their start deadline are never trimmed: deleting a run record reopens its
 * slot to create_revision == 0, so a late worker could start it again.
 */
const TRIM_PROTECT_SLACK_MS = 60_000;

/** Deletes the oldest final run records beyond history.countMax and older than history.ageMs. */
export async function trimHistory(client: Etcd3, spec: JobSpec, nowMs: number): Promise<number> {
  const prefix = runsPrefix(spec.name);
  // One read: a range's count covers the whole range whatever its limit, and the first key is the oldest.
  const head = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix), limit: 1, keys_only: true });
  const count = Number(head.count);
  const ageLimitKey = runKey(spec.name, Math.max(0, nowMs - spec.history.ageMs));
  const excess = Math.max(0, count - spec.history.countMax);
  const oldestKey = head.kvs[0]?.key.toString();
  // The common case: under the count limit and nothing over age.
  if (excess === 0 && (oldestKey === undefined || oldestKey >= ageLimitKey)) return 0;
  // Oldest first, a few records per read: each may carry an output tail of up to 1 MiB.
  // Only what the delete needs is kept, not the records (their tails) themselves.
  const victims: KeyVersion[] = [];
  const pages = rangePages(client, {
    key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), pageKeys: TRIM_READ_PAGE_KEYS,
    pagesMax: Math.ceil(TRIM_KEYS_PER_PASS_MAX / TRIM_READ_PAGE_KEYS),
  });
  let index = 0;
  visiting: for await (const page of pages) {
    for (const kv of page.kvs) {
      const key = kv.key.toString();
      const overCount = index++ < excess;
      const overAge = key < ageLimitKey;
      if (!overCount && !overAge) break visiting;
      const record = decodeRunRecord(kv.value.toString());
      if (record === undefined || isLiveState(record.state)) continue;
      const slotMs = Date.parse(record.slot);
      if (missedAfterMs(spec, slotMs) + TRIM_PROTECT_SLACK_MS > nowMs) break visiting;
      victims.push({ key: kv.key, mod_revision: kv.mod_revision });
    }
  }
  return deleteUnchanged(client, victims);
}

/** Deletes each key unless it changed since read, in txns of TRIM_BATCH_KEYS; returns how many went. */
type KeyVersion = Pick<IKeyValue, 'key' | 'mod_revision'>;

async function deleteUnchanged(client: Etcd3, victims: readonly KeyVersion[]): Promise<number> {
  let deleted = 0;
  for (let i = 0; i < victims.length; i += TRIM_BATCH_KEYS) {
    const batch = victims.slice(i, i + TRIM_BATCH_KEYS);
    const outcome = await runTxn(client, {
      compare: batch.map((kv) => ({ key: kv.key.toString(), target: 'Mod' as const, result: 'Equal' as const, value: revisionOf(kv.mod_revision) })),
      success: batch.map((kv) => deleteOp(kv.key.toString())),
    });
    if (outcome.succeeded) deleted += batch.length;
  }
  return deleted;
}

/** Pages of run records read per step of a purge, and the bound on steps. */
const PURGE_PAGE_KEYS = 500;
const PURGE_PAGES_MAX = 1_000;

/**
 * After `job rm`: deletes every final run record of the job. Records of runs still live stay for
 * their worker to finish (a run record deleted under it would make its finish report look
 * fenced and leave its lock behind). The job is gone, so no worker starts a slot whose record
 * went; a job created again under the name starts afresh.
 */
export async function purgeHistory(client: Etcd3, job: string, options: { readonly endedBeforeMs?: number } = {}): Promise<number> {
  const endedBeforeMs = options.endedBeforeMs ?? Number.POSITIVE_INFINITY;
  const prefix = runsPrefix(job);
  let deleted = 0;
  const pages = rangePages(client, {
    key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), pageKeys: PURGE_PAGE_KEYS, pagesMax: PURGE_PAGES_MAX,
  });
  for await (const page of pages) {
    const finals = page.kvs.filter((kv) => {
      const record = decodeRunRecord(kv.value.toString());
      return record === undefined || (!isLiveState(record.state) && (record.endedAtMs ?? 0) < endedBeforeMs);
    });
    deleted += await deleteUnchanged(client, finals);
  }
  return deleted;
}
