/** What happens when a slot comes due while an earlier run of the same job still holds its claim. */
export const OVERLAP_POLICIES = ['Allow', 'Forbid', 'Replace', 'BufferOne'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

export interface RetryPolicy {
  /** Attempts after the first; 0 means a failed run is final. */
  readonly count: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly backoffMultiplier: number;
}

export interface CatchUpPolicy {
  /** Slots older than this when first seen are recorded `missed` instead of run. */
  readonly windowMs: number;
  /** At most this many past slots are run after downtime; older ones in the window are `missed`. */
  readonly max: number;
  /**
   * How late a slot that came due while a worker had the job in view may still start (workers
   * busy, a claim queued, a takeover): load makes a run late, it does not drop it. The start
   * deadline is max(windowMs, lateStartMs, 5 s) after the slot's start instant.
   */
  readonly lateStartMs: number;
}

export interface HistoryLimits {
  readonly countMax: number;
  readonly ageMs: number;
}

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/**
 * A job run as one HTTP request made by the worker itself (no process): the same claim, fence
 * and record path as a command, the fence sent as a header so the target can refuse a stale run.
 */
export interface HttpRequestSpec {
  readonly method: HttpMethod;
  /** http:// or https:// (verified against the system's CAs). */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
  /** Statuses that count as success; absent means any 2xx. Redirects are not followed. */
  readonly expectStatus?: readonly number[];
}

/** When a dependent job runs: after each run of its parent that succeeded, failed, or either. */
export const AFTER_OUTCOMES = ['success', 'failure', 'always'] as const;
export type AfterOutcome = (typeof AFTER_OUTCOMES)[number];

/** A dependent job: one run per run of `job` that ended as `on` says (docs/scheduler.md). */
export interface AfterSpec {
  readonly job: string;
  readonly on: AfterOutcome;
}

/** Final run states a job may be alerted on. */
export const ALERT_STATES = ['failed', 'timeout', 'lost', 'missed', 'killed', 'skipped', 'succeeded'] as const;
export type AlertState = (typeof ALERT_STATES)[number];

/**
 * Notifications of a job's runs that end in one of `on`: a JSON POST to a webhook, and/or a shell
 * command run by the leading master, each retried, each delivery recorded (docs/scheduler.md).
 */
export interface AlertSpec {
  readonly on: readonly AlertState[];
  readonly webhook?: { readonly url: string; readonly headers: Readonly<Record<string, string>> };
  readonly command?: string;
}

/** A validated, normalized job definition: the value stored under /cron/jobs/<name>. */
export interface JobSpec {
  readonly name: string;
  /** Cron with optional seconds (5 or 6 fields), a macro (@hourly ...) or `@every <duration>`. */
  readonly schedule: string;
  /** Canonical IANA zone name. */
  readonly timezone: string;
  /** Exactly one of command (run by /bin/sh -c), argv (run directly) and http is set. */
  readonly command?: string;
  readonly argv?: readonly string[];
  readonly http?: HttpRequestSpec;
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Absent means no timeout. */
  readonly timeoutMs?: number;
  /** Time between SIGTERM and SIGKILL of the run's process group. */
  readonly killGraceMs: number;
  readonly retries: RetryPolicy;
  readonly overlap: OverlapPolicy;
  readonly catchUp: CatchUpPolicy;
  /** Only workers carrying every one of these tags run the job. */
  readonly tags: readonly string[];
  /**
   * Affinity: worker ids in order of preference. The first of them that is live and eligible
   * claims each slot at once; other workers only after their takeover delay. Absent when empty.
   */
  readonly preferWorkers?: readonly string[];
  /** One run per eligible worker per slot instead of one run per slot. */
  readonly broadcast: boolean;
  readonly paused: boolean;
  readonly history: HistoryLimits;
  readonly outputTailBytesMax: number;
  /** Runs start at slot + a deterministic offset in [0, jitterMs]; the slot id stays nominal. */
  readonly jitterMs: number;
  readonly alerts?: AlertSpec;
  readonly after?: AfterSpec;
  /**
   * When the job was first created (wall ms, the writing master's clock), stamped by the master
   * and kept across edits; a value in the input is replaced. A new leader records missed slots
   * from here for a job that has no records yet. Absent on jobs written around the master.
   */
  readonly createdAtMs?: number;
}

export const JOB_DEFAULTS = {
  timezone: 'UTC',
  /** An HTTP job given no timeoutMs gets this one: a request must not hang for ever. */
  httpTimeoutMs: 60_000,
  killGraceMs: 5_000,
  retries: { count: 0, backoffInitialMs: 1_000, backoffMaxMs: 60_000, backoffMultiplier: 2 },
  overlap: 'Allow',
  catchUp: { windowMs: 0, max: 1, lateStartMs: 60_000 },
  history: { countMax: 100, ageMs: 7 * 24 * 3_600_000 },
  outputTailBytesMax: 256 * 1024,
  jitterMs: 0,
  alertOn: ['failed', 'timeout', 'lost', 'missed'],
} as const;

/** Limits on input sizes: a spec must fit comfortably under etcd's 1.5 MiB request limit. */
export const JOB_LIMITS = {
  scheduleBytesMax: 256,
  commandBytesMax: 64 * 1024,
  envBytesMax: 64 * 1024,
  argvItemsMax: 1_024,
  tagsMax: 32,
  tagBytesMax: 64,
  preferWorkersMax: 32,
  retriesMax: 100,
  catchUpMax: 1_000,
  historyCountMax: 100_000,
  outputTailBytesMax: 1024 * 1024,
  durationMsMax: 366 * 24 * 3_600_000,
  httpUrlBytesMax: 8 * 1024,
  httpHeadersBytesMax: 64 * 1024,
  httpBodyBytesMax: 64 * 1024,
} as const;
