import { randomBytes } from 'node:crypto';
import type { Etcd3, IKeyValue, IRequestOp } from 'etcd3';
import { lockKey, locksPrefix, prefixEnd, runKey } from '../../shared/keys.js';
import { deleteOp, getOp, putOp, rangeResult, revisionOf, runTxn, type CompareSpec } from '../../shared/etcd/txn.js';
import { classifyEtcdError } from '../../shared/etcd/errors.js';
import {
  decodeLockValue, decodeRunRecord, encodeRecord, runIdFor, type AttemptSummary, type LockValue, type RetryRequest, type RunRecord,
} from '../../shared/history/records.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { slotId } from '../../shared/keys.js';
import type { TxnBatcher } from './txn-batcher.js';

/**
 * The claim protocol (docs/scheduler.md, "Claim"): one txn
 *   If   create_revision(run key) == 0                (first attempt: the slot was never claimed)
 *        or mod_revision(run key) == the revision we last saw it at (retry attempt)
 *   and  create_revision(/cron/lock/<job>/ range) == 0   (Forbid/BufferOne: no live run of the job)
 *   Then put run key {claimed, worker, lease, nonce} and put lock key bound to our lease
 *   Else read the run key and the job's locks.
 * The txn's header revision is the lock key's createRevision: the fence.
 */
export interface ClaimRequest {
  readonly spec: JobSpec;
  readonly slotMs: number;
  readonly worker: string;
  readonly leaseId: string;
  readonly attempt: number;
  readonly broadcastWorker?: string;
  readonly catchUp: boolean;
  readonly nowMs: number;
  /** A dependent job's run: the parent run that started it (kept in the run record). */
  readonly triggeredBy?: string;
  /** For attempt > 1: the run record's modRevision that our previous attempt left. */
  readonly previousRunModRevision?: number;
  /** For attempt > 1 claimed from /cron/retry/: that key (deleted by the claim) and the attempts so far. */
  readonly retryKey?: string;
  readonly previousAttempts?: readonly AttemptSummary[];
  /** Lock keys to delete in the same txn (Replace overlap), with the modRevision we saw them at. */
  readonly replaceLocks?: readonly { key: string; modRevision: number }[];
}

export interface Claimed {
  readonly ok: true;
  readonly fence: number;
  readonly runKey: string;
  readonly lockKey: string;
  readonly record: RunRecord;
  /** modRevision of the run record after the claim: the compare for the next write. */
  readonly runModRevision: number;
  /** True when the claim was confirmed by reading back our nonce after an unknown outcome. */
  readonly recovered: boolean;
}

export type ClaimRefusal =
  | { readonly ok: false; readonly reason: 'taken'; readonly existing?: RunRecord }
  | { readonly ok: false; readonly reason: 'busy'; readonly holders: readonly LockValue[]; readonly locks: readonly IKeyValue[] }
  | { readonly ok: false; readonly reason: 'lease-lost' | 'store-error'; readonly error: unknown };

export type ClaimResult = Claimed | ClaimRefusal;

const READ_BACK_ATTEMPTS_MAX = 10;
const READ_BACK_PAUSE_MS = 200;

/**
 * Unique per claim, so a worker knows its own write when a reply was lost: a random prefix per
 * process and a counter (8 random bytes per claim cost a randomFillSync call each).
 */
const NONCE_PREFIX = randomBytes(8).toString('hex');
let nonceCount = 0;
function newNonce(): string {
  nonceCount++;
  return `${NONCE_PREFIX}${nonceCount.toString(36)}`;
}

/** One claim's keys, nonce, record and txn branches, fixed once: a resend must reuse the nonce. */
interface ClaimPlan {
  readonly rKey: string;
  readonly lKey: string;
  readonly nonce: string;
  readonly record: RunRecord;
  readonly compare: CompareSpec[];
  readonly success: IRequestOp[];
}

function planClaim(request: ClaimRequest): ClaimPlan {
  const { spec, slotMs, worker, leaseId, attempt } = request;
  const slot = slotId(slotMs);
  const rKey = runKey(spec.name, slotMs, request.broadcastWorker);
  const lKey = lockKey(spec.name, slotMs, request.broadcastWorker);
  const nonce = newNonce();
  const runId = runIdFor(spec.name, slot, attempt, request.broadcastWorker);
  const record: RunRecord = {
    job: spec.name, slot, runId, state: 'claimed', worker, leaseId, nonce, attempt, claimedAtMs: request.nowMs,
    ...(request.catchUp ? { catchUp: true } : {}),
    ...(request.triggeredBy === undefined ? {} : { triggeredBy: request.triggeredBy }),
    ...(request.previousAttempts === undefined ? {} : { previousAttempts: request.previousAttempts }),
  };
  const lock: LockValue = { job: spec.name, slot, runId, worker, leaseId, attempt };
  const compare: CompareSpec[] = [request.previousRunModRevision === undefined
    ? { key: rKey, target: 'Create', result: 'Equal', value: 0 }
    : { key: rKey, target: 'Mod', result: 'Equal', value: request.previousRunModRevision }];
  if (checksOverlap(request)) {
    const prefix = locksPrefix(spec.name);
    compare.push({ key: prefix, rangeEnd: prefixEnd(prefix), target: 'Create', result: 'Equal', value: 0 });
  }
  for (const old of request.replaceLocks ?? []) compare.push({ key: old.key, target: 'Mod', result: 'Equal', value: old.modRevision });
  const success = [
    ...(request.replaceLocks ?? []).map((old) => deleteOp(old.key)),
    putOp(rKey, encodeRecord(record)),
    putOp(lKey, encodeRecord(lock), leaseId),
    ...(request.retryKey === undefined ? [] : [deleteOp(request.retryKey)]),
  ];
  return { rKey, lKey, nonce, record, compare, success };
}

function checksOverlap(request: ClaimRequest): boolean {
  return (request.spec.overlap === 'Forbid' || request.spec.overlap === 'BufferOne') && request.broadcastWorker === undefined;
}

/**
 * A first-attempt claim that compares nothing but its own run key can share a txn with others
 * (TxnBatcher): whether it lost is told by its run key alone. Retries, Forbid/BufferOne (the
 * job's lock range) and Replace (locks read before) go on their own.
 */
export function isBatchable(request: ClaimRequest): boolean {
  return request.previousRunModRevision === undefined && request.retryKey === undefined
    && (request.replaceLocks ?? []).length === 0 && !checksOverlap(request);
}

export async function claimRun(client: Etcd3, request: ClaimRequest, batcher?: TxnBatcher): Promise<ClaimResult> {
  const plan = planClaim(request);
  if (batcher === undefined || !isBatchable(request)) return sendClaim(client, request, plan);
  const winning = (fence: number): Claimed => ({
    ok: true, fence, runKey: plan.rKey, lockKey: plan.lKey, record: plan.record, runModRevision: fence, recovered: false,
  });
  return batcher.submit<ClaimResult>({
    group: request.spec.name,
    bytes: opBytes(plan.success),
    compare: plan.compare,
    success: plan.success,
    // Its run key alone tells a batched claim's outcome (isBatchable).
    failure: [getOp(plan.rKey)],
    succeeded: winning,
    failed: ([runKvs]) => {
      const existingKv = runKvs?.[0];
      const existing = existingKv === undefined ? undefined : decodeRunRecord(existingKv.value.toString());
      // Free: another item failed the batch. Our own nonce: a resend was applied; read it back alone.
      if (existingKv === undefined) return 'again';
      if (existing?.nonce === plan.nonce) return 'alone';
      return existing === undefined ? { ok: false, reason: 'taken' } : { ok: false, reason: 'taken', existing };
    },
    alone: () => sendClaim(client, request, plan),
    errored: (error) => claimErrored(client, plan, error),
  });
}

async function sendClaim(client: Etcd3, request: ClaimRequest, plan: ClaimPlan): Promise<ClaimResult> {
  const { rKey, lKey, nonce, record } = plan;
  try {
    // The run key, then the job's locks (who holds it, for Forbid/BufferOne).
    const locks = locksPrefix(request.spec.name);
    const failure = [getOp(rKey), getOp(locks, prefixEnd(locks))];
    const outcome = await runTxn(client, { compare: plan.compare, success: plan.success, failure });
    if (outcome.succeeded) {
      return { ok: true, fence: outcome.revision, runKey: rKey, lockKey: lKey, record, runModRevision: outcome.revision, recovered: false };
    }
    const existingKv = rangeResult(outcome, 0)[0];
    const existing = existingKv === undefined ? undefined : decodeRunRecord(existingKv.value.toString());
    // Our own earlier attempt may have been applied although its reply was lost (client retry).
    if (existing?.nonce === nonce) return readBack(client, rKey, lKey, nonce, record);
    const runFree = request.previousRunModRevision === undefined
      ? existingKv === undefined
      : existingKv !== undefined && revisionOf(existingKv.mod_revision) === request.previousRunModRevision;
    if (runFree) {
      const locks = rangeResult(outcome, 1);
      const holders = locks.map((kv) => decodeLockValue(kv.value.toString())).filter((v): v is LockValue => v !== undefined);
      return { ok: false, reason: 'busy', holders, locks };
    }
    return existing === undefined ? { ok: false, reason: 'taken' } : { ok: false, reason: 'taken', existing };
  } catch (error) {
    return claimErrored(client, plan, error);
  }
}

function claimErrored(client: Etcd3, plan: ClaimPlan, error: unknown): Promise<ClaimResult> {
  const kind = classifyEtcdError(error);
  if (kind === 'lease-lost') return Promise.resolve({ ok: false, reason: 'lease-lost', error });
  if (kind === 'unknown' || kind === 'retry') return readBack(client, plan.rKey, plan.lKey, plan.nonce, plan.record, error);
  return Promise.resolve({ ok: false, reason: 'store-error', error });
}

/** Never re-send the create txn blindly: that would turn our own success into "taken". Read the nonce. */
async function readBack(
  client: Etcd3, rKey: string, lKey: string, nonce: string, record: RunRecord, cause?: unknown,
): Promise<ClaimResult> {
  for (let i = 0; i < READ_BACK_ATTEMPTS_MAX; i++) {
    try {
      const outcome = await runTxn(client, { compare: [], success: [getOp(rKey), getOp(lKey)] });
      const runKv = rangeResult(outcome, 0)[0];
      const lockKv = rangeResult(outcome, 1)[0];
      const existing = runKv === undefined ? undefined : decodeRunRecord(runKv.value.toString());
      if (existing?.nonce !== nonce || runKv === undefined) {
        return existing === undefined ? { ok: false, reason: 'taken' } : { ok: false, reason: 'taken', existing };
      }
      if (lockKv === undefined) return { ok: false, reason: 'lease-lost', error: cause ?? new Error('lock gone after claim') };
      return {
        ok: true, fence: revisionOf(lockKv.create_revision), runKey: rKey, lockKey: lKey, record,
        runModRevision: revisionOf(runKv.mod_revision), recovered: true,
      };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, READ_BACK_PAUSE_MS));
    }
  }
  return { ok: false, reason: 'store-error', error: cause ?? new Error('claim outcome unknown') };
}

export interface FencedWrite {
  readonly runKey: string;
  readonly lockKey: string;
  readonly fence: number;
  readonly runModRevision: number;
}

export type FencedResult = { ok: true; runModRevision: number } | { ok: false; reason: 'fenced' | 'store-error'; error?: unknown };

/**
 * Progress and finish writes: If create_revision(lock) == fence AND mod_revision(run) == ours.
 * A failed compare means the claim is no longer ours (lease expired, killed, replaced): do nothing more.
 */
export async function writeFenced(
  client: Etcd3, target: FencedWrite, record: RunRecord, releaseLock: boolean,
  retry?: { readonly key: string; readonly request: RetryRequest }, batcher?: TxnBatcher,
): Promise<FencedResult> {
  const compare: CompareSpec[] = [
    { key: target.lockKey, target: 'Create', result: 'Equal', value: target.fence },
    { key: target.runKey, target: 'Mod', result: 'Equal', value: target.runModRevision },
  ];
  const success = [putOp(target.runKey, encodeRecord(record)),
    ...(releaseLock ? [deleteOp(target.lockKey)] : []),
    // Same txn as the final record: the retry key's modRevision is the record's (the claim's compare).
    ...(retry === undefined ? [] : [putOp(retry.key, encodeRecord(retry.request))])];
  const alone = async (): Promise<FencedResult> => {
    try {
      const outcome = await runTxn(client, { compare, success });
      return outcome.succeeded ? { ok: true, runModRevision: outcome.revision } : { ok: false, reason: 'fenced' };
    } catch (error) {
      return { ok: false, reason: 'store-error', error };
    }
  };
  if (batcher === undefined) return alone();
  return batcher.submit<FencedResult>({
    group: target.runKey, bytes: opBytes(success), compare, success,
    failure: [getOp(target.lockKey), getOp(target.runKey)],
    succeeded: (revision) => ({ ok: true, runModRevision: revision }),
    failed: ([lockKvs, runKvs]) => {
      const lock = lockKvs?.[0];
      const run = runKvs?.[0];
      const holds = lock !== undefined && revisionOf(lock.create_revision) === target.fence
        && run !== undefined && revisionOf(run.mod_revision) === target.runModRevision;
      return holds ? 'again' : { ok: false, reason: 'fenced' };
    },
    alone,
    errored: (error) => Promise.resolve({ ok: false, reason: 'store-error', error }),
  });
}

/** The bytes a txn's puts carry (keys and values): what counts toward the request size limit. */
function opBytes(ops: readonly IRequestOp[]): number {
  let bytes = 0;
  for (const op of ops) {
    const put = op.request_put;
    if (put !== undefined) bytes += (put.key?.length ?? 0) + (put.value?.length ?? 0);
  }
  return bytes;
}

/**
 * Undoes a claim that never started (its job was paused or removed before the slot): the run
 * record and the lock go, fenced, as if the slot had not been claimed.
 */
export async function withdrawClaim(client: Etcd3, target: FencedWrite): Promise<boolean> {
  const outcome = await runTxn(client, {
    compare: [
      { key: target.lockKey, target: 'Create', result: 'Equal', value: target.fence },
      { key: target.runKey, target: 'Mod', result: 'Equal', value: target.runModRevision },
    ],
    success: [deleteOp(target.runKey), deleteOp(target.lockKey)],
  });
  return outcome.succeeded;
}

/** A write compared on the run record alone, after our lock was deleted on request (job kill, Replace). */
export async function writeRunOnly(client: Etcd3, key: string, runModRevision: number, record: RunRecord): Promise<boolean> {
  const outcome = await runTxn(client, {
    compare: [{ key, target: 'Mod', result: 'Equal', value: runModRevision }],
    success: [putOp(key, encodeRecord(record))],
  });
  return outcome.succeeded;
}

export { recordNotStarted } from '../../shared/history/write.js';
