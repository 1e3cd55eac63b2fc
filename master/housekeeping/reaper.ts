import type { Etcd3, IKeyValue } from 'etcd3';
import { openWatchStream } from '../../shared/etcd/watch-stream.js';
import type { Clock, Timer } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { rangePages } from '../../shared/etcd/range-pages.js';
import { LOCKS_PREFIX, RUNS_PREFIX, lockKey, parseRunKey, prefixEnd, retryKey } from '../../shared/keys.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { putOp, revisionOf, runTxn } from '../../shared/etcd/txn.js';
import { readRun } from '../../shared/history/read.js';
import { readRanges } from './batched-ranges.js';
import { schedulerMetrics } from '../../shared/metrics/scheduler-metrics.js';
import { runKey } from '../../shared/keys.js';
import {
  decodeLockValue, decodeRunRecord, encodeRecord, isLiveState, isRetryable, retryBackoffMs, summarizeAttempt,
  type RetryRequest, type RunRecord,
} from '../../shared/history/records.js';

/**
 * Marks runs `lost` when their worker died: the lock key vanished with its lease while the run
 * record was still claimed/running. Watch-driven (deletes under /cron/lock/ with prev_kv), plus a
 * sweep at start for deletes that happened while no housekeeper was running.
 *
 * A lock deleted while its lease is still alive was deleted on purpose (job kill, Replace): the
 * live owner closes its run record. If it does not within the lease TTL + 1 s, we look again.
 */
const RECHECK_SLACK_MS = 1_000;
/**
 * Lock deletes are checked in batches: almost all are finish reports (the run is already final),
 * and one read per finished run was the housekeeper's largest load at 167 starts/s (issue 5 bench).
 */
const DELETE_BATCH_DELAY_MS = 200;
const DELETE_BATCH_MAX = 10_000;
const SWEEP_PAGE_KEYS = 1_000;
const SWEEP_PAGES_MAX = 1_000;

export interface Reaper {
  stop(): Promise<void>;
  /** Runs marked lost so far. */
  reaped(): number;
}

/**
 * `specOf` gives the current definition of a job, for its retry policy: a lost run with attempts
 * left gets a retry request in the same txn as its `lost` record, and any live worker claims it.
 */
export async function startReaper(
  client: Etcd3, clock: Clock, logger: Logger, specOf: (job: string) => JobSpec | undefined = () => undefined,
): Promise<Reaper> {
  const log = logger.child({ component: 'reaper' });
  const timers = new Set<Timer>();
  let stopped = false;
  let reapedCount = 0;

  const leaseTtlSeconds = async (leaseId: string): Promise<number> => {
    if (leaseId === '0') return -1;
    const response = await client.leaseClient.leaseTimeToLive({ ID: leaseId });
    return Number(response.TTL);
  };

  /** `fence` is the deleted lock's createRevision (0 when unknown); a run reaped while still `claimed` never wrote it. */
  const consider = async (
    job: string, slotMs: number, broadcastWorker: string | undefined, runId: string, leaseId: string,
    releasedRevision: number, fence: number,
  ): Promise<void> => {
    const run = await readRun(client, job, slotMs, broadcastWorker === undefined ? {} : { broadcastWorker });
    if (run === undefined || !isLiveState(run.value.state) || run.value.runId !== runId) return;
    const ttl = await leaseTtlSeconds(leaseId);
    if (ttl > 0) {
      const timer = clock.setTimer(ttl * 1000 + RECHECK_SLACK_MS, () => {
        timers.delete(timer);
        if (!stopped) void consider(job, slotMs, broadcastWorker, runId, leaseId, releasedRevision, fence).catch(() => undefined);
      });
      timers.add(timer);
      return;
    }
    const spec = specOf(job);
    const endedAtMs = clock.nowMs();
    // Broadcast runs belong to their worker: a lost one is not run by another (docs/scheduler.md).
    const retry = spec !== undefined && broadcastWorker === undefined && isRetryable('lost', run.value.attempt, spec.retries);
    const backoffMs = spec === undefined ? 0 : retryBackoffMs(spec.retries, run.value.attempt);
    const lostReason = `worker ${run.value.worker ?? '?'} lost its lease ${leaseId} while the run was ${run.value.state}`;
    const record: RunRecord = {
      ...run.value, state: 'lost', endedAtMs, lockReleasedRevision: releasedRevision,
      ...(run.value.fence === undefined && fence > 0 ? { fence } : {}),
      reason: retry && spec !== undefined
        ? `${lostReason}; retry ${run.value.attempt + 1} of ${spec.retries.count + 1} in ${backoffMs} ms on any worker`
        : lostReason,
    };
    const retryRequest: RetryRequest | undefined = retry ? {
      job, slot: run.value.slot, attempt: run.value.attempt + 1, retryAtMs: endedAtMs + backoffMs,
      previousAttempts: [...(run.value.previousAttempts ?? []), summarizeAttempt(record)],
    } : undefined;
    const outcome = await runTxn(client, {
      compare: [{ key: run.key, target: 'Mod', result: 'Equal', value: run.modRevision }],
      // One txn: the retry key's modRevision is the lost record's, which the retry's claim compares.
      success: [putOp(run.key, encodeRecord(record)),
        ...(retryRequest === undefined ? [] : [putOp(retryKey(job, slotMs), encodeRecord(retryRequest))])],
    });
    if (outcome.succeeded) {
      reapedCount++;
      schedulerMetrics.runsLost.inc({ reason: 'lease-ended' });
      log.info({ job, slot: run.value.slot, worker: run.value.worker, fence: run.value.fence }, 'run marked lost');
    }
  };

  interface ReleasedLock {
    readonly job: string;
    readonly slot: string;
    readonly slotMs: number;
    readonly broadcastWorker: string | undefined;
    readonly runId: string;
    readonly leaseId: string;
    readonly releasedRevision: number;
    readonly fence: number;
  }
  let released: ReleasedLock[] = [];
  let flushTimer: Timer | undefined;

  /** One batched read of the released locks' run records; only those still live are looked at. */
  const flush = async (): Promise<void> => {
    flushTimer = undefined;
    const batch = released;
    released = [];
    const keys = batch.map((r) => runKey(r.job, r.slotMs, r.broadcastWorker));
    let found: IKeyValue[][];
    try {
      found = await readRanges(client, keys.map((key) => ({ key: Buffer.from(key), rangeEnd: Buffer.from(`${key}\u0000`) })));
    } catch (err) {
      // Keep them for the next flush: a released lock of a dead worker must not be forgotten.
      released = [...batch, ...released].slice(0, DELETE_BATCH_MAX);
      scheduleFlush();
      throw err;
    }
    batch.forEach((r, index) => {
      const kv = found[index]?.[0];
      const run = kv === undefined ? undefined : decodeRunRecord(kv.value.toString());
      if (run === undefined || !isLiveState(run.state) || run.runId !== r.runId) return;
      consider(r.job, r.slotMs, r.broadcastWorker, r.runId, r.leaseId, r.releasedRevision, r.fence).catch((err: unknown) => {
        log.warn({ err, job: r.job, slot: r.slot }, 'reaper check failed');
      });
    });
  };

  const onDelete = (prev: IKeyValue | undefined, revision: number): void => {
    if (prev === undefined || prev === null) return;
    const parsed = parseRunKey(prev.key.toString());
    const lock = decodeLockValue(prev.value.toString());
    if (parsed === undefined || lock === undefined) return;
    if (released.length >= DELETE_BATCH_MAX) {
      // Only if the store has been unreachable for long; a new housekeeper's start-up sweep finds it.
      log.error({ job: parsed.job, slot: parsed.slot }, 'reaper queue full; lock release not checked');
      return;
    }
    released.push({
      job: parsed.job, slot: parsed.slot, slotMs: parsed.slotMs, broadcastWorker: parsed.broadcastWorker, runId: lock.runId,
      leaseId: prev.lease, releasedRevision: revision, fence: revisionOf(prev.create_revision),
    });
    scheduleFlush();
  };

  function scheduleFlush(): void {
    flushTimer ??= clock.setTimer(DELETE_BATCH_DELAY_MS, () => {
      if (stopped) return;
      flush().catch((err: unknown) => log.warn({ err }, 'reaper batch read failed; retrying'));
    });
  }

  const sweepLive = (): Promise<number> => sweep(client, async (run, key) => {
    const parsed = parseRunKey(key);
    if (parsed === undefined || run.leaseId === undefined) return;
    const lock = await client.kv.range({ key: Buffer.from(lockKey(parsed.job, parsed.slotMs, parsed.broadcastWorker)), count_only: true });
    if (Number(lock.count) > 0) return;
    await consider(parsed.job, parsed.slotMs, parsed.broadcastWorker, run.runId, run.leaseId, 0, 0);
  });
  const startRevision = await sweepLive();
  const watch = openWatchStream(client, LOCKS_PREFIX, startRevision + 1, { prevKv: true }, {
    events: (events) => {
      for (const event of events) {
        if (event.type === 'Delete') onDelete(event.prev_kv ?? undefined, revisionOf(event.kv.mod_revision));
      }
    },
    // Deletes in the compacted gap are found by sweeping live runs whose lock is gone.
    onCompacted: (compactRevision) => {
      log.warn({ compactRevision }, 'lock watch compacted; sweeping live runs');
      void sweepLive().then((revision) => watch.restart(revision + 1)).catch((err: unknown) => {
        log.error({ err }, 'sweep after compaction failed');
        watch.restart(compactRevision + 1);
      });
    },
  }, log);
  return {
    reaped: () => reapedCount,
    stop: async () => {
      stopped = true;
      flushTimer?.cancel();
      for (const timer of timers) timer.cancel();
      watch.close();
    },
  };
}

/** Visits every live run record, page by page; returns the revision the sweep started at. */
async function sweep(client: Etcd3, visit: (run: RunRecord, key: string) => Promise<void>): Promise<number> {
  let revision = 0;
  const pages = rangePages(client, {
    key: Buffer.from(RUNS_PREFIX), rangeEnd: prefixEnd(RUNS_PREFIX), pageKeys: SWEEP_PAGE_KEYS, pagesMax: SWEEP_PAGES_MAX,
  });
  for await (const page of pages) {
    revision = page.revision;
    for (const kv of page.kvs) {
      const run = decodeRunRecord(kv.value.toString());
      if (run !== undefined && isLiveState(run.state)) await visit(run, kv.key.toString());
    }
  }
  return revision;
}
