import type { Etcd3, IKeyValue } from 'etcd3';
import { LOCKS_PREFIX, WORKERS_PREFIX, locksPrefix, parseRunKey, prefixEnd, runKey, runsPrefix } from '../keys.js';
import { revisionOf } from '../etcd/txn.js';
import { SchedulerStoreError } from '../etcd/errors.js';
import {
  decodeLockValue, decodeRunRecord, decodeWorkerInfo, type LockValue, type RunRecord, type WorkerInfo,
} from './records.js';

/** A decoded value with the MVCC metadata it was read with. */
export interface Versioned<T> {
  readonly key: string;
  readonly value: T;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
  /** "0" when the key has no lease. */
  readonly leaseId: string;
}

/** `revision` absent means "latest"; a compacted or future revision is an error from the store. */
export interface AtRevision {
  readonly revision?: number;
}

function versioned<T>(kv: IKeyValue, value: T): Versioned<T> {
  return {
    key: kv.key.toString(),
    value,
    createRevision: revisionOf(kv.create_revision),
    modRevision: revisionOf(kv.mod_revision),
    version: Number(kv.version),
    leaseId: kv.lease,
  };
}

async function rangePrefix(client: Etcd3, prefix: string, revision?: number): Promise<{ revision: number; kvs: IKeyValue[] }> {
  const response = await client.kv.range({
    key: Buffer.from(prefix),
    range_end: prefixEnd(prefix),
    ...(revision === undefined ? {} : { revision }),
  });
  return { revision: revisionOf(response.header.revision), kvs: response.kvs };
}

export interface HistoryView {
  /** The revision the view was read at (the header revision when reading latest). */
  readonly revision: number;
  /** Oldest slot first. */
  readonly runs: readonly Versioned<RunRecord>[];
}

/** A job's run records as they stood at `revision` (or now). Undecodable values are skipped. */
export async function readHistory(client: Etcd3, job: string, options: AtRevision = {}): Promise<HistoryView> {
  const { revision, kvs } = await rangePrefix(client, runsPrefix(job), options.revision);
  const runs: Versioned<RunRecord>[] = [];
  for (const kv of kvs) {
    const record = decodeRunRecord(kv.value.toString());
    if (record !== undefined) runs.push(versioned(kv, record));
  }
  return { revision: options.revision ?? revision, runs };
}

export async function readRun(
  client: Etcd3, job: string, slotMs: number, options: AtRevision & { broadcastWorker?: string } = {},
): Promise<Versioned<RunRecord> | undefined> {
  const key = runKey(job, slotMs, options.broadcastWorker);
  const response = await client.kv.range({ key: Buffer.from(key), ...(options.revision === undefined ? {} : { revision: options.revision }) });
  const kv = response.kvs[0];
  const record = kv === undefined ? undefined : decodeRunRecord(kv.value.toString());
  return kv === undefined || record === undefined ? undefined : versioned(kv, record);
}

/** Who held a run's lock. `fence` is the lock key's createRevision. */
export interface LockOwnership {
  readonly key: string;
  readonly job: string;
  readonly slot: string;
  readonly runId: string;
  readonly worker: string;
  readonly leaseId: string;
  readonly fence: number;
  readonly modRevision: number;
  /** Seconds left on the lease; only when reading the current revision. -1: the lease has expired. */
  readonly ttlSecondsLeft?: number;
}

export interface LocksView {
  readonly revision: number;
  readonly locks: readonly LockOwnership[];
}

/** Every lock (or one job's) at `revision` or now; TTLs are looked up only for the current revision. */
export async function readLocks(client: Etcd3, options: AtRevision & { job?: string } = {}): Promise<LocksView> {
  const prefix = options.job === undefined ? LOCKS_PREFIX : locksPrefix(options.job);
  const { revision, kvs } = await rangePrefix(client, prefix, options.revision);
  const ttls = new Map<string, number>();
  if (options.revision === undefined) {
    const leases = [...new Set(kvs.map((kv) => kv.lease))].filter((id) => id !== '0');
    await Promise.all(leases.map(async (id) => {
      const response = await client.leaseClient.leaseTimeToLive({ ID: id });
      ttls.set(id, Number(response.TTL));
    }));
  }
  const locks: LockOwnership[] = [];
  for (const kv of kvs) {
    const value = decodeLockValue(kv.value.toString());
    if (value === undefined) continue;
    const ttl = ttls.get(kv.lease);
    locks.push({
      key: kv.key.toString(), job: value.job, slot: value.slot, runId: value.runId, worker: value.worker,
      leaseId: kv.lease, fence: revisionOf(kv.create_revision), modRevision: revisionOf(kv.mod_revision),
      ...(ttl === undefined ? {} : { ttlSecondsLeft: ttl }),
    });
  }
  return { revision: options.revision ?? revision, locks };
}

export async function readWorkers(client: Etcd3, options: AtRevision = {}): Promise<{ revision: number; workers: Versioned<WorkerInfo>[] }> {
  const { revision, kvs } = await rangePrefix(client, WORKERS_PREFIX, options.revision);
  const workers: Versioned<WorkerInfo>[] = [];
  for (const kv of kvs) {
    const info = decodeWorkerInfo(kv.value.toString());
    if (info !== undefined) workers.push(versioned(kv, info));
  }
  return { revision: options.revision ?? revision, workers };
}

/**
 * One change of a job's locks. `released` causes:
 *   finished      the owner's finish txn deleted it (the run record changed at the same revision)
 *   lease-expired the owner's lease expired or was revoked (no run record write at that revision)
 */
export interface LockTimelineEvent {
  readonly type: 'acquired' | 'released';
  readonly revision: number;
  readonly key: string;
  readonly slot: string;
  readonly worker: string;
  readonly runId: string;
  readonly leaseId: string;
  readonly fence: number;
  readonly cause?: 'finished' | 'lease-expired';
}

export interface LockTimeline {
  readonly fromRevision: number;
  readonly toRevision: number;
  readonly events: readonly LockTimelineEvent[];
  /** True when eventsMax was reached before toRevision. */
  readonly truncated: boolean;
}

export interface TimelineOptions {
  /** First revision to include; default 1 (the whole uncompacted history). */
  readonly fromRevision?: number;
  /** Last revision to include; default the current revision. */
  readonly toRevision?: number;
  readonly eventsMax?: number;
  /** How long the replay may run in total. */
  readonly timeoutMs?: number;
  /** Once the replay has been quiet this long it is complete (see below). */
  readonly idleMs?: number;
}

/**
 * A job's lock acquisitions and releases, replayed from the store's MVCC history with a watch
 * from `fromRevision`. etcd 3.4 has no reliable "caught up" marker for a watch (its progress
 * request answers before an unsynced watcher has caught up), so the replay ends at the first event
 * past `toRevision`, or when the stream has been quiet for `idleMs` after catching up; etcd sends
 * a catching-up watcher its backlog in batches every 100 ms, so the default of 500 ms is ample.
 */
export async function readLockTimeline(client: Etcd3, job: string, options: TimelineOptions = {}): Promise<LockTimeline> {
  const toRevision = options.toRevision ?? revisionOf((await client.kv.range({ key: Buffer.from(locksPrefix(job)) })).header.revision);
  const fromRevision = options.fromRevision ?? 1;
  const eventsMax = options.eventsMax ?? 10_000;
  const raw = await replayLockEvents(client, job, fromRevision, toRevision, eventsMax, options.timeoutMs ?? 10_000, options.idleMs ?? 500);
  const events: LockTimelineEvent[] = [];
  for (const { type, revision, kv } of raw.events) {
    const value: LockValue | undefined = decodeLockValue(kv.value.toString());
    if (value === undefined) continue;
    const base = {
      revision, key: kv.key.toString(), slot: value.slot, worker: value.worker, runId: value.runId,
      leaseId: kv.lease, fence: revisionOf(kv.create_revision),
    };
    if (type === 'acquired') {
      events.push({ type, ...base });
      continue;
    }
    const parsed = parseRunKey(base.key);
    const run = parsed === undefined ? undefined : await readRun(client, job, parsed.slotMs, {
      revision, ...(parsed.broadcastWorker === undefined ? {} : { broadcastWorker: parsed.broadcastWorker }),
    }).catch(() => undefined);
    events.push({ type, ...base, cause: run?.modRevision === revision ? 'finished' : 'lease-expired' });
  }
  return { fromRevision, toRevision, events, truncated: raw.truncated };
}

interface RawLockEvent {
  readonly type: 'acquired' | 'released';
  readonly revision: number;
  /** For a release, the key as it was just before the delete. */
  readonly kv: IKeyValue;
}

async function replayLockEvents(
  client: Etcd3, job: string, fromRevision: number, toRevision: number, eventsMax: number, timeoutMs: number, idleMs: number,
): Promise<{ events: RawLockEvent[]; truncated: boolean }> {
  const events: RawLockEvent[] = [];
  const watcher = await client.watch().prefix(locksPrefix(job)).startRevision(String(fromRevision)).withPreviousKV().create();
  try {
    return await new Promise((resolve, reject) => {
      let idle: NodeJS.Timeout | undefined;
      const finish = (truncated: boolean): void => {
        clearTimeout(idle);
        clearTimeout(overall);
        resolve({ events, truncated });
      };
      const overall = setTimeout(() => finish(true), timeoutMs);
      const armIdle = (): void => {
        clearTimeout(idle);
        idle = setTimeout(() => finish(false), idleMs);
      };
      armIdle();
      watcher.on('error', (err) => {
        clearTimeout(idle);
        clearTimeout(overall);
        reject(new SchedulerStoreError('compacted', `cannot replay lock history from revision ${fromRevision}: ${err.message}`, err));
      });
      watcher.on('data', (response) => {
        for (const event of response.events) {
          const revision = revisionOf(event.kv.mod_revision);
          if (revision > toRevision) return finish(false);
          if (event.type === 'Put' && event.kv.version === '1') events.push({ type: 'acquired', revision, kv: event.kv });
          if (event.type === 'Delete' && event.prev_kv !== undefined && event.prev_kv !== null) {
            events.push({ type: 'released', revision, kv: event.prev_kv });
          }
          if (events.length >= eventsMax) return finish(true);
        }
        armIdle();
      });
    });
  } finally {
    await watcher.cancel().catch(() => undefined);
  }
}
