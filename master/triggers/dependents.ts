import { createHash } from 'node:crypto';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { JOBS_PREFIX, TRIGGERS_CURSOR_KEY, slotId } from '../../shared/keys.js';
import { deserializeJobSpec } from '../../shared/job/parse.js';
import type { AfterOutcome, JobSpec } from '../../shared/job/spec.js';
import type { RunState } from '../../shared/history/records.js';
import { openPrefixCache } from '../../shared/etcd/prefix-cache.js';
import { runNowKey, type RunNowRequest } from '../control-keys.js';
import { followFinishedRuns, type FinishedRun } from '../run-follower/run-follower.js';

/**
 * How long a dependent run's request waits for a worker. A run-now from the CLI waits a minute;
 * a trigger longer, so that a short outage of every worker does not drop it.
 */
const TRIGGER_REQUEST_TTL_SECONDS = 600;

/** Which parent outcomes a dependent's `after.on` takes. */
function matches(on: AfterOutcome, state: RunState): boolean {
  const isSuccess = state === 'succeeded';
  const isFailure = state === 'failed' || state === 'timeout' || state === 'lost';
  return on === 'always' ? isSuccess || isFailure : on === 'success' ? isSuccess : isFailure;
}

export interface DependentsHandle {
  stats(): { triggered: number };
  stop(): Promise<void>;
}

/**
 * Dependent jobs (`after: {job, on}`), run by the leader: for each run of a parent that ended on
 * its last attempt as `on` asks (success: succeeded; failure: failed, timeout or lost; always:
 * either), each of its dependents gets one run-now request, named after the parent run so that
 * it is written once whoever leads (create_revision == 0). Its slot is the parent's end, and the
 * child's run record names the parent run (`triggeredBy`).
 */
export async function startDependents(client: Etcd3, options: { clock: Clock; logger: Logger }): Promise<DependentsHandle> {
  const { clock } = options;
  const log = options.logger.child({ component: 'dependents' });
  const specs = new Map<string, JobSpec>();
  /** parent → names of the jobs that run after it. */
  const children = new Map<string, Set<string>>();
  const unlink = (name: string): void => {
    const parent = specs.get(name)?.after?.job;
    if (parent !== undefined) children.get(parent)?.delete(name);
  };
  const jobs = await openPrefixCache(client, JOBS_PREFIX, {
    put: (key, kv) => {
      const name = key.slice(JOBS_PREFIX.length);
      unlink(name);
      const parsed = deserializeJobSpec(kv.value.toString());
      if (!parsed.ok) {
        specs.delete(name);
        return;
      }
      specs.set(name, parsed.spec);
      const parent = parsed.spec.after?.job;
      if (parent !== undefined) children.set(parent, (children.get(parent) ?? new Set()).add(name));
    },
    delete: (key) => {
      const name = key.slice(JOBS_PREFIX.length);
      unlink(name);
      specs.delete(name);
    },
  }, log);
  const stats = { triggered: 0 };

  const dependentsOf = ({ run }: FinishedRun): JobSpec[] => [...(children.get(run.job) ?? [])].flatMap((name) => {
    const child = specs.get(name);
    return child?.after !== undefined && !child.paused && matches(child.after.on, run.state) ? [child] : [];
  });

  const trigger = async (finished: FinishedRun): Promise<void> => {
    const { run } = finished;
    for (const child of dependentsOf(finished)) {
      const requestId = `after-${createHash('sha256').update(run.runId).digest('hex').slice(0, 24)}`;
      const key = runNowKey(child.name, requestId);
      const slotMs = run.endedAtMs ?? clock.nowMs();
      const request: RunNowRequest = { job: child.name, requestId, slot: slotId(slotMs), requestedAtMs: clock.nowMs(), triggeredBy: run.runId };
      const lease = client.lease(TRIGGER_REQUEST_TTL_SECONDS, { autoKeepAlive: false });
      try {
        const leaseId = await lease.grant();
        const written = await client.if(key, 'Create', '==', 0).then(client.put(key).value(JSON.stringify(request)).lease(leaseId)).commit();
        if (written.succeeded) {
          stats.triggered++;
          log.info({ job: child.name, after: run.runId, slot: request.slot }, 'dependent run requested');
        }
      } finally {
        lease.release();
      }
    }
  };

  const follower = await followFinishedRuns(client, {
    cursorKey: TRIGGERS_CURSOR_KEY, clock, logger: log,
    specOf: (job) => specs.get(job),
    wants: (finished) => dependentsOf(finished).length > 0,
    handle: trigger,
  });

  return {
    stats: () => ({ ...stats }),
    async stop(): Promise<void> {
      await follower.stop();
      await jobs.close();
    },
  };
}
