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
}

export interface HistoryLimits {
  readonly countMax: number;
  readonly ageMs: number;
}

/** A validated, normalized job definition: the value stored under /cron/jobs/<name>. */
export interface JobSpec {
  readonly name: string;
  /** Cron with optional seconds (5 or 6 fields), a macro (@hourly ...) or `@every <duration>`. */
  readonly schedule: string;
  /** Canonical IANA zone name. */
  readonly timezone: string;
  /** Exactly one of command (run by /bin/sh -c) and argv (run directly) is set. */
  readonly command?: string;
  readonly argv?: readonly string[];
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
  /**
   * When the job was first created (wall ms, the writing master's clock), stamped by the master
   * and kept across edits; a value in the input is replaced. A new leader records missed slots
   * from here for a job that has no records yet. Absent on jobs written around the master.
   */
  readonly createdAtMs?: number;
}

export const JOB_DEFAULTS = {
  timezone: 'UTC',
  killGraceMs: 5_000,
  retries: { count: 0, backoffInitialMs: 1_000, backoffMaxMs: 60_000, backoffMultiplier: 2 },
  overlap: 'Allow',
  catchUp: { windowMs: 0, max: 1 },
  history: { countMax: 100, ageMs: 7 * 24 * 3_600_000 },
  outputTailBytesMax: 256 * 1024,
  jitterMs: 0,
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
} as const;
