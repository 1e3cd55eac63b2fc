import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import { JOBS_PREFIX } from '../shared/keys.js';
import { compileSchedule } from '../shared/job/schedule.js';
import type { JobSpec } from '../shared/job/spec.js';
import { nextSlotMs } from './planner/slots.js';
import { ok, type RequestContext, type Route, type RouteResult } from './http-server.js';
import { jobView, revisionOf } from './job-routes.js';
import { findRun } from './inspect-routes.js';
import { ApiError } from './errors.js';

/** Jobs the overview describes in full; past this it lists the first ones and says so. */
export const OVERVIEW_JOBS_MAX = 1_000;
/** Latest-run reads in flight at once (one small range each). */
const LAST_RUN_READS_CONCURRENT = 16;
const NEXT_SLOTS_MAX = 10;

interface LastRun {
  readonly slot: string;
  readonly runId: string;
  readonly state: string;
  readonly worker?: string;
  readonly startedAtMs?: number;
  readonly endedAtMs?: number;
  readonly reason?: string;
}

export interface JobOverview {
  readonly name: string;
  readonly spec: JobSpec | null;
  readonly invalid?: string;
  readonly modRevision: number;
  /** Upcoming slot instants (ISO), jitter not included; empty for a schedule with no more. */
  readonly nextSlots: readonly string[];
  readonly lastRun: LastRun | null;
}

function upcoming(spec: JobSpec | null, nowMs: number, count: number): string[] {
  if (spec === null) return [];
  const compiled = compileSchedule(spec.schedule, spec.timezone);
  if (!compiled.ok) return [];
  const slots: string[] = [];
  let after = nowMs;
  for (let i = 0; i < count; i++) {
    const next = nextSlotMs(compiled.schedule, after);
    if (next === null) break;
    slots.push(new Date(next).toISOString());
    after = next;
  }
  return slots;
}

async function lastRunOf(client: Etcd3, job: string): Promise<LastRun | null> {
  const run = (await findRun(client, job, 'latest'))?.value;
  if (run === undefined) return null;
  const { slot, runId, state, worker, startedAtMs, endedAtMs, reason } = run;
  return {
    slot, runId, state,
    ...(worker === undefined ? {} : { worker }),
    ...(startedAtMs === undefined ? {} : { startedAtMs }),
    ...(endedAtMs === undefined ? {} : { endedAtMs }),
    ...(reason === undefined ? {} : { reason }),
  };
}

/**
 * GET /v1/overview?next=N: every job with its next N slots and its latest run, in one answer
 * (the web UI's jobs page). Reads one page of jobs, then the latest run of each.
 */
async function overview(
  client: Etcd3,
  clock: Clock,
  context: RequestContext,
): Promise<RouteResult> {
  const nextRaw = context.query.get('next') ?? '3';
  const next = Number(nextRaw);
  if (!/^\d+$/.test(nextRaw) || next > NEXT_SLOTS_MAX) {
    throw new ApiError('invalid-request', `next must be an integer from 0 to ${NEXT_SLOTS_MAX}`);
  }
  const res = await client.getAll().prefix(JOBS_PREFIX).sort('Key', 'Ascend')
    .limit(OVERVIEW_JOBS_MAX + 1).exec();
  const kvs = res.kvs.slice(0, OVERVIEW_JOBS_MAX);
  const nowMs = clock.nowMs();
  const jobs: JobOverview[] = [];
  for (let i = 0; i < kvs.length; i += LAST_RUN_READS_CONCURRENT) {
    const batch = kvs.slice(i, i + LAST_RUN_READS_CONCURRENT).map(async (kv) => {
      const view = jobView(kv);
      return {
        name: view.name,
        spec: view.spec,
        ...(view.invalid === undefined ? {} : { invalid: view.invalid }),
        modRevision: view.modRevision,
        nextSlots: upcoming(view.spec, nowMs, next),
        lastRun: await lastRunOf(client, view.name),
      };
    });
    jobs.push(...(await Promise.all(batch)));
  }
  return ok({
    revision: revisionOf(res.header.revision, 'revision'),
    jobs,
    truncated: res.kvs.length > OVERVIEW_JOBS_MAX,
  });
}

export function overviewRoute(client: Etcd3, clock: Clock): Route {
  return {
    method: 'GET',
    path: '/v1/overview',
    handler: (context) => overview(client, clock, context),
  };
}
