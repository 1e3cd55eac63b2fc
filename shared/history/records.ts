import type { RetryPolicy } from '../job/spec.js';
import { parseJsonObject } from '../json.js';

/**
 * Run states. `claimed` and `running` are live; the rest are final.
 *   claimed   the claim txn won; the process is being spawned
 *   running   the process started
 *   succeeded / failed / timeout   the process ended (exit 0 / non-zero / killed on timeout)
 *   killed    stopped on request (job kill, Replace overlap) or by its worker on lease loss
 *   lost      its worker's lease expired while the run was live (marked by the reaper)
 *   missed    the slot was never started; `reason` says why (outside catch-up window, over cap ...)
 *   skipped   the slot was deliberately not started (Forbid overlap, paused job)
 */
export const RUN_STATES = [
  'claimed', 'running', 'succeeded', 'failed', 'timeout', 'killed', 'lost', 'missed', 'skipped',
] as const;
export type RunState = (typeof RUN_STATES)[number];

export const LIVE_RUN_STATES: readonly RunState[] = ['claimed', 'running'];

export function isLiveState(state: RunState): boolean {
  return LIVE_RUN_STATES.includes(state);
}

/** The value under /cron/runs/<job>/<slot>[~worker]. Created once per slot and never deleted except by trimming. */
export interface RunRecord {
  readonly job: string;
  /** Nominal slot, ISO 8601 UTC (toISOString). */
  readonly slot: string;
  /** Unique per attempt: `<job>@<slot>#<attempt>` plus the worker for broadcast runs. */
  readonly runId: string;
  readonly state: RunState;
  readonly reason?: string;
  /** Worker that claimed the run (absent for missed/skipped records written by housekeeping). */
  readonly worker?: string;
  /** Lease id (decimal string; ids exceed 2^53) bound to the run's lock key. */
  readonly leaseId?: string;
  /** Random value written by the claimer, to recognise its own claim after an unknown txn outcome. */
  readonly nonce?: string;
  /** createRevision of the lock key: the fencing token. Written after the claim, when it is known. */
  readonly fence?: number;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** Wall-clock times (ms since epoch) as measured by the worker's clock. */
  readonly claimedAtMs?: number;
  readonly startedAtMs?: number;
  readonly endedAtMs?: number;
  readonly exitCode?: number;
  readonly signal?: string;
  /** The response status of an HTTP job's request. */
  readonly httpStatus?: number;
  /** The last outputTailBytesMax bytes of stdout and stderr, interleaved as received. */
  readonly outputTail?: string;
  /** True when the slot was run late because of catch-up after downtime. */
  readonly catchUp?: boolean;
  /** For a dependent job's run: the parent run (runId) whose end started it. */
  readonly triggeredBy?: string;
  /** Revision at which the lock key went away, when the writer knows it (finish txn, reaper). */
  readonly lockReleasedRevision?: number;
  /** For attempt > 1: the attempts before this one, oldest first (they are also in MVCC history). */
  readonly previousAttempts?: readonly AttemptSummary[];
}

/** The value under /cron/lock/<job>/<slot>[~worker], bound to the claiming worker's lease. */
export interface LockValue {
  readonly job: string;
  readonly slot: string;
  readonly runId: string;
  readonly worker: string;
  readonly leaseId: string;
  readonly attempt: number;
}

/** A finished attempt, as kept in the next attempts' records. */
export interface AttemptSummary {
  readonly attempt: number;
  readonly state: RunState;
  readonly worker?: string;
  readonly fence?: number;
  readonly endedAtMs?: number;
  readonly reason?: string;
}

/**
 * The value under /cron/retry/<job>/<slot>: the next attempt of a slot whose last attempt failed or
 * was lost, due at `retryAtMs`. Its key's modRevision is the run record's, written in one txn.
 */
export interface RetryRequest {
  readonly job: string;
  readonly slot: string;
  /** The attempt to start: the failed or lost one + 1. */
  readonly attempt: number;
  readonly retryAtMs: number;
  /** Every earlier attempt, oldest first; the worker of the last one is tried last. */
  readonly previousAttempts: readonly AttemptSummary[];
}

/** The value under /cron/workers/<id>, bound to the worker's lease. */
export interface WorkerInfo {
  readonly id: string;
  readonly tags: readonly string[];
  readonly hostname: string;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly leaseId: string;
  readonly leaseTtlSeconds: number;
}

/** Decoding is lenient about extra fields (newer writers) but requires the fields readers depend on. */
export function decodeRunRecord(text: string): RunRecord | undefined {
  const value = parseJsonObject(text);
  if (value === undefined) return undefined;
  const state = value['state'];
  if (typeof value['job'] !== 'string' || typeof value['slot'] !== 'string' || typeof value['runId'] !== 'string') return undefined;
  if (typeof state !== 'string' || !(RUN_STATES as readonly string[]).includes(state)) return undefined;
  if (typeof value['attempt'] !== 'number') return undefined;
  return value as unknown as RunRecord;
}

export function decodeLockValue(text: string): LockValue | undefined {
  const value = parseJsonObject(text);
  if (value === undefined) return undefined;
  if (typeof value['job'] !== 'string' || typeof value['slot'] !== 'string' || typeof value['worker'] !== 'string') return undefined;
  return value as unknown as LockValue;
}

export function decodeWorkerInfo(text: string): WorkerInfo | undefined {
  const value = parseJsonObject(text);
  if (value === undefined || typeof value['id'] !== 'string' || !Array.isArray(value['tags'])) return undefined;
  return value as unknown as WorkerInfo;
}

export function decodeRetryRequest(text: string): RetryRequest | undefined {
  const value = parseJsonObject(text);
  if (value === undefined || typeof value['job'] !== 'string' || typeof value['slot'] !== 'string') return undefined;
  if (typeof value['attempt'] !== 'number' || typeof value['retryAtMs'] !== 'number' || !Array.isArray(value['previousAttempts'])) return undefined;
  return value as unknown as RetryRequest;
}

/** Backoff before attempt `attempt + 1`, after attempt `attempt` (1-based) failed or was lost. */
export function retryBackoffMs(retries: RetryPolicy, attempt: number): number {
  return Math.min(retries.backoffMaxMs, retries.backoffInitialMs * retries.backoffMultiplier ** (attempt - 1));
}

/** True when a final state may be retried and the policy has attempts left after `attempt`. */
export function isRetryable(state: RunState, attempt: number, retries: RetryPolicy): boolean {
  return (state === 'failed' || state === 'timeout' || state === 'lost') && attempt <= retries.count;
}

/** What the next attempt's records keep of a finished one. */
export function summarizeAttempt(record: RunRecord): AttemptSummary {
  return {
    attempt: record.attempt, state: record.state,
    ...(record.worker === undefined ? {} : { worker: record.worker }),
    ...(record.fence === undefined ? {} : { fence: record.fence }),
    ...(record.endedAtMs === undefined ? {} : { endedAtMs: record.endedAtMs }),
    ...(record.reason === undefined ? {} : { reason: record.reason }),
  };
}

export function encodeRecord(value: RunRecord | LockValue | WorkerInfo | RetryRequest): string {
  return JSON.stringify(value);
}

export function runIdFor(job: string, slot: string, attempt: number, broadcastWorker?: string): string {
  return `${job}@${slot}#${attempt}${broadcastWorker === undefined ? '' : `~${broadcastWorker}`}`;
}
