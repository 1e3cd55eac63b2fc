import { hostname } from 'node:os';
import type { Etcd3, IKeyValue } from 'etcd3';
import { systemClock, type Clock, type Timer } from '../shared/clock.js';
import { createLogger, type Logger } from '../shared/log.js';
import { checkSchedulerAccess } from '../shared/etcd/access-check.js';
import { createEtcdClient, resolveCredentials } from '../shared/etcd/client.js';
import {
  JOBS_PREFIX, LOCKS_PREFIX, RETRIES_PREFIX, RUN_NOW_PREFIX, WORKERS_PREFIX, lockKey, slotId, validateWorkerId, workerKey,
} from '../shared/keys.js';
import { deserializeJobSpec } from '../shared/job/parse.js';
import { creationCursorMs } from '../shared/job/creation.js';
import { compileSchedule, type CompiledSchedule } from '../shared/job/schedule.js';
import type { JobSpec } from '../shared/job/spec.js';
import { decodeLockValue, decodeRetryRequest, decodeWorkerInfo, encodeRecord, type RetryRequest, type WorkerInfo } from '../shared/history/records.js';
import { revisionOf } from '../shared/etcd/txn.js';
import { jitterOffsetMs, memoNextSlot } from '../master/planner/slots.js';
import { ON_TIME_GRACE_MS, planDueSlots, startDeadlineMs, type DueSlot } from '../master/planner/catch-up.js';
import { openSession, type Session } from './session.js';
import { startRunGuard, type RunGuard } from './executor/run-guard.js';
import { openPrefixCache, type PrefixCache } from '../shared/etcd/prefix-cache.js';
import { preferredWorker } from './preferred.js';
import { WORKER_DEFAULTS, WORKER_LIMITS, type WorkerOptions } from './options.js';
import { RunManager, isProcessJob } from './run-manager.js';
import { ClaimQueue } from './claim-queue.js';
import { DeadlineHeap } from '../shared/deadline-heap.js';
import { assert } from '../shared/assert.js';

export interface WorkerStats {
  /** Claim txns sent (each a store write through raft). */
  readonly claimTxns: number;
  readonly claimsWon: number;
  /** Reads done by a non-preferred worker before a takeover attempt, and how many found the slot unclaimed. */
  readonly takeoverReads: number;
  readonly takeovers: number;
  readonly runsStarted: number;
  /** Finish reports refused by the fence compare (the lock was no longer ours). */
  readonly reportsRejected: number;
  readonly leaseLosses: number;
  /** Fenced writes after a claim (running, output tail, finish), attempts included. */
  readonly progressWrites: number;
  /** Planning passes that left a due slot waiting (takeover delay, or claims in flight at the bound). */
  readonly slotsDeferred: number;
  /** Due slots this worker found past their start deadline and left to housekeeping. */
  readonly slotsTooLate: number;
  /** Claims won but answered after this worker's lease was lost, so not started. */
  readonly claimsAfterLeaseLoss: number;
  /** Claim txn round trips: their sum and maximum in ms, and how many. */
  readonly claimMsSum: number;
  readonly claimMsMax: number;
  readonly claimsTimed: number;
  /** Claims and fenced writes sent through shared txns; the txns, the items they carried, and those that failed. */
  readonly batchSubmitted: number;
  readonly batchTxns: number;
  readonly batchItems: number;
  readonly batchesFailed: number;
}

export interface WorkerHandle {
  readonly id: string;
  stats(): WorkerStats;
  stop(): Promise<void>;
}

interface JobState {
  spec: JobSpec;
  schedule: CompiledSchedule;
  /** Every slot at or before this instant has been handled (claimed, delegated or left to housekeeping). */
  cursorMs: number;
  /** Slots starting from here came due while this worker had the job: late ones are load, not downtime. */
  readonly inViewSinceMs: number;
  /** nextSlotMs over this schedule, memoized: most ticks ask about the same cursors, and croner is not free. */
  nextSlot: (afterMs: number) => number | null;
  /** When to plan the job next: the first slot not yet due comes into the claim horizon then. */
  nextPlanMs?: number;
}

/** A slot waiting for room among the claims in flight. */
interface WaitingClaim {
  readonly name: string;
  readonly slot: DueSlot;
  readonly startMs: number;
  readonly catchUp: boolean;
  /** A slot of the job's schedule (not a manual run): dropped if the job no longer has it. */
  readonly scheduled: boolean;
  readonly triggeredBy?: string;
}

/** A retry due under /cron/retry/, as this worker sees it. */
interface PendingRetry {
  readonly key: string;
  readonly request: RetryRequest;
  readonly slotMs: number;
  /** The key's modRevision, equal to the run record's when it was written: the claim's compare. */
  readonly modRevision: number;
  /** A claim (or takeover read) is under way or done; reset if it failed for another reason than a rival. */
  isLaunched: boolean;
}

const TICK_MS = 50;
/** A slot's preferred worker that is still claiming is taken over only this many takeover delays after the slot. */
const LATE_TAKEOVER_FACTOR = 3;
/** A slot waiting this long past its start for a claim slot yields to on-time ones (ClaimQueue). */
const CLAIM_LATE_AFTER_MS = 1_000;
/** Lock keys remembered as seen claimed: a few minutes of slots at 1,000 starts/s. */
const CLAIMS_SEEN_MAX = 200_000;
/** Run-now request keys remembered as handled; requests expire with their lease (60 s) anyway. */
const RUN_NOW_REMEMBERED_MAX = 10_000;
const SESSION_RETRY_MS = 500;

export async function startWorker(options: WorkerOptions = {}): Promise<WorkerHandle> {
  const worker = new Worker(options);
  try {
    await worker.start();
  } catch (err) {
    worker.abandon();
    throw err;
  }
  return { id: worker.id, stats: () => worker.stats(), stop: () => worker.stop() };
}

class Worker {
  readonly id: string;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly client: Etcd3;
  /** The lease's grant, keep-alives and revoke, on a connection of their own (EtcdClientOptions.ownConnection). */
  private readonly sessionClient: Etcd3;
  /** The store user this worker connects as, named in permission errors. */
  private readonly storeUser: string | undefined;
  private readonly tags: readonly string[];
  private readonly leaseTtlSeconds: number;
  private readonly takeoverDelayMs: number;
  private readonly claimAheadMs: number;
  private readonly jobs = new Map<string, JobState>();
  private readonly liveWorkers = new Map<string, WorkerInfo>();
  /** candidatesFor's answers by a job's tags, cleared whenever liveWorkers changes. */
  private readonly candidatesByTags = new Map<string, readonly string[]>();
  private readonly caches: PrefixCache[] = [];
  private readonly runs: RunManager;
  private readonly guard: RunGuard;
  private session: Session | undefined;
  /** When the current session began: slots due while the worker had none are downtime (catch-up rules). */
  private sessionSinceMs = Number.POSITIVE_INFINITY;
  private tickTimer: Timer | undefined;
  /** When each job is next planned, by name; entries that no longer match the job are skipped. */
  private readonly planQueue = new DeadlineHeap<string>();
  private stopping = false;
  private readonly runNowHandled = new Set<string>();
  private readonly retries = new Map<string, PendingRetry>();
  /** Slots waiting for room among the claims in flight; process jobs apart (their own bound). */
  private readonly waitingClaims = new ClaimQueue<WaitingClaim>(CLAIM_LATE_AFTER_MS);
  private readonly waitingProcessClaims = new ClaimQueue<WaitingClaim>(CLAIM_LATE_AFTER_MS);
  /**
   * Slots of other workers waiting for their takeover instant, by lock key: cancelled when the
   * slot's lock shows up on the watch (claimed; nothing left to decide), and on stop. With a 1 s
   * takeover delay the timers of the slots not cancelled so would all fire at the next second's
   * start instant, in the middle of its burst of starts.
   */
  private readonly takeoverTimers = new Map<string, Timer>();
  /**
   * Lock keys this worker saw created (its /cron/lock/ watch), oldest first. A slot whose lock
   * appeared was claimed, and its run record can never be reopened, so a non-preferred worker
   * skips its takeover read: that read was 2 of the 5 store requests per start (issue 5 bench).
   */
  private readonly claimsSeen = new Set<string>();
  /** When each worker's latest claim (a lock it created) was seen: a worker still claiming is alive. */
  private readonly lastClaimSeenMs = new Map<string, number>();
  /** False during the initial read of /cron/jobs/, true once the watch delivers changes. */
  private jobsLoaded = false;
  private readonly counters = {
    claimTxns: 0, claimsWon: 0, takeoverReads: 0, takeovers: 0, leaseLosses: 0, slotsDeferred: 0, slotsTooLate: 0,
  };

  constructor(options: WorkerOptions) {
    this.id = options.id ?? `${hostname()}-${process.pid}`;
    const check = validateWorkerId(this.id);
    if (!check.ok) throw new Error(check.reason);
    this.clock = options.clock ?? systemClock;
    this.logger = (options.logger ?? createLogger('info')).child({ component: 'worker', worker: this.id });
    this.client = createEtcdClient(options.client ?? {});
    this.sessionClient = createEtcdClient({ ...options.client, ownConnection: true });
    this.storeUser = options.client?.credentials?.user ?? resolveCredentials(undefined, undefined, options.client?.env)?.user;
    this.tags = [...(options.tags ?? [])];
    this.leaseTtlSeconds = options.leaseTtlSeconds ?? WORKER_DEFAULTS.leaseTtlSeconds;
    assert(this.leaseTtlSeconds >= WORKER_LIMITS.leaseTtlSecondsMin && this.leaseTtlSeconds <= WORKER_LIMITS.leaseTtlSecondsMax,
      `leaseTtlSeconds must be within [${WORKER_LIMITS.leaseTtlSecondsMin}, ${WORKER_LIMITS.leaseTtlSecondsMax}]`);
    this.takeoverDelayMs = options.takeoverDelayMs ?? WORKER_DEFAULTS.takeoverDelayMs;
    this.claimAheadMs = options.claimAheadMs ?? WORKER_DEFAULTS.claimAheadMs;
    assert(this.claimAheadMs >= 0 && this.claimAheadMs <= WORKER_LIMITS.claimAheadMsMax,
      `claimAheadMs must be within [0, ${WORKER_LIMITS.claimAheadMsMax}]`);
    this.guard = startRunGuard(this.logger);
    this.runs = new RunManager(this.client, this.id, this.clock, this.logger, options.benchNoopExecutor ?? false, this.guard, () => this.session);
  }

  stats(): WorkerStats {
    return { ...this.counters, ...this.runs.stats() };
  }

  async start(): Promise<void> {
    await checkSchedulerAccess(this.client, this.storeUser);
    await this.openSession();
    this.caches.push(await openPrefixCache(this.client, WORKERS_PREFIX, {
      put: (key, kv) => this.onWorkerPut(key, kv),
      delete: (key) => {
        this.liveWorkers.delete(key.slice(WORKERS_PREFIX.length));
        this.candidatesByTags.clear();
      },
    }, this.logger));
    this.caches.push(await openPrefixCache(this.client, JOBS_PREFIX, {
      put: (key, kv) => this.onJobPut(key, kv),
      delete: (key) => { this.jobs.delete(key.slice(JOBS_PREFIX.length)); },
    }, this.logger));
    this.jobsLoaded = true;
    // Lock deletes we did not make ourselves mean: job kill, Replace overlap, or our lease expired.
    this.caches.push(await openPrefixCache(this.client, LOCKS_PREFIX, {
      put: (key, kv) => this.onLockPut(key, kv),
      delete: (key) => this.runs.onLockDeleted(key, this.session?.isAlive() ?? false),
    }, this.logger));
    this.caches.push(await openPrefixCache(this.client, RETRIES_PREFIX, {
      put: (key, kv) => this.onRetryPut(key, kv),
      delete: (key) => { this.retries.delete(key); },
    }, this.logger));
    this.caches.push(await openPrefixCache(this.client, RUN_NOW_PREFIX, {
      put: (key, kv) => this.onRunNow(key, kv),
      delete: () => {},
    }, this.logger));
    this.scheduleTick();
    this.logger.info({ tags: this.tags, leaseTtlSeconds: this.leaseTtlSeconds }, 'worker started');
  }

  /** After a failed start: nothing runs yet; what was opened is let go. */
  abandon(): void {
    this.stopping = true;
    this.tickTimer?.cancel();
    this.cancelWaiting();
    for (const cache of this.caches) void Promise.resolve(cache.close()).catch(() => undefined);
    void this.session?.close().finally(() => {
      this.client.close();
      this.sessionClient.close();
    });
    if (this.session === undefined) {
      this.client.close();
      this.sessionClient.close();
    }
    this.guard.close();
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.tickTimer?.cancel();
    this.cancelWaiting();
    await this.runs.stopAll('shutdown');
    await Promise.all(this.caches.map((c) => c.close()));
    await this.session?.close();
    this.client.close();
    this.sessionClient.close();
    this.guard.close();
    this.logger.info('worker stopped');
  }

  /** Slots not claimed yet are let go: the other workers take them over. */
  private cancelWaiting(): void {
    for (const timer of this.takeoverTimers.values()) timer.cancel();
    this.takeoverTimers.clear();
    this.waitingClaims.clear();
    this.waitingProcessClaims.clear();
  }

  private async openSession(): Promise<void> {
    const session = await openSession(this.sessionClient, this.leaseTtlSeconds, this.clock, this.logger);
    const info: WorkerInfo = {
      id: this.id, tags: this.tags, hostname: hostname(), pid: process.pid, startedAtMs: this.clock.nowMs(),
      leaseId: session.leaseId, leaseTtlSeconds: session.ttlSeconds,
    };
    try {
      await this.client.kv.put({ key: Buffer.from(workerKey(this.id)), value: Buffer.from(encodeRecord(info)), lease: session.leaseId });
    } catch (err) {
      // Not registered, so not usable: give the lease back instead of renewing it for ever.
      await session.close();
      throw err;
    }
    this.guard.setDeadline(session.remainingMs());
    session.onRenewed((remainingMs) => this.guard.setDeadline(remainingMs));
    session.onLost((cause) => {
      if (cause === 'closed') return;
      this.counters.leaseLosses++;
      // Every lock bound to the lease may belong to someone else now: kill at once, never report success.
      void this.runs.stopAll('lease-lost');
      if (!this.stopping) this.reopenSession();
    });
    this.session = session;
    this.sessionSinceMs = this.clock.nowMs();
  }

  private reopenSession(): void {
    this.session = undefined;
    const attempt = (): void => {
      if (this.stopping) return;
      this.openSession().catch((err: unknown) => {
        this.logger.warn({ err }, 'could not open a new session; retrying');
        this.clock.setTimer(SESSION_RETRY_MS, attempt);
      });
    };
    attempt();
  }

  private onWorkerPut(key: string, kv: IKeyValue): void {
    const info = decodeWorkerInfo(kv.value.toString());
    if (info !== undefined) this.liveWorkers.set(key.slice(WORKERS_PREFIX.length), info);
    this.candidatesByTags.clear();
  }

  private onJobPut(key: string, kv: IKeyValue): void {
    const name = key.slice(JOBS_PREFIX.length);
    const parsed = deserializeJobSpec(kv.value.toString());
    if (!parsed.ok || parsed.spec.name !== name) {
      this.logger.warn({ job: name }, 'ignoring invalid job definition');
      this.jobs.delete(name);
      return;
    }
    const compiled = compileSchedule(parsed.spec.schedule, parsed.spec.timezone);
    if (!compiled.ok) return;
    const existing = this.jobs.get(name);
    // Jobs found when the worker starts look back over their catch-up window (slots due while no
    // worker ran), never before their creation stamp; a job created while we watch starts from
    // that stamp (or now): slots before it existed are not its own, and one due while the watch
    // was delivering it is. An edited job keeps its cursor.
    const isCreatedNow = this.jobsLoaded && kv.version === '1';
    const nowMs = this.clock.nowMs();
    const lookbackMs = Math.max(parsed.spec.catchUp.windowMs, ON_TIME_GRACE_MS) + parsed.spec.jitterMs;
    const stampedCursorMs = creationCursorMs(parsed.spec, nowMs);
    const createdCursorMs = stampedCursorMs ?? (isCreatedNow ? nowMs : Number.NEGATIVE_INFINITY);
    // A job that was not for this worker (its tags) was not planned meanwhile: it starts from now.
    const existingCursorMs = existing === undefined || this.isEligible(existing.spec, this.tags)
      ? existing?.cursorMs : Math.max(existing.cursorMs, nowMs);
    const cursorMs = existingCursorMs ?? Math.max(nowMs - lookbackMs, createdCursorMs);
    const inViewSinceMs = existing?.inViewSinceMs ?? (isCreatedNow ? createdCursorMs : nowMs);
    this.jobs.set(name, { spec: parsed.spec, schedule: compiled.schedule, cursorMs, inViewSinceMs, nextSlot: memoNextSlot(compiled.schedule) });
    this.planQueue.push({ atMs: nowMs, id: name });
  }

  private onLockPut(key: string, kv: IKeyValue): void {
    const worker = decodeLockValue(kv.value.toString())?.worker;
    if (worker !== undefined) this.lastClaimSeenMs.set(worker, this.clock.nowMs());
    if (this.claimsSeen.size >= CLAIMS_SEEN_MAX) {
      const oldest = this.claimsSeen.values().next();
      if (oldest.done !== true) this.claimsSeen.delete(oldest.value);
    }
    this.claimsSeen.add(key);
    const takeover = this.takeoverTimers.get(key);
    if (takeover !== undefined) {
      takeover.cancel();
      this.takeoverTimers.delete(key);
    }
  }

  private onRetryPut(key: string, kv: IKeyValue): void {
    const request = decodeRetryRequest(kv.value.toString());
    const slotMs = request === undefined ? Number.NaN : Date.parse(request.slot);
    if (request === undefined || !Number.isFinite(slotMs)) {
      this.logger.warn({ key }, 'ignoring invalid retry request');
      return;
    }
    this.retries.set(key, { key, request, slotMs, modRevision: revisionOf(kv.mod_revision), isLaunched: false });
  }

  /**
   * Retries due on any worker (docs/scheduler.md, "Retries"): the preferred worker among the live
   * eligible ones claims at retryAtMs, the others after the takeover delay. The worker of the
   * attempt that just failed is ranked only if no other is eligible: its environment may be why.
   * Returns the earliest instant a pending retry becomes due, to wake the planner then.
   */
  private planRetries(nowMs: number, session: Session): number {
    let earliestMs = Number.POSITIVE_INFINITY;
    for (const retry of this.retries.values()) {
      const job = this.jobs.get(retry.request.job);
      if (retry.isLaunched || job === undefined || job.spec.paused || job.spec.broadcast || !this.isEligible(job.spec, this.tags)) continue;
      if (this.runs.claimsInFlight() >= WORKER_LIMITS.claimsInFlightMax) break;
      if (isProcessJob(job.spec) && this.runs.processClaimsInFlight() >= WORKER_LIMITS.processClaimsInFlightMax) continue;
      if (nowMs < retry.request.retryAtMs) {
        earliestMs = Math.min(earliestMs, retry.request.retryAtMs);
        continue;
      }
      const candidates = new Set(this.candidatesFor(job.spec));
      const lastWorker = retry.request.previousAttempts[retry.request.previousAttempts.length - 1]?.worker;
      if (lastWorker !== undefined && candidates.size > 1) candidates.delete(lastWorker);
      const preferred = preferredWorker(job.spec.name, `${retry.request.slot}#${retry.request.attempt}`, candidates, job.spec.preferWorkers);
      if (preferred !== this.id && nowMs < retry.request.retryAtMs + this.takeoverDelayMs) continue;
      retry.isLaunched = true;
      void this.claimRetry(job.spec, retry, session, preferred !== this.id);
    }
    return earliestMs;
  }

  private async claimRetry(spec: JobSpec, retry: PendingRetry, session: Session, isTakeover: boolean): Promise<void> {
    if (isTakeover) {
      this.counters.takeoverReads++;
      if (!(await this.runs.isRetryPending(retry.key, retry.modRevision))) return;
      this.counters.takeovers++;
    }
    if (!session.isAlive()) {
      retry.isLaunched = false;
      return;
    }
    this.counters.claimTxns++;
    const request = {
      spec, slotMs: retry.slotMs, session, catchUp: false,
      retry: { key: retry.key, previousAttempts: retry.request.previousAttempts },
    };
    const won = await this.runs.claimAndRun(request, retry.request.attempt, retry.modRevision);
    if (won) {
      this.counters.claimsWon++;
      return;
    }
    // Lost to a rival: its claim deleted the key. Otherwise drop a key whose run record moved on
    // without it (trimmed, edited), or try again after the takeover delay.
    if (await this.runs.dropStaleRetry(retry.key, retry.modRevision, spec.name, retry.slotMs)) return;
    this.clock.setTimer(this.takeoverDelayMs, () => {
      if (this.retries.get(retry.key) === retry) retry.isLaunched = false;
    });
  }

  /** A manual run is a slot at the request instant, claimed like any other (preferred worker first). */
  private onRunNow(key: string, kv: IKeyValue): void {
    if (this.runNowHandled.has(key)) return;
    if (this.runNowHandled.size >= RUN_NOW_REMEMBERED_MAX) this.runNowHandled.clear();
    this.runNowHandled.add(key);
    let request: unknown;
    try {
      request = JSON.parse(kv.value.toString());
    } catch {
      return;
    }
    if (typeof request !== 'object' || request === null) return;
    const fields = request as Record<string, unknown>;
    const job = typeof fields['job'] === 'string' ? this.jobs.get(fields['job']) : undefined;
    const slotMs = typeof fields['slot'] === 'string' ? Date.parse(fields['slot']) : Number.NaN;
    if (job === undefined || !Number.isFinite(slotMs) || !this.isEligible(job.spec, this.tags)) return;
    const slot = { slotMs, startMs: slotMs };
    const triggeredBy = typeof fields['triggeredBy'] === 'string' ? fields['triggeredBy'] : undefined;
    const attempt = (): void => {
      const session = this.session;
      if (this.stopping || session === undefined || !session.isAlive()) return;
      if (this.launch(job, slot, false, this.clock.nowMs(), session, triggeredBy, true) !== true) this.clock.setTimer(this.takeoverDelayMs, attempt);
    };
    attempt();
  }

  /** Ticks every TICK_MS at most, sooner when a slot's start instant comes first (lateness). */
  private scheduleTick(delayMs = TICK_MS): void {
    if (this.stopping) return;
    this.tickTimer = this.clock.setTimer(delayMs, () => {
      let nextDelayMs = TICK_MS;
      try {
        nextDelayMs = this.tick();
      } finally {
        this.scheduleTick(nextDelayMs);
      }
    });
  }

  /** This worker and the live workers eligible for a job (its tags); cached until the live set changes. */
  private candidatesFor(spec: JobSpec): readonly string[] {
    const key = spec.tags.join('\u0000');
    let candidates = this.candidatesByTags.get(key);
    if (candidates === undefined) {
      const eligible = new Set([this.id]);
      for (const [id, info] of this.liveWorkers) if (this.isEligible(spec, info.tags)) eligible.add(id);
      candidates = [...eligible];
      this.candidatesByTags.set(key, candidates);
    }
    return candidates;
  }

  private isEligible(spec: JobSpec, tags: readonly string[]): boolean {
    return spec.tags.every((tag) => tags.includes(tag));
  }

  /**
   * Plans the jobs whose plan instant has come (planQueue); returns the delay until the next tick.
   * Most jobs have nothing due on most ticks, so they are not visited at all (a loop over 10,000
   * jobs 20 times a second was the worker's largest single cost at 1,000 starts/s).
   */
  private tick(): number {
    const session = this.session;
    if (session === undefined || !session.isAlive()) return TICK_MS;
    this.pumpClaims();
    const nowMs = this.clock.nowMs();
    const due: string[] = [];
    for (let top = this.planQueue.peek(); top !== undefined && top.atMs <= nowMs; top = this.planQueue.peek()) {
      this.planQueue.pop();
      due.push(top.id);
    }
    const planned = new Set<string>();
    for (const name of due) {
      const job = this.jobs.get(name);
      // Gone, seen already this tick, or a stale entry: the job's own plan instant is queued.
      if (job === undefined || planned.has(name) || (job.nextPlanMs !== undefined && job.nextPlanMs > nowMs)) continue;
      planned.add(name);
      // Not for this worker: looked at again only when edited (onJobPut).
      if (!this.isEligible(job.spec, this.tags)) continue;
      if (job.spec.paused) {
        // A paused job's slots go by: on resume it starts from then, not from the pause.
        job.cursorMs = Math.max(job.cursorMs, nowMs);
        this.planQueue.push({ atMs: nowMs + TICK_MS, id: name });
        continue;
      }
      this.planJob(job, nowMs, session);
      // No plan instant (a due slot waits for its takeover, the schedule has no next slot): next tick.
      this.planQueue.push({ atMs: job.nextPlanMs ?? nowMs + TICK_MS, id: name });
    }
    let earliestMs = Math.min(nowMs + TICK_MS, this.planQueue.peek()?.atMs ?? Number.POSITIVE_INFINITY);
    if (this.retries.size > 0) earliestMs = Math.min(earliestMs, this.planRetries(nowMs, session));
    return Math.max(1, Math.min(TICK_MS, earliestMs - this.clock.nowMs()));
  }

  /**
   * How far ahead of a slot its claim may go: for jobs whose runs may overlap (and broadcast jobs,
   * whose runs are per worker), the claim's store round trip then happens before the slot and the
   * run starts on time. A job that forbids, buffers or replaces overlapping runs is claimed at the
   * slot: the run before it may still end in time.
   */
  private claimAheadFor(spec: JobSpec): number {
    return spec.overlap === 'Allow' || spec.broadcast ? this.claimAheadMs : 0;
  }

  /** Slots in (cursor, now + claim-ahead] whose start instant (slot + jitter) has come into it, oldest first. */
  private dueSlots(job: JobState, nowMs: number): DueSlot[] {
    const due: DueSlot[] = [];
    // Only a slot still in the future sets it; a due slot waiting for takeover must not (1 ms ticks).
    delete job.nextPlanMs;
    const aheadMs = this.claimAheadFor(job.spec);
    let cursor = job.cursorMs;
    while (due.length < WORKER_LIMITS.slotsPerPassMax) {
      const slotMs = job.nextSlot(cursor);
      if (slotMs === null) break;
      const startMs = slotMs + jitterOffsetMs(job.spec.name, slotMs, job.spec.jitterMs);
      if (startMs > nowMs + aheadMs) {
        job.nextPlanMs = startMs - aheadMs;
        break;
      }
      due.push({ slotMs, startMs });
      cursor = slotMs;
    }
    return due;
  }

  private planJob(job: JobState, nowMs: number, session: Session): void {
    const due = this.dueSlots(job, nowMs);
    if (due.length === 0) return;
    const plan = planDueSlots(due, nowMs, job.spec.catchUp, Math.max(job.inViewSinceMs, this.sessionSinceMs));
    this.counters.slotsTooLate += plan.tooLate.length;
    for (const slot of plan.overCap) this.runs.recordOverCap(job.spec, slot.slotMs, nowMs);
    const last = due[due.length - 1];
    if (plan.tooLate.length > 0 || plan.overCap.length > 0) job.cursorMs = Math.max(job.cursorMs, ...[...plan.tooLate, ...plan.overCap].map((s) => s.slotMs));
    const startable = [...plan.catchUp.map((s) => ({ slot: s, catchUp: true })), ...plan.onTime.map((s) => ({ slot: s, catchUp: false }))];
    for (const { slot, catchUp } of startable) {
      const launched = this.launch(job, slot, catchUp, nowMs, session);
      // Another worker's slot is looked at again at its takeover instant, apart from the job's
      // later slots: they may be this worker's, to be claimed ahead meanwhile.
      if (launched !== true) this.deferToTakeover(job.spec.name, slot, catchUp, launched);
      job.cursorMs = slot.slotMs;
    }
    if (last !== undefined) job.cursorMs = Math.max(job.cursorMs, last.slotMs);
  }

  /** Looks at a slot preferred for another worker again at `atMs`, its takeover instant. */
  private deferToTakeover(name: string, slot: DueSlot, catchUp: boolean, atMs: number, waiting?: WaitingClaim): void {
    this.counters.slotsDeferred++;
    const key = lockKey(name, slot.slotMs);
    // Claimed already (seen on the watch while this slot was being planned): nothing to wait for.
    if (this.claimsSeen.has(key)) return;
    this.takeoverTimers.get(key)?.cancel();
    const timer = this.clock.setTimer(atMs - this.clock.nowMs(), () => {
      if (this.takeoverTimers.get(key) === timer) this.takeoverTimers.delete(key);
      const session = this.session;
      const job = this.jobs.get(name);
      if (this.stopping || session === undefined || !session.isAlive() || job === undefined) return;
      if (!this.isStillWanted(name, slot.slotMs, waiting?.scheduled ?? true)) return;
      const launched = this.launch(job, slot, catchUp, this.clock.nowMs(), session, waiting?.triggeredBy, waiting?.scheduled === false);
      if (launched !== true) this.deferToTakeover(name, slot, catchUp, launched, waiting);
    });
    this.takeoverTimers.set(key, timer);
  }

  /** Whether a slot waiting here should still be claimed: a schedule's slot still in it, a manual run of a runnable job. */
  private isStillWanted(name: string, slotMs: number, scheduled: boolean): boolean {
    const job = this.jobs.get(name);
    if (job === undefined) return false;
    return scheduled ? this.specAtSlot(name, slotMs) !== undefined : !job.spec.paused && this.isEligible(job.spec, this.tags);
  }

  /** The job as defined now, if it still runs this slot here (not paused, removed or rescheduled). */
  private specAtSlot(name: string, slotMs: number): JobSpec | undefined {
    const job = this.jobs.get(name);
    if (job === undefined || job.spec.paused || !this.isEligible(job.spec, this.tags)) return undefined;
    return job.nextSlot(slotMs - 1) === slotMs ? job.spec : undefined;
  }

  /**
   * Starts the claim for one slot (true: claimed, queued for a claim slot, or already claimed by
   * another worker), or returns the instant to look again: a slot another worker is preferred for,
   * at its takeover instant.
   */
  private launch(
    job: JobState, slot: DueSlot, catchUp: boolean, nowMs: number, session: Session, triggeredBy?: string, manual = false,
  ): true | number {
    const spec = job.spec;
    let isTakeover = false;
    if (!spec.broadcast) {
      const preferred = preferredWorker(spec.name, slotId(slot.slotMs), this.candidatesFor(spec), spec.preferWorkers);
      if (preferred !== this.id) {
        if (nowMs < slot.startMs + this.takeoverDelayMs) return slot.startMs + this.takeoverDelayMs;
        if (this.claimsSeen.has(lockKey(spec.name, slot.slotMs))) return true;
        // A preferred worker whose claims keep appearing (its locks, on our watch) is behind, not
        // gone: taking its slots over now would double the claims just when the store is the
        // bottleneck. It gets until the late takeover instant. A dead or frozen one stops
        // claiming, and its slots are taken over at once.
        const lateTakeoverMs = slot.startMs + LATE_TAKEOVER_FACTOR * this.takeoverDelayMs;
        const lastClaimMs = preferred === undefined ? undefined : this.lastClaimSeenMs.get(preferred);
        if (nowMs < lateTakeoverMs && lastClaimMs !== undefined && nowMs - lastClaimMs < this.takeoverDelayMs) return lateTakeoverMs;
        isTakeover = true;
      }
    }
    if (this.isAtClaimBound(spec)) {
      this.counters.slotsDeferred++;
      (isProcessJob(spec) ? this.waitingProcessClaims : this.waitingClaims)
        .push({ name: spec.name, slot, startMs: slot.startMs, catchUp, scheduled: !manual, ...(triggeredBy === undefined ? {} : { triggeredBy }) });
      return true;
    }
    const base = { spec, slotMs: slot.slotMs, session, catchUp, ...(triggeredBy === undefined ? {} : { triggeredBy }) };
    const counted = (claim: Promise<boolean>): void => {
      this.counters.claimTxns++;
      void claim.then((won) => { if (won) this.counters.claimsWon++; }).finally(() => this.pumpClaims());
    };
    if (isTakeover) {
      this.counters.takeoverReads++;
      void this.runs.isUnclaimed(spec, slot.slotMs).then((unclaimed) => {
        if (!unclaimed || !session.isAlive()) return;
        this.counters.takeovers++;
        counted(this.runs.claimAndRun(base));
      }).finally(() => this.pumpClaims());
      return true;
    }
    // Claimed ahead (claimAheadFor): started at the slot, as the job is defined then.
    const ahead = slot.startMs > nowMs ? { startAt: { ms: slot.startMs, currentSpec: () => this.specAtSlot(spec.name, slot.slotMs) } } : {};
    counted(this.runs.claimAndRun({ ...base, ...ahead, ...(spec.broadcast ? { broadcastWorker: this.id } : {}) }));
    return true;
  }

  /** Claims (and takeover reads) in flight at the worker's bounds: the slot waits in a queue. */
  private isAtClaimBound(spec: JobSpec): boolean {
    return this.runs.claimsInFlight() >= WORKER_LIMITS.claimsInFlightMax || !this.runs.hasRoomFor(spec)
      || (isProcessJob(spec) && this.runs.processClaimsInFlight() >= WORKER_LIMITS.processClaimsInFlightMax);
  }

  /**
   * Sends queued claims as claims in flight end (ClaimQueue's order): a slot goes out as soon as
   * there is room, not at the next planning pass. A slot past its start deadline is dropped to
   * housekeeping (recorded missed), as planning would have done.
   */
  private pumpClaims(): void {
    const session = this.session;
    if (this.stopping || session === undefined || !session.isAlive()) return;
    const isExpired = (waiting: WaitingClaim): boolean => {
      const job = this.jobs.get(waiting.name);
      return job === undefined || this.clock.nowMs() > startDeadlineMs(waiting.slot, job.spec.catchUp);
    };
    // Counted only if nobody claimed it meanwhile (a takeover candidate's slot usually was).
    const onExpired = (waiting: WaitingClaim): void => {
      if (!this.claimsSeen.has(lockKey(waiting.name, waiting.slot.slotMs))) this.counters.slotsTooLate++;
    };
    for (const [queue, isProcess] of [[this.waitingClaims, false], [this.waitingProcessClaims, true]] as const) {
      while (queue.size > 0) {
        const atBound = this.runs.claimsInFlight() >= WORKER_LIMITS.claimsInFlightMax
          || (isProcess && this.runs.processClaimsInFlight() >= WORKER_LIMITS.processClaimsInFlightMax);
        if (atBound) break;
        // Live runs at their bound: the queue waits for a run to end (a tick looks again).
        const head = queue.peek();
        const headJob = head === undefined ? undefined : this.jobs.get(head.name);
        if (headJob !== undefined && !this.runs.hasRoomFor(headJob.spec)) break;
        const nowMs = this.clock.nowMs();
        const next = queue.next(nowMs, isExpired, onExpired);
        if (next === undefined) break;
        const job = this.jobs.get(next.name);
        if (job === undefined || !this.isStillWanted(next.name, next.slot.slotMs, next.scheduled)) continue;
        if (isExpired(next)) {
          onExpired(next);
          continue;
        }
        const launched = this.launch(job, next.slot, next.catchUp, nowMs, session, next.triggeredBy, !next.scheduled);
        if (launched !== true) this.deferToTakeover(next.name, next.slot, next.catchUp, launched, next);
      }
    }
  }
}
