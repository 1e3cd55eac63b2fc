import type { WorkerStats } from './worker.js';
import type { Etcd3 } from 'etcd3';
import type { Clock, Timer } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { locksPrefix, prefixEnd, retryKey, runKey, slotId } from '../shared/keys.js';
import type { JobSpec } from '../shared/job/spec.js';
import { deleteOp, getOp, rangeResult, revisionOf, runTxn } from '../shared/etcd/txn.js';
import {
  decodeRunRecord, isLiveState, isRetryable, retryBackoffMs, runIdFor, summarizeAttempt,
  type AttemptSummary, type RetryRequest, type RunRecord, type RunState,
} from '../shared/history/records.js';
import {
  claimRun, recordNotStarted, withdrawClaim, writeFenced, writeRunOnly, type Claimed, type FencedResult,
} from './claimer/claim.js';
import { fitOutputTail } from './executor/fit-output-tail.js';
import { TxnBatcher } from './claimer/txn-batcher.js';
import {
  startProcess, type ProcessExit, type ProcessSpec, type RunningProcess, type StopCause,
} from './executor/process-group.js';
import { BENCH_NOOP_COMMAND, startBenchNoop } from './executor/bench-noop.js';
import { runHeadersFrom, startHttpRequest } from './executor/http-request.js';
import type { Session } from './session.js';
import { WORKER_LIMITS } from './options.js';
import { jitterOffsetMs, nextSlotMs } from '../master/planner/slots.js';
import { startDeadlineMs } from '../master/planner/catch-up.js';
import { compileSchedule } from '../shared/job/schedule.js';
import { schedulerMetrics } from '../shared/metrics/scheduler-metrics.js';
import type { RunGuard } from './executor/run-guard.js';

export interface LaunchRequest {
  readonly spec: JobSpec;
  readonly slotMs: number;
  readonly session: Session;
  readonly catchUp: boolean;
  readonly broadcastWorker?: string;
  /** A dependent job's run: the parent run whose end triggered it. */
  readonly triggeredBy?: string;
  /** Set for an attempt claimed from /cron/retry/ (a retry on any worker). */
  readonly retry?: { readonly key: string; readonly previousAttempts: readonly AttemptSummary[] };
  /**
   * A claim sent ahead of the slot (docs/scheduler.md, "Claiming ahead"): once won, the run starts
   * at `ms`, as the job is defined then; `currentSpec` answers undefined if the job was paused,
   * removed or no longer has this slot, and the claim is then withdrawn.
   */
  readonly startAt?: { readonly ms: number; readonly currentSpec: () => JobSpec | undefined };
}

/** A claim won ahead of its slot, waiting for the slot's start instant. */
interface HeldStart {
  readonly request: LaunchRequest;
  readonly claim: Claimed;
  readonly timer: Timer;
}

interface LiveRun {
  readonly spec: JobSpec;
  readonly claim: Claimed;
  readonly process: RunningProcess;
  /** Serializes this run's writes: running, then finish. */
  writes: Promise<void>;
  runModRevision: number;
  record: RunRecord;
  /** Settles once the finish report was sent (or refused). */
  done: Promise<void>;
  lockDeleted: boolean;
  /** Set when the process exited: no progress write may start after this. */
  finishing: boolean;
}

/** The worker's figures that come from its runs and claims (see WorkerStats for their meaning). */
export type RunStats = Pick<WorkerStats,
  | 'runsStarted' | 'reportsRejected' | 'progressWrites' | 'claimsAfterLeaseLoss' | 'claimMsSum' | 'claimMsMax'
  | 'claimsTimed' | 'batchTxns' | 'batchItems' | 'batchesFailed' | 'batchSubmitted'>;

/** How often a BufferOne slot re-checks whether the running one has ended. */
const BUFFER_POLL_MS = 250;
const SHUTDOWN_WAIT_MS_MAX = 10_000;
/** How often a clean stop looks whether the claims in flight have been answered. */
const DRAIN_POLL_MS = 20;
/**
 * How long a clean stop waits for claims in flight: they answer in milliseconds while the store
 * is there, and the whole stop must fit a container's stop timeout (Docker: 10 s). A claim
 * answered later is not started (draining) and, its lease revoked, recorded lost by the reaper.
 */
const DRAIN_WAIT_MS_MAX = 2_000;
/** Finish reports retried while the lease lives (network blips, leader changes). */
const FINISH_ATTEMPTS_MAX = 50;
/**
 * The JSON-encoded output tail in a run record is kept under this, well below etcd's default
 * --max-request-bytes (1.5 MiB) with room for the rest of the record and earlier attempts.
 */
const OUTPUT_TAIL_ENCODED_BYTES_MAX = 1024 * 1024;
const FINISH_RETRY_PAUSE_MS = 200;
/** A run still going after this long gets its `running` record; shorter ones never do. */
const RUNNING_WRITE_DELAY_MS = 500;
/** How often a live run's output tail is written to its run record (for `job logs --follow`). */
const OUTPUT_FLUSH_MS = 1_000;

/** Claims slots, runs their processes and reports their ends, all fenced by the claim's revision. */
export class RunManager {
  private readonly live = new Map<string, LiveRun>();
  /** Claims won ahead of their slot, by lock key. */
  private readonly held = new Map<string, HeldStart>();
  private readonly counters = { runsStarted: 0, reportsRejected: 0, progressWrites: 0, claimsAfterLeaseLoss: 0, claimMsSum: 0, claimMsMax: 0, claimsTimed: 0 };
  private inFlight = 0;
  private processInFlight = 0;
  /** Of the live runs, those that are process groups. */
  private liveProcesses = 0;
  /** Set by a clean stop: no new claims, and a claim answered meanwhile is closed, not started. */
  private draining = false;
  /** Claims and finish writes of one event-loop turn share txns (a cron-aligned burst: a few txns). */
  private readonly batcher: TxnBatcher;

  constructor(
    private readonly client: Etcd3,
    private readonly worker: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly benchNoopExecutor = false,
    /** Starts the process runs; kills their groups when this worker is gone or frozen. */
    private readonly guard: RunGuard | null = null,
    /** The worker's session now (broadcast retries run under it). */
    private readonly currentSession: () => Session | undefined = () => undefined,
  ) {
    this.batcher = new TxnBatcher(client);
  }

  stats(): RunStats {
    const batches = this.batcher.stats();
    return { ...this.counters, batchTxns: batches.txns, batchItems: batches.items, batchesFailed: batches.failedBatches, batchSubmitted: batches.submitted };
  }

  async isUnclaimed(spec: JobSpec, slotMs: number): Promise<boolean> {
    this.inFlight++;
    try {
      // Serializable: answered by the member locally; a stale "unclaimed" only costs one failed txn.
      const response = await this.client.kv.range({ key: Buffer.from(runKey(spec.name, slotMs)), count_only: true, serializable: true });
      return Number(response.count) === 0;
    } catch (err) {
      this.logger.warn({ err, job: spec.name }, 'takeover read failed');
      return false;
    } finally {
      this.inFlight--;
    }
  }

  /** Serializable read before a takeover: is the retry key still there, unchanged? */
  async isRetryPending(key: string, modRevision: number): Promise<boolean> {
    this.inFlight++;
    try {
      const response = await this.client.kv.range({ key: Buffer.from(key), serializable: true });
      const kv = response.kvs[0];
      return kv !== undefined && revisionOf(kv.mod_revision) === modRevision;
    } catch (err) {
      this.logger.warn({ err, key }, 'retry takeover read failed');
      return false;
    } finally {
      this.inFlight--;
    }
  }

  /** Deletes a retry key whose run record no longer has the key's revision; true if it is gone. */
  async dropStaleRetry(key: string, modRevision: number, job: string, slotMs: number): Promise<boolean> {
    try {
      const outcome = await runTxn(this.client, {
        compare: [
          { key, target: 'Mod', result: 'Equal', value: modRevision },
          { key: runKey(job, slotMs), target: 'Mod', result: 'NotEqual', value: modRevision },
        ],
        success: [deleteOp(key)],
        failure: [getOp(key)],
      });
      return outcome.succeeded || rangeResult(outcome, 0).length === 0;
    } catch {
      return false;
    }
  }

  recordOverCap(spec: JobSpec, slotMs: number, nowMs: number): void {
    const slot = slotId(slotMs);
    // A broadcast slot is this worker's own run key.
    const broadcastWorker = spec.broadcast ? this.worker : undefined;
    const record: RunRecord = {
      job: spec.name, slot, runId: runIdFor(spec.name, slot, 1, broadcastWorker), state: 'missed', attempt: 1, worker: this.worker,
      endedAtMs: nowMs, reason: `catch-up-cap: more than ${spec.catchUp.max} missed slots in the catch-up window`,
    };
    recordNotStarted(this.client, runKey(spec.name, slotMs, broadcastWorker), record).catch((err: unknown) => {
      this.logger.warn({ err, job: spec.name, slot }, 'could not record missed slot');
    });
  }

  /** Whether one more run of this job may be live (process runs and HTTP runs have their own bounds). */
  hasRoomFor(spec: JobSpec): boolean {
    return isProcessJob(spec)
      ? this.liveProcesses < WORKER_LIMITS.runsLiveMax
      : this.live.size - this.liveProcesses < WORKER_LIMITS.inProcessRunsLiveMax;
  }

  /** Claims sent and not yet answered (plus takeover reads in progress). */
  claimsInFlight(): number {
    return this.inFlight;
  }

  /** Of those, the claims of jobs that spawn a process when won. */
  processClaimsInFlight(): number {
    return this.processInFlight;
  }

  /** Claims the slot and, if won, runs it. Resolves true when this worker won the claim. */
  async claimAndRun(request: LaunchRequest, attempt = 1, previousRunModRevision?: number): Promise<boolean> {
    const spawns = isProcessJob(request.spec) ? 1 : 0;
    this.inFlight++;
    this.processInFlight += spawns;
    try {
      return await this.claimAndRunNow(request, attempt, previousRunModRevision);
    } finally {
      this.inFlight--;
      this.processInFlight -= spawns;
    }
  }

  private async claimAndRunNow(request: LaunchRequest, attempt: number, previousRunModRevision?: number): Promise<boolean> {
    const { spec, slotMs, session } = request;
    // The worker queues slots while runs are at their bound (hasRoomFor); this is the last guard.
    // Held claims (claimed ahead) are not runs yet and do not count.
    if (this.draining || !this.hasRoomFor(spec) || !session.isAlive()) return false;
    const replaceLocks = spec.overlap === 'Replace' ? await this.currentLocks(spec) : [];
    const claimStartedMs = performance.now();
    const result = await claimRun(this.client, {
      spec, slotMs, worker: this.worker, leaseId: session.leaseId, attempt, catchUp: request.catchUp,
      nowMs: this.clock.nowMs(), replaceLocks,
      ...(request.broadcastWorker === undefined ? {} : { broadcastWorker: request.broadcastWorker }),
      ...(request.triggeredBy === undefined ? {} : { triggeredBy: request.triggeredBy }),
      ...(previousRunModRevision === undefined ? {} : { previousRunModRevision }),
      ...(request.retry === undefined ? {} : { retryKey: request.retry.key, previousAttempts: request.retry.previousAttempts }),
    }, this.batcher);
    schedulerMetrics.claims.inc({ result: result.ok ? 'won' : result.reason });
    const claimMs = performance.now() - claimStartedMs;
    this.counters.claimMsSum += claimMs;
    this.counters.claimsTimed++;
    this.counters.claimMsMax = Math.max(this.counters.claimMsMax, claimMs);
    const log = (): Logger => this.logger.child({ job: spec.name, slot: slotId(slotMs) });
    if (result.ok && !session.isAlive()) {
      // The claim was answered after this worker lost its lease: the lock goes with the lease and
      // the reaper records the run lost (its retry may already run elsewhere); starting it here
      // would run it under an abandoned lease, possibly beside that retry.
      this.counters.claimsAfterLeaseLoss++;
      log().warn({ fence: result.fence }, 'claim answered after the lease was lost; not starting');
      return false;
    }
    if (result.ok && this.draining) {
      await this.closeUnstarted(result, request);
      return false;
    }
    if (result.ok) {
      if (attempt > 1) schedulerMetrics.retriesClaimed.inc();
      this.startWhenDue(request, result);
      return true;
    }
    if (result.reason === 'busy') return this.onBusy(request, attempt, previousRunModRevision, result.holders.map((h) => h.runId));
    if (result.reason === 'taken') log().debug('slot already claimed');
    else log().warn({ err: result.error, reason: result.reason }, 'claim failed');
    return false;
  }

  private async currentLocks(spec: JobSpec): Promise<{ key: string; modRevision: number }[]> {
    const prefix = locksPrefix(spec.name);
    const response = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
    return response.kvs.map((kv) => ({ key: kv.key.toString(), modRevision: revisionOf(kv.mod_revision) }));
  }

  /**
   * Forbid: record the slot as skipped. BufferOne: wait for the running one to end, but no longer
   * than the next slot's start nor the slot's own start deadline (startLimitMs), after
   * which housekeeping would record it missed. At most one slot waits at a time because each gives
   * up when the next one begins (the most recent slot is kept, not the oldest).
   */
  private async onBusy(request: LaunchRequest, attempt: number, previous: number | undefined, holders: string[]): Promise<boolean> {
    const { spec, slotMs } = request;
    if (spec.overlap === 'BufferOne' && previous === undefined) {
      const compiled = compileSchedule(spec.schedule, spec.timezone);
      const next = compiled.ok ? nextSlotMs(compiled.schedule, slotMs) : null;
      const startMs = slotMs + jitterOffsetMs(spec.name, slotMs, spec.jitterMs);
      const giveUpMs = Math.min(next ?? slotMs, startDeadlineMs({ slotMs, startMs }, spec.catchUp));
      // A waiting slot is not a claim in flight: it must not hold back other jobs' claims.
      const spawns = isProcessJob(spec) ? 1 : 0;
      this.inFlight--;
      this.processInFlight -= spawns;
      try {
        while (this.clock.nowMs() < giveUpMs && request.session.isAlive()) {
          await new Promise<void>((resolve) => this.clock.setTimer(BUFFER_POLL_MS, resolve));
          if ((await this.currentLocks(spec)).length === 0) return await this.claimAndRun(request, attempt, previous);
        }
      } finally {
        this.inFlight++;
        this.processInFlight += spawns;
      }
    }
    const slot = slotId(slotMs);
    const reason = spec.overlap === 'BufferOne'
      ? `overlap BufferOne: ${holders.join(', ')} still running at the next slot or the start deadline`
      : `overlap ${spec.overlap}: ${holders.join(', ')} still running`;
    const record: RunRecord = {
      job: spec.name, slot, runId: runIdFor(spec.name, slot, attempt), state: 'skipped', attempt, worker: this.worker,
      endedAtMs: this.clock.nowMs(), reason,
    };
    await recordNotStarted(this.client, runKey(spec.name, slotMs), record).catch(() => false);
    return false;
  }

  /** Starts a won claim now, or at its slot's start instant if it was claimed ahead. */
  private startWhenDue(request: LaunchRequest, claim: Claimed): void {
    const startAt = request.startAt;
    if (startAt === undefined) {
      this.start(request, claim);
      return;
    }
    const go = (): void => {
      this.held.delete(claim.lockKey);
      if (!request.session.isAlive()) {
        // The lock went with the lease; the reaper records the run lost (and its retry, if any).
        this.runLogger(claim).warn('lease lost before the slot; not starting');
        return;
      }
      const spec = startAt.currentSpec();
      if (spec === undefined) {
        const log = this.runLogger(claim);
        log.info('job paused, removed or rescheduled before its slot; claim withdrawn');
        void withdrawClaim(this.client, claim).catch((err: unknown) => log.warn({ err }, 'could not withdraw the claim'));
        return;
      }
      this.start({ ...request, spec }, claim);
    };
    const delayMs = startAt.ms - this.clock.nowMs();
    if (delayMs <= 0) {
      go();
      return;
    }
    this.held.set(claim.lockKey, { request, claim, timer: this.clock.setTimer(delayMs, go) });
  }

  private start(request: LaunchRequest, claim: Claimed): void {
    const { spec } = request;
    const env: Record<string, string> = {
      ...spec.env,
      ETCRON_JOB: spec.name,
      ETCRON_SLOT: claim.record.slot,
      ETCRON_RUN_ID: claim.record.runId,
      ETCRON_FENCE: String(claim.fence),
      ETCRON_FENCING_TOKEN: String(claim.fence),
      ETCRON_WORKER: this.worker,
      ETCRON_ATTEMPT: String(claim.record.attempt),
      ...(request.triggeredBy === undefined ? {} : { ETCRON_TRIGGERED_BY: request.triggeredBy }),
    };
    // Made on first use: most runs log nothing at info level, and a child logger per start shows
    // at 1,000 starts/s.
    let runLog: Logger | undefined;
    const log = (): Logger => (runLog ??= this.runLogger(claim));
    const process = this.launch(spec, env, log);
    this.counters.runsStarted++;
    this.countStart(request, claim);
    const running: RunRecord = { ...claim.record, state: 'running', fence: claim.fence, startedAtMs: this.clock.nowMs() };
    const run: LiveRun = {
      spec, claim, process, writes: Promise.resolve(), runModRevision: claim.runModRevision, record: running,
      lockDeleted: false, finishing: false, done: Promise.resolve(),
    };
    this.live.set(claim.lockKey, run);
    if (isProcessJob(spec)) this.liveProcesses++;
    if (this.logger.isLevelEnabled('debug')) log().debug('run started');
    this.scheduleRunningWrite(run);
    this.scheduleOutputFlush(run);
    run.done = process.exited.then((exit) => this.finish(request, run, exit))
      .catch((err: unknown) => { log().error({ err }, 'finishing run failed'); });
  }

  /** The run itself: a process group, or for an HTTP job a request made from this process. */
  private launch(spec: JobSpec, env: Record<string, string>, log: () => Logger): RunningProcess {
    if (spec.http !== undefined) {
      return startHttpRequest({
        request: spec.http, runHeaders: runHeadersFrom(env), outputTailBytesMax: spec.outputTailBytesMax,
        ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
      }, this.clock, log);
    }
    if (this.benchNoopExecutor && spec.command === BENCH_NOOP_COMMAND) return startBenchNoop();
    const processSpec: ProcessSpec = {
      argv: spec.argv ?? ['/bin/sh', '-c', spec.command ?? 'false'], env, killGraceMs: spec.killGraceMs,
      outputTailBytesMax: spec.outputTailBytesMax,
      ...(spec.cwd === undefined ? {} : { cwd: spec.cwd }),
      ...(spec.timeoutMs === undefined ? {} : { timeoutMs: spec.timeoutMs }),
    };
    // The guard spawns (off this event loop) and tracks the group from its first instant.
    if (this.guard === null) return startProcess(processSpec, this.clock, log());
    return this.guard.startProcess(processSpec, this.clock, log());
  }

  private runLogger(claim: Claimed): Logger {
    return this.logger.child({ job: claim.record.job, slot: claim.record.slot, fence: claim.fence });
  }

  private countStart(request: LaunchRequest, claim: Claimed): void {
    schedulerMetrics.runsStarted.inc();
    if (claim.record.attempt !== 1) return;
    const { spec, slotMs } = request;
    const plannedMs = slotMs + jitterOffsetMs(spec.name, slotMs, spec.jitterMs);
    schedulerMetrics.startLatenessSeconds.observe(Math.max(0, this.clock.nowMs() - plannedMs) / 1000);
  }

  /**
   * The `running` record (fence, start time) is written once the run has lasted
   * RUNNING_WRITE_DELAY_MS: a run that ends sooner goes from `claimed` straight to its final
   * record, one store write fewer per start for the short runs that make up most cron load
   * (claim, finish: two writes instead of three). The final record carries the same fields.
   */
  private scheduleRunningWrite(run: LiveRun): void {
    this.clock.setTimer(RUNNING_WRITE_DELAY_MS, () => {
      if (run.finishing || run.lockDeleted) return;
      run.writes = run.writes.then(async () => {
        if (run.finishing) return;
        this.counters.progressWrites++;
        const result = await writeFenced(this.client, { ...run.claim, runModRevision: run.runModRevision }, run.record, false, undefined, this.batcher);
        if (result.ok) run.runModRevision = result.runModRevision;
      });
    });
  }

  /** Fenced progress writes of the output tail while the run lives, only when it changed. */
  private scheduleOutputFlush(run: LiveRun): void {
    let flushed = '';
    const flush = (): void => {
      if (run.finishing || run.lockDeleted) return;
      const tail = fitOutputTail(run.process.outputTail(), OUTPUT_TAIL_ENCODED_BYTES_MAX);
      if (tail === flushed) {
        this.clock.setTimer(OUTPUT_FLUSH_MS, flush);
        return;
      }
      run.writes = run.writes.then(async () => {
        if (run.finishing) return;
        const record: RunRecord = { ...run.record, outputTail: tail };
        this.counters.progressWrites++;
        const result = await writeFenced(this.client, { ...run.claim, runModRevision: run.runModRevision }, record, false);
        if (result.ok) {
          run.runModRevision = result.runModRevision;
          run.record = record;
          flushed = tail;
        }
      }).finally(() => { this.clock.setTimer(OUTPUT_FLUSH_MS, flush); });
    };
    this.clock.setTimer(OUTPUT_FLUSH_MS, flush);
  }

  private finalState(exit: ProcessExit): { state: RunState; reason?: string } {
    const stopped = exit.inProcess === undefined ? 'process group killed' : 'request aborted';
    switch (exit.stopCause) {
      case 'timeout': return { state: 'timeout', reason: `timed out; ${stopped}` };
      case 'lease-lost': return { state: 'killed', reason: `worker lost its lease; ${stopped}` };
      case 'killed': return { state: 'killed', reason: `lock deleted (job kill); ${stopped}` };
      case 'replaced': return { state: 'killed', reason: 'replaced by a newer slot (overlap Replace)' };
      case 'shutdown': return { state: 'killed', reason: 'worker shut down' };
      case undefined: break;
    }
    if (exit.spawnError !== undefined) return { state: 'failed', reason: `spawn failed: ${exit.spawnError}` };
    if (exit.inProcess !== undefined) {
      const { failure } = exit.inProcess;
      return failure === undefined ? { state: 'succeeded' } : { state: 'failed', reason: failure };
    }
    if (exit.exitCode === 0) return { state: 'succeeded' };
    return { state: 'failed', reason: exit.signal === null ? `exit code ${exit.exitCode}` : `signal ${exit.signal}` };
  }

  private async finish(request: LaunchRequest, run: LiveRun, exit: ProcessExit): Promise<void> {
    run.finishing = true;
    await run.writes;
    const { spec, claim } = run;
    const { state, reason } = this.finalState(exit);
    schedulerMetrics.runsFinished.inc({ state });
    const attempt = claim.record.attempt;
    const retry = isRetryable(state, attempt, spec.retries);
    const backoffMs = retryBackoffMs(spec.retries, attempt);
    // A broadcast run belongs to its worker, so it retries here; any other run on any live worker.
    const retriesHere = request.broadcastWorker !== undefined;
    const finalReason = retry
      ? `${reason ?? state}; retry ${attempt + 1} of ${spec.retries.count + 1} in ${backoffMs} ms${retriesHere ? '' : ' on any worker'}`
      : reason;
    const endedAtMs = this.clock.nowMs();
    const record: RunRecord = {
      ...run.record, state, endedAtMs, outputTail: fitOutputTail(exit.outputTail, OUTPUT_TAIL_ENCODED_BYTES_MAX),
      ...(exit.exitCode === null ? {} : { exitCode: exit.exitCode }),
      ...(exit.signal === null ? {} : { signal: exit.signal }),
      ...(exit.inProcess?.httpStatus === undefined ? {} : { httpStatus: exit.inProcess.httpStatus }),
      ...(finalReason === undefined ? {} : { reason: finalReason }),
    };
    const log = (): Logger => this.runLogger(claim);
    const retryRequest: RetryRequest | undefined = retry && !retriesHere ? {
      job: spec.name, slot: claim.record.slot, attempt: attempt + 1, retryAtMs: endedAtMs + backoffMs,
      previousAttempts: [...(record.previousAttempts ?? []), summarizeAttempt(record)],
    } : undefined;
    const retryWrite = retryRequest === undefined ? undefined : { key: retryKey(spec.name, request.slotMs), request: retryRequest };
    const result = await this.reportFinish(run, record, request.session, retryWrite);
    this.live.delete(claim.lockKey);
    if (isProcessJob(spec)) this.liveProcesses--;
    if (!result.ok && result.reason === 'fenced') {
      if (run.lockDeleted && request.session.isAlive() && exit.stopCause !== 'lease-lost') {
        // Killed on request while our lease lived: the run record is still ours to close.
        if (!(await this.closeKilledRun(run, record, request.session))) log().warn({ state }, 'could not record the end of a killed run');
        return;
      }
      this.counters.reportsRejected++;
      log().warn({ state, stopCause: exit.stopCause }, 'finish report rejected: the claim is no longer ours (fenced)');
      return;
    }
    if (!result.ok) {
      log().error({ err: result.error }, 'finish report failed');
      return;
    }
    if (this.logger.isLevelEnabled('debug')) log().debug({ state, exitCode: exit.exitCode }, 'run finished');
    if (retry && retriesHere) {
      this.clock.setTimer(backoffMs, () => {
        // A broadcast run is this worker's own: its retry goes out under whatever session the
        // worker has by then (the one that ran attempt 1 may have been lost and replaced).
        const session = this.currentSession();
        if (session === undefined || !session.isAlive() || this.draining) {
          log().warn({ attempt: attempt + 1 }, 'broadcast retry dropped: no live session');
          schedulerMetrics.claims.inc({ result: 'retry-dropped' });
          return;
        }
        void this.claimAndRun({ ...request, session }, attempt + 1, result.runModRevision);
      });
    }
  }

  /**
   * The end of a run killed on request (its lock already deleted): written while our lease lives,
   * retried on errors; a conflict is read back, since an earlier attempt may have landed unheard.
   */
  private async closeKilledRun(run: LiveRun, record: RunRecord, session: Session): Promise<boolean> {
    for (let attempt = 0; attempt < FINISH_ATTEMPTS_MAX && session.isAlive(); attempt++) {
      const written = await writeRunOnly(this.client, run.claim.runKey, run.runModRevision, record).catch(() => undefined);
      if (written === true) return true;
      if (written === false) {
        const current = await this.readOwnRun(run).catch(() => undefined);
        if (current === undefined || current.record.runId !== run.claim.record.runId) return false;
        if (current.record.state === record.state && current.record.endedAtMs === record.endedAtMs) return true;
        // Someone else closed it (the reaper, after our lease): theirs stands.
        if (!isLiveState(current.record.state)) return false;
        run.runModRevision = current.modRevision;
        continue;
      }
      await new Promise<void>((resolve) => this.clock.setTimer(FINISH_RETRY_PAUSE_MS, resolve));
    }
    return false;
  }

  /**
   * The finish write, retried while our lease lives. A refusal after an error is read back: our
   * earlier attempt may have been applied (reply lost), or the `running` write we never heard back
   * from may have moved the run's modRevision while the lock is still ours.
   */
  private async reportFinish(
    run: LiveRun, finalRecord: RunRecord, session: Session, retry?: { readonly key: string; readonly request: RetryRequest },
  ): Promise<FencedResult> {
    let record = finalRecord;
    for (let attempt = 0; attempt < FINISH_ATTEMPTS_MAX; attempt++) {
      this.counters.progressWrites++;
      const result = await writeFenced(this.client, { ...run.claim, runModRevision: run.runModRevision }, record, true, retry, this.batcher);
      if (result.ok) return result;
      if (result.reason === 'fenced') {
        const current = await this.readOwnRun(run).catch(() => undefined);
        if (current === undefined) return result;
        if (current.record.state === record.state && current.record.endedAtMs === record.endedAtMs) {
          return { ok: true, runModRevision: current.modRevision };
        }
        if (!current.lockIsOurs || current.record.runId !== run.claim.record.runId) return result;
        run.runModRevision = current.modRevision;
        continue;
      }
      if (isTooLarge(result.error) && record.outputTail !== undefined && record.outputTail.length > 0) {
        // A store with a lower request limit than etcd's default: the run still ends, and its
        // lock is released, without the output.
        record = { ...record, outputTail: '', reason: `${record.reason ?? record.state}; output not recorded: ${String(result.error)}` };
        continue;
      }
      if (!session.isAlive()) return result;
      await new Promise<void>((resolve) => this.clock.setTimer(FINISH_RETRY_PAUSE_MS, resolve));
    }
    return { ok: false, reason: 'store-error' };
  }

  private async readOwnRun(run: LiveRun): Promise<{ record: RunRecord; modRevision: number; lockIsOurs: boolean } | undefined> {
    const [runResponse, lockResponse] = await Promise.all([
      this.client.kv.range({ key: Buffer.from(run.claim.runKey) }),
      this.client.kv.range({ key: Buffer.from(run.claim.lockKey) }),
    ]);
    const kv = runResponse.kvs[0];
    const record = kv === undefined ? undefined : decodeRunRecord(kv.value.toString());
    if (kv === undefined || record === undefined) return undefined;
    const lock = lockResponse.kvs[0];
    return { record, modRevision: revisionOf(kv.mod_revision), lockIsOurs: lock !== undefined && revisionOf(lock.create_revision) === run.claim.fence };
  }

  onLockDeleted(key: string, sessionAlive: boolean): void {
    const held = this.held.get(key);
    if (held !== undefined) {
      held.timer.cancel();
      this.held.delete(key);
      // Killed before its slot (job kill): the record says so; without our lease, the reaper does.
      if (sessionAlive) void this.closeHeldKilled(held.claim);
      return;
    }
    const run = this.live.get(key);
    if (run === undefined) return;
    run.lockDeleted = true;
    if (sessionAlive) run.process.stop(run.spec.overlap === 'Replace' ? 'replaced' : 'killed', run.spec.killGraceMs);
    else run.process.stop('lease-lost', 0);
  }

  /**
   * A claim won but not started when the worker stops cleanly (answered during the stop, or held
   * for its slot): the attempt is recorded `killed` before it started, its lock released, and the
   * slot handed to the other workers as a retry due at once, all in one fenced write: nothing ran,
   * and the slot still runs. A broadcast run is this worker's own and ends there.
   */
  private async closeUnstarted(claim: Claimed, request: LaunchRequest): Promise<void> {
    const handsBack = request.broadcastWorker === undefined;
    const endedAtMs = this.clock.nowMs();
    const record: RunRecord = {
      ...claim.record, state: 'killed', fence: claim.fence, endedAtMs,
      reason: handsBack ? 'worker shut down before the run started; handed to another worker' : 'worker shut down before the run started',
    };
    const retry = handsBack ? {
      key: retryKey(request.spec.name, request.slotMs),
      request: {
        job: request.spec.name, slot: claim.record.slot, attempt: claim.record.attempt + 1,
        retryAtMs: Math.max(endedAtMs, request.startAt?.ms ?? endedAtMs),
        previousAttempts: [...(claim.record.previousAttempts ?? []), summarizeAttempt(record)],
      },
    } : undefined;
    const result = await writeFenced(this.client, claim, record, true, retry).catch(() => undefined);
    if (result === undefined || !result.ok) {
      this.logger.warn({ job: claim.record.job, slot: claim.record.slot }, 'closing a claim won during shutdown failed');
    }
  }

  /** A held claim whose lock was deleted on request before its slot: recorded killed, never started. */
  private async closeHeldKilled(claim: Claimed): Promise<void> {
    const record: RunRecord = {
      ...claim.record, state: 'killed', fence: claim.fence, endedAtMs: this.clock.nowMs(),
      reason: 'lock deleted (job kill) before the run started',
    };
    const written = await writeRunOnly(this.client, claim.runKey, claim.runModRevision, record).catch(() => false);
    if (!written) this.logger.warn({ job: claim.record.job, slot: claim.record.slot }, 'could not record a held claim killed');
  }

  async stopAll(cause: StopCause): Promise<void> {
    if (cause === 'shutdown') {
      // Claims already sent either start before the runs are stopped below or are closed
      // unstarted; none may start a process after the client is closed.
      this.draining = true;
      const deadlineMs = this.clock.nowMs() + DRAIN_WAIT_MS_MAX;
      while (this.inFlight > 0 && this.clock.nowMs() < deadlineMs) {
        await new Promise<void>((resolve) => this.clock.setTimer(DRAIN_POLL_MS, resolve));
      }
    }
    const held = [...this.held.values()];
    for (const h of held) h.timer.cancel();
    this.held.clear();
    // Without the lease the locks are gone and the reaper records the runs; after a clean stop
    // they are handed back (closeUnstarted), waited for below with the runs' reports.
    const handedBack = cause === 'shutdown' ? held.map((h) => this.closeUnstarted(h.claim, h.request)) : [];
    const runs = [...this.live.values()];
    for (const run of runs) run.process.stop(cause, cause === 'lease-lost' ? 0 : run.spec.killGraceMs);
    // Wait (bounded) for the exits and their fenced finish reports before the caller closes the client.
    await Promise.race([
      Promise.all([...runs.map((r) => r.done), ...handedBack]),
      new Promise<void>((resolve) => this.clock.setTimer(SHUTDOWN_WAIT_MS_MAX, resolve)),
    ]);
  }
}

/** Whether a won claim of this job spawns a process (HTTP jobs run in the worker itself). */
export function isProcessJob(spec: JobSpec): boolean {
  return spec.http === undefined;
}

/** etcd's refusal of a request over --max-request-bytes (grpc RESOURCE_EXHAUSTED or its text). */
function isTooLarge(error: unknown): boolean {
  const text = error instanceof Error ? error.message : String(error);
  return /request is too large|larger than max|RESOURCE_EXHAUSTED/i.test(text);
}
