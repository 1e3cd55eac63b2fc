import type { Etcd3, IKeyValue } from 'etcd3';
import { systemClock, type Clock, type Timer } from '../../shared/clock.js';
import { createLogger, type Logger } from '../../shared/log.js';
import { HOUSEKEEPING_WATERMARK_KEY, JOBS_PREFIX, WORKERS_PREFIX } from '../../shared/keys.js';
import { decodeWorkerInfo } from '../../shared/history/records.js';
import { WorkerMembership } from './worker-membership.js';
import { deserializeJobSpec } from '../../shared/job/parse.js';
import { compileSchedule, type CompiledSchedule } from '../../shared/job/schedule.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { openPrefixCache, type PrefixCache } from '../../shared/etcd/prefix-cache.js';
import { startReaper, type Reaper } from './reaper.js';
import { notStartedRecord, resumeCheckedUntil, slotsPastDeadline } from './missed.js';
import { creationCursorMs } from '../../shared/job/creation.js';
import { readRanges } from './batched-ranges.js';
import { recordNotStarted } from '../../shared/history/write.js';
import { prefixEnd, runKey, runsPrefix } from '../../shared/keys.js';
import { trimHistory } from './trim.js';
import { trimOrphans } from './orphans.js';
import { memoNextSlot, stableHash } from '../planner/slots.js';
import { observePass } from './pass-metrics.js';

export interface HousekeepingOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** How often missed slots are recorded. Default 1 s. */
  readonly intervalMs?: number;
  /** How often history is trimmed. Default 10 s. */
  readonly trimIntervalMs?: number;
  /** How often run records of deleted jobs are looked for (and the old final ones deleted). Default 10 min. */
  readonly orphanSweepIntervalMs?: number;
}

export interface HousekeepingStats {
  readonly lost: number;
  readonly missed: number;
  readonly trimmed: number;
  readonly passes: number;
}

/** What `etcron status` shows of the leader's housekeeping. */
export interface HousekeepingHealth {
  /** starting: first start not done; running: passes run; retrying: the last start failed. */
  readonly state: 'starting' | 'running' | 'retrying';
  readonly startAttempts: number;
  readonly lastError: string | null;
  readonly lastPassAtMs: number | null;
  readonly lastPassMs: number | null;
  /** Passes in a row whose missed-slot step failed (0 when the last one worked). */
  readonly failingPasses: number;
}

export interface HousekeepingHandle {
  stats(): HousekeepingStats;
  health(): HousekeepingHealth;
  stop(): Promise<void>;
}

interface Watermark {
  readonly checkedUntilMs: number;
  readonly revision: number;
}

function decodeWatermark(text: string | null): Watermark | undefined {
  if (text === null) return undefined;
  try {
    const value = JSON.parse(text) as Partial<Watermark>;
    const isValid = Number.isSafeInteger(value.checkedUntilMs) && Number.isSafeInteger(value.revision);
    return isValid ? { checkedUntilMs: value.checkedUntilMs as number, revision: value.revision as number } : undefined;
  } catch {
    return undefined;
  }
}

/** Backoff between failed starts: from 250 ms, doubling, at most 10 s. */
const START_RETRY_MS_MIN = 250;
const START_RETRY_MS_MAX = 10_000;

interface JobState {
  spec: JobSpec;
  /** The job key's create_revision: whether the job existed when a watermark was written. */
  createRevision: number;
  schedule: CompiledSchedule;
  /** Memoized: every pass asks for the slot after the same checkedUntil until that slot's deadline. */
  nextSlot: (afterMs: number) => number | null;
  checkedUntilMs?: number;
  /** Unset until the job's first pass, which places it in the trim cycle. */
  lastTrimMs?: number;
}

/**
 * Run by the elected master leader; stop it when leadership is lost. Everything it writes is
 * guarded by a compare, so two housekeepers overlapping during a leader change do no harm.
 */
export function startHousekeeping(client: Etcd3, options: HousekeepingOptions = {}): HousekeepingHandle {
  const clock = options.clock ?? systemClock;
  const logger = (options.logger ?? createLogger('info')).child({ component: 'housekeeping' });
  const intervalMs = options.intervalMs ?? 1_000;
  const trimIntervalMs = options.trimIntervalMs ?? 10_000;
  const orphanSweepIntervalMs = options.orphanSweepIntervalMs ?? 10 * 60_000;
  let lastOrphanSweepMs: number | undefined;
  const jobs = new Map<string, JobState>();
  const counters = { missed: 0, trimmed: 0, passes: 0 };
  let reaper: Reaper | undefined;
  let cache: PrefixCache | undefined;
  let workersCache: PrefixCache | undefined;
  let membership = new WorkerMembership();
  let isLoadingWorkers = true;
  let isLoadingJobs = true;
  let timer: Timer | undefined;
  let stopped = false;
  let health: HousekeepingHealth = {
    state: 'starting', startAttempts: 0, lastError: null, lastPassAtMs: null, lastPassMs: null, failingPasses: 0,
  };
  const describe = (err: unknown): string => (err instanceof Error ? err.message : String(err));

  const onJobPut = (key: string, kv: IKeyValue): void => {
    const parsed = deserializeJobSpec(kv.value.toString());
    if (!parsed.ok) return;
    const compiled = compileSchedule(parsed.spec.schedule, parsed.spec.timezone);
    if (!compiled.ok) return;
    const name = key.slice(JOBS_PREFIX.length);
    const existing = jobs.get(name);
    // A job created while this housekeeper runs has no slots before now: run records left by an
    // earlier job of the same name must not make it look back (and record days of missed slots).
    // It starts from its creation stamp, not from when this watch saw it: a slot in between that
    // no worker started (none may run the job, say) still gets its record.
    const isCreatedNow = !isLoadingJobs && existing === undefined && Number(kv.version) === 1;
    const nowMs = clock.nowMs();
    jobs.set(name, {
      spec: parsed.spec, createRevision: Number(kv.create_revision),
      ...(isCreatedNow ? { checkedUntilMs: Math.max(creationCursorMs(parsed.spec, nowMs) ?? nowMs, nowMs - parsed.spec.history.ageMs) } : {}),
      schedule: compiled.schedule, nextSlot: memoNextSlot(compiled.schedule),
      ...(existing?.lastTrimMs === undefined ? {} : { lastTrimMs: existing.lastTrimMs }),
      ...(existing?.checkedUntilMs === undefined ? {} : { checkedUntilMs: existing.checkedUntilMs }),
    });
  };

  /**
   * Trimming costs two reads per job, so with many jobs it runs less often per job: at most
   * TRIMS_PER_SECOND_MAX jobs a second (10,000 jobs: each every 50 s). History may then exceed
   * its count limit by the slots of one interval until the next trim.
   */
  const TRIMS_PER_SECOND_MAX = 200;
  const TRIMS_PER_PASS_MAX = 200;
  /** Writes (or trims) in flight at once: each is independent and compare-guarded. */
  const JOBS_CONCURRENT_MAX = 8;
  const effectiveTrimIntervalMs = (): number => Math.max(trimIntervalMs, (jobs.size / TRIMS_PER_SECOND_MAX) * 1000);

  /**
   * A new housekeeper resumes each job after its newest recorded slot: batched keys-only reads of
   * each job's run keys (at most about history.countMax each), the last key naming the slot. A
   * sorted read with limit 1 was ten times slower on the bundled store.
   */
  const startJobs = async (fresh: readonly JobState[], nowMs: number): Promise<void> => {
    const keys = await readRanges(client, fresh.map((job) => {
      const prefix = runsPrefix(job.spec.name);
      return { key: Buffer.from(prefix), rangeEnd: prefixEnd(prefix), keysOnly: true };
    }));
    fresh.forEach((job, index) => {
      const found = keys[index] ?? [];
      const covered = watermark !== undefined && job.createRevision <= watermark.revision ? watermark : undefined;
      job.checkedUntilMs = resumeCheckedUntil(job.spec, found[found.length - 1], covered?.checkedUntilMs, nowMs);
    });
  };

  /** Read once at start; written after each pass whose missed-slot step succeeded. */
  let watermark: Watermark | undefined;
  let writtenWatermarkMs = 0;
  const saveWatermark = async (revision: number): Promise<void> => {
    let lowest = Number.POSITIVE_INFINITY;
    for (const job of jobs.values()) lowest = Math.min(lowest, job.checkedUntilMs ?? Number.NEGATIVE_INFINITY);
    if (!Number.isFinite(lowest) || lowest <= writtenWatermarkMs) return;
    await client.put(HOUSEKEEPING_WATERMARK_KEY).value(JSON.stringify({ checkedUntilMs: lowest, revision }));
    writtenWatermarkMs = lowest;
  };

  /**
   * Slots past their deadline without a record get `missed` (or `skipped`): one batched read of the
   * run keys of every job that has such slots, then a create_revision == 0 write per absent run.
   * Broadcast slots are expected once per worker registered at the slot's instant.
   */
  const recordMissed = async (nowMs: number): Promise<void> => {
    const checks: { job: JobState; slots: number[] }[] = [];
    for (const job of jobs.values()) {
      if (job.checkedUntilMs === undefined) continue;
      const slots = slotsPastDeadline(job.spec, job.checkedUntilMs, nowMs, job.nextSlot);
      if (slots.length > 0) checks.push({ job, slots });
    }
    const found = await readRanges(client, checks.map(({ job, slots }) => ({
      // prefixEnd of the last slot's key also covers its broadcast `~<worker>` keys.
      key: Buffer.from(runKey(job.spec.name, slots[0]!)), rangeEnd: prefixEnd(runKey(job.spec.name, slots[slots.length - 1]!)), keysOnly: true,
    })));
    // Per job: its absent runs, then its checkedUntil, which advances only once they are written.
    const tasks = checks.map(({ job, slots }, index) => async (): Promise<void> => {
      const present = new Set((found[index] ?? []).map((kv) => kv.key.toString()));
      const spec = job.spec;
      for (const slotMs of slots) {
        const expected = spec.broadcast ? membership.registeredAt(slotMs, spec.tags) : [undefined];
        for (const worker of expected) {
          const key = runKey(spec.name, slotMs, worker);
          if (present.has(key)) continue;
          if (await recordNotStarted(client, key, notStartedRecord(spec, slotMs, nowMs, worker))) counters.missed++;
        }
      }
      job.checkedUntilMs = Math.max(job.checkedUntilMs ?? 0, ...slots);
    });
    for (let i = 0; i < tasks.length && !stopped; i += JOBS_CONCURRENT_MAX) {
      await Promise.all(tasks.slice(i, i + JOBS_CONCURRENT_MAX).map((task) => task().catch((err: unknown) => {
        logger.warn({ err }, 'recording missed slots failed');
      })));
    }
  };

  const isTrimDue = (job: JobState, nowMs: number): boolean => {
    const trimEveryMs = effectiveTrimIntervalMs();
    // Spread jobs over the interval (stable per job) instead of trimming all of them in one pass.
    job.lastTrimMs ??= nowMs - (stableHash(job.spec.name) % trimEveryMs);
    return nowMs - job.lastTrimMs >= trimEveryMs;
  };

  const trimJob = async (job: JobState, nowMs: number): Promise<void> => {
    job.lastTrimMs = nowMs;
    counters.trimmed += await trimHistory(client, job.spec, nowMs);
  };

  /** Resolves false when the missed-slot part failed (etcron_housekeeping_passes_total). */
  const pass = async (): Promise<boolean> => {
    counters.passes++;
    let isOk = true;
    const nowMs = clock.nowMs();
    // Every job that existed at this revision is in `jobs` now.
    const jobsRevision = cache?.revision() ?? 0;
    try {
      const fresh = [...jobs.values()].filter((job) => job.checkedUntilMs === undefined);
      if (fresh.length > 0) await startJobs(fresh, nowMs);
      await recordMissed(nowMs);
      await saveWatermark(jobsRevision);
      health = { ...health, failingPasses: 0 };
    } catch (err) {
      // Nothing advanced past what was recorded: the next pass looks at the same slots again.
      logger.warn({ err }, 'missed-slot pass failed');
      health = { ...health, failingPasses: health.failingPasses + 1, lastError: describe(err) };
      isOk = false;
    }
    // A bounded number per pass, so a slow pass does not make the next one slower still; the jobs
    // left over are due first next time (their lastTrimMs is older).
    const due = [...jobs.values()].filter((job) => isTrimDue(job, nowMs)).slice(0, TRIMS_PER_PASS_MAX);
    for (let i = 0; i < due.length && !stopped; i += JOBS_CONCURRENT_MAX) {
      await Promise.all(due.slice(i, i + JOBS_CONCURRENT_MAX).map((job) => trimJob(job, nowMs).catch((err: unknown) => {
        logger.warn({ err, job: job.spec.name }, 'history trim failed');
      })));
    }
    // The first sweep waits one interval: a new leader has enough to do at first.
    lastOrphanSweepMs ??= nowMs;
    if (!stopped && nowMs - lastOrphanSweepMs >= orphanSweepIntervalMs) {
      lastOrphanSweepMs = nowMs;
      counters.trimmed += await trimOrphans(client, (name) => jobs.has(name), nowMs).catch((err: unknown) => {
        logger.warn({ err }, 'orphaned history sweep failed');
        return 0;
      });
    }
    return isOk;
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = clock.setTimer(intervalMs, () => {
      const passStartedMs = clock.nowMs();
      void observePass(pass).finally(() => {
        health = { ...health, lastPassAtMs: clock.nowMs(), lastPassMs: clock.nowMs() - passStartedMs };
        schedule();
      });
    });
  };

  /** Undoes a start that failed part-way, so the next attempt opens everything afresh. */
  const closeAll = async (): Promise<void> => {
    await reaper?.stop();
    await cache?.close();
    await workersCache?.close();
    reaper = undefined;
    cache = undefined;
    workersCache = undefined;
    jobs.clear();
    membership = new WorkerMembership();
  };
  let wakeRetry: (() => void) | undefined;

  /**
   * Opens the caches and the reaper, then schedules passes. A failed start (the store briefly
   * away at election, an answer too large, a lost connection) is retried with backoff for as
   * long as this master leads: housekeeping that stopped for good would leave lost runs
   * unreaped and missed slots unrecorded while the master still said it led.
   */
  const started = (async () => {
    let retryMs = START_RETRY_MS_MIN;
    while (!stopped) {
      health = { ...health, startAttempts: health.startAttempts + 1 };
      try {
        await startOnce();
        return;
      } catch (err) {
        logger.error({ err, retryMs }, 'housekeeping failed to start; retrying');
        health = { ...health, state: 'retrying', lastError: describe(err) };
        await closeAll().catch((closeErr: unknown) => logger.warn({ err: closeErr }, 'closing after a failed start'));
        if (stopped) return;
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          timer = clock.setTimer(retryMs, resolve);
        });
        retryMs = Math.min(retryMs * 2, START_RETRY_MS_MAX);
      }
    }
  })();

  async function startOnce(): Promise<void> {
    isLoadingWorkers = true;
    // Who is registered, before any pass: broadcast slots are accounted per registered worker.
    workersCache = await openPrefixCache(client, WORKERS_PREFIX, {
      put: (_key, kv) => {
        const info = decodeWorkerInfo(kv.value.toString());
        if (info !== undefined) membership.onPut(info, clock.nowMs(), isLoadingWorkers);
      },
      delete: (key) => membership.onDelete(key.slice(WORKERS_PREFIX.length), clock.nowMs()),
    }, logger);
    isLoadingWorkers = false;
    // Jobs first: the reaper's start-up sweep needs their retry policies.
    isLoadingJobs = true;
    cache = await openPrefixCache(client, JOBS_PREFIX, {
      put: onJobPut,
      delete: (key) => { jobs.delete(key.slice(JOBS_PREFIX.length)); },
    }, logger);
    isLoadingJobs = false;
    reaper = await startReaper(client, clock, logger, (job) => jobs.get(job)?.spec);
    watermark = decodeWatermark(await client.get(HOUSEKEEPING_WATERMARK_KEY).string());
    if (stopped) return;
    health = { ...health, state: 'running' };
    schedule();
    logger.info('housekeeping started');
  }

  return {
    stats: () => ({ ...counters, lost: reaper?.reaped() ?? 0 }),
    health: () => health,
    stop: async () => {
      stopped = true;
      timer?.cancel();
      wakeRetry?.();
      await started;
      await reaper?.stop();
      await cache?.close();
      await workersCache?.close();
    },
  };
}
