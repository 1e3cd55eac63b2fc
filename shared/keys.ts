/**
 * Every key the scheduler writes lives under /cron/. Builders are the only place key strings are
 * assembled, so readers (CLI, housekeeping) and writers (workers) can never disagree on layout.
 *
 *   /cron/jobs/<job>                      JobSpec JSON, written by the master
 *   /cron/workers/<worker>                WorkerInfo JSON, bound to the worker's lease
 *   /cron/runs/<job>/<slot>               RunRecord JSON, one per (job, slot), never lease-bound
 *   /cron/runs/<job>/<slot>~<worker>      the same for broadcast jobs (one run per worker per slot)
 *   /cron/lock/<job>/<slot>[~<worker>]    LockValue JSON, bound to the claiming worker's lease
 *   /cron/masters/<master>                MasterRegistration JSON (API URL), bound to the master's lease
 *
 * <slot> is the slot's `Date.toISOString()` (fixed width for years 0000-9999), so byte order of
 * run keys is slot order. A lock key exists exactly while its run holds the claim; its
 * createRevision is the run's fence. Locks are per run (not one key per job) so that Allow overlap
 * and broadcast jobs still get one fence per run; Forbid checks "no key under /cron/lock/<job>/" with
 * a range compare in the claim txn.
 */
export const ROOT_PREFIX = '/cron/';
export const JOBS_PREFIX = '/cron/jobs/';
export const WORKERS_PREFIX = '/cron/workers/';
export const RUNS_PREFIX = '/cron/runs/';
export const LOCKS_PREFIX = '/cron/lock/';
/** Masters announce the API URL clients should use here (service discovery by prefix). */
export const MASTERS_PREFIX = '/cron/masters/';
/**
 * Retries due, one key per (job, slot) whose last attempt failed or was lost and has attempts left:
 *   /cron/retry/<job>/<slot>  RetryRequest
 * Written in the same txn as that attempt's final run record, so the key's modRevision equals the
 * run record's: any worker claims the next attempt with a compare on it (docs/scheduler.md).
 */
export const RETRIES_PREFIX = '/cron/retry/';
/** Alert deliveries: /cron/alerts/<job>/<run suffix>#<attempt> (master/alerts/). */
export const ALERTS_PREFIX = '/cron/alerts/';
/** The leader's position in the run-record stream for alerts: {revision}. */
export const ALERTS_CURSOR_KEY = '/cron/master/alerts';
/** The leader's position in the run-record stream for dependent jobs: {revision}. */
export const TRIGGERS_CURSOR_KEY = '/cron/master/triggers';
/**
 * The leading master's housekeeping watermark: every slot of every job that existed at `revision`
 * is recorded up to `checkedUntilMs`. A new leader resumes from it (housekeeping.ts).
 */
export const HOUSEKEEPING_WATERMARK_KEY = '/cron/master/housekeeping';

/** Job and worker names: bytes allowed in one key segment. `/` would let one job's prefix cover another's. */
export const NAME_BYTES_MAX = 128;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export type NameCheck = { ok: true } | { ok: false; reason: string };

export function validateName(name: unknown, what = 'name'): NameCheck {
  if (typeof name !== 'string') return { ok: false, reason: `${what} must be a string` };
  if (name.length === 0) return { ok: false, reason: `${what} must not be empty` };
  if (Buffer.byteLength(name) > NAME_BYTES_MAX) {
    return { ok: false, reason: `${what} is longer than ${NAME_BYTES_MAX} bytes` };
  }
  if (!NAME_PATTERN.test(name) || name.includes('..')) {
    return {
      ok: false,
      reason: `${what} ${JSON.stringify(name)} must match ${NAME_PATTERN.source} and must not contain '..'`,
    };
  }
  return { ok: true };
}

export function validateJobName(name: unknown): NameCheck {
  return validateName(name, 'job name');
}

export function validateWorkerId(id: unknown): NameCheck {
  return validateName(id, 'worker id');
}

let lastSlotMs = Number.NaN;
let lastSlotId = '';

/** Slot id: the nominal scheduled instant, ISO 8601 UTC as toISOString prints it. */
export function slotId(slotMs: number): string {
  // Cron slots fall on few instants (a second's slots share one): the last answer is kept.
  if (slotMs !== lastSlotMs) {
    lastSlotMs = slotMs;
    lastSlotId = new Date(slotMs).toISOString();
  }
  return lastSlotId;
}

export function jobKey(job: string): string {
  return `${JOBS_PREFIX}${job}`;
}

export function validateMasterId(id: unknown): NameCheck {
  return validateName(id, 'master id');
}

export function masterKey(master: string): string {
  return `${MASTERS_PREFIX}${master}`;
}

export function workerKey(worker: string): string {
  return `${WORKERS_PREFIX}${worker}`;
}

export function runsPrefix(job: string): string {
  return `${RUNS_PREFIX}${job}/`;
}

export function locksPrefix(job: string): string {
  return `${LOCKS_PREFIX}${job}/`;
}

/** Suffix of a run: the slot, plus the worker for broadcast jobs. */
export function runSuffix(slotMs: number, broadcastWorker?: string): string {
  return broadcastWorker === undefined ? slotId(slotMs) : `${slotId(slotMs)}~${broadcastWorker}`;
}

export function runKey(job: string, slotMs: number, broadcastWorker?: string): string {
  return `${runsPrefix(job)}${runSuffix(slotMs, broadcastWorker)}`;
}

export function alertsPrefix(job: string): string {
  return `${ALERTS_PREFIX}${job}/`;
}

/** One alert per run attempt: the run's key suffix (slot, and worker if broadcast) and attempt. */
export function alertKey(job: string, runKeySuffix: string, attempt: number): string {
  return `${alertsPrefix(job)}${runKeySuffix}#${attempt}`;
}

export function retryKey(job: string, slotMs: number): string {
  return `${RETRIES_PREFIX}${job}/${slotId(slotMs)}`;
}

export function lockKey(job: string, slotMs: number, broadcastWorker?: string): string {
  return `${locksPrefix(job)}${runSuffix(slotMs, broadcastWorker)}`;
}

/** The key just past every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    const byte = bytes[i];
    if (byte !== undefined && byte < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

export interface ParsedRunKey {
  readonly job: string;
  readonly slot: string;
  readonly slotMs: number;
  readonly broadcastWorker?: string;
}

/** Parses /cron/runs/<job>/<suffix> or /cron/lock/<job>/<suffix>; undefined for anything else. */
export function parseRunKey(key: string): ParsedRunKey | undefined {
  const prefix = key.startsWith(RUNS_PREFIX) ? RUNS_PREFIX : key.startsWith(LOCKS_PREFIX) ? LOCKS_PREFIX : undefined;
  if (prefix === undefined) return undefined;
  const rest = key.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  const job = rest.slice(0, slash);
  const suffix = rest.slice(slash + 1);
  const tilde = suffix.indexOf('~');
  const slot = tilde < 0 ? suffix : suffix.slice(0, tilde);
  const slotMs = Date.parse(slot);
  if (!Number.isFinite(slotMs) || slotId(slotMs) !== slot) return undefined;
  return tilde < 0 ? { job, slot, slotMs } : { job, slot, slotMs, broadcastWorker: suffix.slice(tilde + 1) };
}

/**
 * Manual "run now" requests, written by the master (bound to a short lease) and watched by workers:
 *   /cron/control/run/<job>/<requestId>  {job, requestId, slot, requestedAtMs}
 * The request names its slot (the request instant), which workers claim like any slot, so the run
 * record still guarantees at most one start. Same layout as master/control-keys.ts.
 */
export const RUN_NOW_PREFIX = '/cron/control/run/';
