import { RUN_NOW_PREFIX } from '../shared/keys.js';

export { RUN_NOW_PREFIX };

/**
 * Requests from the CLI to workers, written by the master and watched by workers (the prefix is
 * shared/keys.ts's). Kill needs no key: the master deletes the run's lock, which the worker
 * treats as a kill.
 *
 *   /cron/control/run/<job>/<requestId>    RunNowRequest JSON: run the job once, now
 *
 * A request is bound to a short lease, so an unanswered one disappears by itself instead of
 * piling up. A run-now names its slot (the request instant, whole milliseconds): workers claim it
 * like any slot, so the per-(job, slot) run record still guarantees at most one start.
 */
export const CONTROL_PREFIX = '/cron/control/';
/** How long a control request stays visible to workers. */
export const CONTROL_REQUEST_TTL_SECONDS = 60;

export interface RunNowRequest {
  readonly job: string;
  readonly requestId: string;
  /** The slot the manual run takes: the request instant as toISOString prints it. */
  readonly slot: string;
  readonly requestedAtMs: number;
  /** Set when a parent run's end requested it (a dependent job): that run's id. */
  readonly triggeredBy?: string;
}

export function runNowKey(job: string, requestId: string): string {
  return `${RUN_NOW_PREFIX}${job}/${requestId}`;
}
