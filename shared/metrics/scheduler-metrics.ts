import {
  Counter, CounterVec, exponentialBuckets, Histogram, HistogramVec, renderFamilies,
} from './registry.js';
import type { Family, Sample } from './registry.js';

/**
 * The scheduler's counters, process-wide like the store's: a master or worker runs one per
 * process in production (`etcron up` runs both in one, and its /metrics shows both). Runs are
 * not labeled by job, so the series count stays bounded with 10,000 jobs; per-job detail is in
 * the history.
 */
export const schedulerMetrics = {
  /** Processes started by this worker (every attempt). */
  runsStarted: new Counter(),
  /** From the slot's planned start (slot + jitter) to the start of the process; first attempts. */
  startLatenessSeconds: new Histogram(exponentialBuckets(0.005, 2, 14)),
  /** Runs this worker finished, by final state (succeeded, failed, timeout, killed). */
  runsFinished: new CounterVec(),
  /** Not-started records written (missed, skipped) by state and reason class. */
  runsNotStarted: new CounterVec(),
  /** Runs housekeeping marked lost (their worker's lease ended while they ran). */
  runsLost: new CounterVec(),
  /** Claim txns by result: won, taken (by another worker), busy (overlap), lease-lost, ... */
  claims: new CounterVec(),
  /** Retry attempts claimed (attempt 2 and later). */
  retriesClaimed: new Counter(),
  housekeepingPassSeconds: new Histogram(exponentialBuckets(0.001, 2, 14)),
  housekeepingPasses: new CounterVec(),
  /** Unix time of the last housekeeping pass without an error; 0 before the first. */
  housekeepingLastSuccessSeconds: { value: 0 },
  /** Lease keep-alives answered, by result: ok, or expired (the store no longer knew the lease). */
  leaseRenewals: new CounterVec(),
  /** Worker sessions lost, by cause: deadline (no answer in time) or expired. */
  leaseLosses: new CounterVec(),
  /** Unary store requests by gRPC method, from send to status. */
  storeRequestSeconds: new HistogramVec(exponentialBuckets(0.0005, 2, 16)),
  /** Unary store requests that ended with an error, by method and gRPC code. */
  storeRequestErrors: new CounterVec(),
  /** Alerts raised by the leader, by run state. */
  alertsRaised: new CounterVec(),
  /** Alert delivery tries, by channel (webhook, command) and result (ok, error). */
  alertDeliveries: new CounterVec(),
  /** Master API requests by method and route pattern (`unmatched` for unknown paths). */
  apiRequests: new CounterVec(),
};

/** Sorts a not-started reason into a few stable values usable as a label. */
export function reasonClass(reason: string | undefined): string {
  if (reason === undefined) return 'unknown';
  if (reason === 'job paused') return 'paused';
  if (reason.startsWith('overlap')) return 'overlap';
  if (reason.startsWith('catch-up-cap')) return 'catch-up-cap';
  if (reason.startsWith('outside-catch-up-window')) return 'start-deadline';
  return 'other';
}

const m = schedulerMetrics;
const samples = (counter: Counter): Sample[] => [[{}, counter.value]];

const FAMILIES: readonly Family[] = [
  { name: 'etcron_runs_started_total', help: 'Job processes started by this worker.',
    type: 'counter',
    collect: () => samples(m.runsStarted) },
  { name: 'etcron_run_start_lateness_seconds', type: 'histogram',
    help: 'Delay from a slot\'s planned start (with jitter) to its process start, first attempts.',
    collect: () => m.startLatenessSeconds },
  { name: 'etcron_runs_finished_total', help: 'Runs finished by this worker, by final state.',
    type: 'counter', collect: () => m.runsFinished.samples() },
  { name: 'etcron_runs_missed_total', help: 'Slots recorded missed, by reason.', type: 'counter',
    collect: () => byState(m.runsNotStarted.samples(), 'missed') },
  { name: 'etcron_runs_skipped_total', help: 'Slots recorded skipped, by reason.', type: 'counter',
    collect: () => byState(m.runsNotStarted.samples(), 'skipped') },
  { name: 'etcron_runs_lost_total', help: 'Runs marked lost by housekeeping, by reason.',
    type: 'counter', collect: () => m.runsLost.samples() },
  { name: 'etcron_claims_total', type: 'counter',
    help: 'Claim transactions by result (won, taken and busy are conflicts lost to others).',
    collect: () => m.claims.samples() },
  { name: 'etcron_retries_total', help: 'Retry attempts claimed.', type: 'counter',
    collect: () => samples(m.retriesClaimed) },
  { name: 'etcron_housekeeping_pass_duration_seconds', type: 'histogram',
    help: 'Duration of the leader\'s housekeeping passes.',
    collect: () => m.housekeepingPassSeconds },
  { name: 'etcron_housekeeping_passes_total', help: 'Housekeeping passes by result (ok, error).',
    type: 'counter', collect: () => m.housekeepingPasses.samples() },
  { name: 'etcron_housekeeping_last_success_timestamp_seconds', type: 'gauge',
    help: 'Unix time of the last housekeeping pass without an error (0: none on this master).',
    collect: () => [[{}, m.housekeepingLastSuccessSeconds.value]] },
  { name: 'etcron_lease_renewals_total', help: 'Worker lease keep-alives answered, by result.',
    type: 'counter', collect: () => m.leaseRenewals.samples() },
  { name: 'etcron_lease_losses_total', help: 'Worker leases lost, by cause.', type: 'counter',
    collect: () => m.leaseLosses.samples() },
  { name: 'etcron_store_request_duration_seconds', type: 'histogram',
    help: 'Unary store (etcd API) requests, by gRPC method.',
    collect: () => m.storeRequestSeconds.entries() },
  { name: 'etcron_alerts_raised_total', help: 'Alerts raised by the leading master, by run state.',
    type: 'counter', collect: () => m.alertsRaised.samples() },
  { name: 'etcron_alert_deliveries_total', help: 'Alert delivery tries, by channel and result.',
    type: 'counter', collect: () => m.alertDeliveries.samples() },
  { name: 'etcron_store_request_errors_total', type: 'counter',
    help: 'Unary store requests that failed, by gRPC method and code.',
    collect: () => m.storeRequestErrors.samples() },
  { name: 'etcron_api_requests_total', type: 'counter',
    help: 'Master API requests received, by method and route pattern.',
    collect: () => m.apiRequests.samples() },
];

/** Samples of one state, without the state label (it is in the family's name). */
function byState(all: readonly Sample[], state: string): Sample[] {
  return all
    .filter(([labels]) => labels['state'] === state)
    .map(([labels, value]) => [{ reason: labels['reason'] ?? 'unknown' }, value] as const);
}

/** The scheduler families plus a process's own (a master's leader gauge), as Prometheus text. */
export function renderSchedulerMetrics(extra: readonly Family[] = []): string {
  return renderFamilies([...FAMILIES, ...extra]);
}
