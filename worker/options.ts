import type { Clock } from '../shared/clock.js';
import type { Random } from '../shared/random.js';
import type { Logger } from '../shared/log.js';
import type { EtcdClientOptions } from '../shared/etcd/client.js';

export interface WorkerOptions {
  /** How to reach the store: endpoints, else env ETCRON_ENDPOINTS, else 127.0.0.1:2379. */
  readonly client?: EtcdClientOptions;
  /** Unique worker id (validateWorkerId); default `<hostname>-<pid>`. */
  readonly id?: string;
  /** Routing tags: the worker runs only jobs whose tags are all in this list. */
  readonly tags?: readonly string[];
  /** TTL of the worker's lease (registration and every lock it holds). Default 5 s, minimum 2 s. */
  readonly leaseTtlSeconds?: number;
  /**
   * How long a non-preferred worker waits after a slot's start instant before it tries the claim
   * itself. Default 1 s. See docs/scheduler.md, "Preferred worker".
   */
  readonly takeoverDelayMs?: number;
  /**
   * How long before a slot's start instant the preferred worker sends its claim, for jobs whose
   * runs may overlap (and broadcast jobs); the run still starts at the slot. Default 1 s; 0 claims
   * at the slot. See docs/scheduler.md, "Claiming ahead".
   */
  readonly claimAheadMs?: number;
  /** Wall clock for slot maths (inject offsetClock for skew tests) and monotonic clock for lease deadlines. */
  readonly clock?: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  /**
   * Benchmarks only: run jobs whose command is exactly `etcron:bench-noop` in-process, without
   * spawning (worker/executor/bench-noop.ts). Not reachable from the CLI.
   */
  readonly benchNoopExecutor?: boolean;
}

export const WORKER_DEFAULTS = {
  leaseTtlSeconds: 5,
  takeoverDelayMs: 1_000,
  /**
   * Not a whole number of seconds: the claims for the slots of second T + 2 are then planned at
   * T + 0.5, between cron-aligned instants, not at T itself while second T's runs start on the
   * same event loop (1,000 starts/s measured: p99 lateness 132 ms with 1,000, 105 ms with 1,500).
   */
  claimAheadMs: 1_500,
} as const;

export const WORKER_LIMITS = {
  leaseTtlSecondsMin: 2,
  leaseTtlSecondsMax: 300,
  claimAheadMsMax: 60_000,
  /** Process runs of one worker that may be live at once; past this, due slots wait for one to end. */
  runsLiveMax: 256,
  /**
   * HTTP runs (requests made by the worker itself) live at once. A cron-aligned second of 1,000
   * HTTP jobs starts a third of them on each of 3 workers at the same instant, each live until its
   * finish is written.
   */
  inProcessRunsLiveMax: 4_096,
  /**
   * Claims in flight per worker, all kinds: the store round trip is most of a start's latency, so
   * at 1,000 starts/s over 3 workers fewer than ~100 in flight each leave slots waiting. Claims of
   * one turn share txns (64 per txn), so 512 in flight are 8 txns.
   */
  claimsInFlightMax: 512,
  /**
   * Claims of process jobs (and so spawns) in flight. The run guard spawns (off the worker's event
   * loop) at about 500/s; an unbounded burst (100 new jobs x a 5 s look-back = 500 claims) would
   * still queue spawns behind each other there; past this bound, slots wait for the next tick.
   */
  processClaimsInFlightMax: 128,
  /** Slots looked at per job per planning pass; a 1 s schedule after a day of downtime must not spin. */
  slotsPerPassMax: 1_000,
} as const;
