import type { Etcd3, IKeyValue } from 'etcd3';
import type { Clock, Timer } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import { RUNS_PREFIX } from '../../shared/keys.js';
import { decodeRunRecord, isLiveState, isRetryable, type RunRecord } from '../../shared/history/records.js';
import type { JobSpec } from '../../shared/job/spec.js';
import { openWatchStream, type WatchStream } from '../../shared/etcd/watch-stream.js';
import { revisionOf } from '../../shared/etcd/txn.js';

/** How often the position in the run-record stream is saved. */
const CURSOR_SAVE_MS = 1_000;

/** A run that ended on its last attempt (no retry follows), as a run-record event shows it. */
export interface FinishedRun {
  readonly key: string;
  readonly run: RunRecord;
  readonly spec: JobSpec;
  /** The revision the final record was written at. */
  readonly revision: number;
}

export interface RunFollowerOptions {
  /** Where the follower's position is saved, so that the next leader resumes there. */
  readonly cursorKey: string;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The job's spec now, if the job exists. */
  readonly specOf: (job: string) => JobSpec | undefined;
  /** Whether this run concerns the follower at all (cheap, called for every finished run). */
  readonly wants: (finished: FinishedRun) => boolean;
  /** Acts on one finished run; must be idempotent. A rejection is retried until it succeeds. */
  readonly handle: (finished: FinishedRun) => Promise<void>;
}

export interface RunFollower {
  stop(): Promise<void>;
}

/**
 * The leader's view of runs as they end: a watch on /cron/runs/ from the revision saved under
 * `cursorKey` (a first leader starts at the current revision), each run that reached a final
 * state on its last attempt handed to `handle` in revision order. The cursor never moves past a
 * run not handled yet (a failure is retried with backoff), so a store outage or a leader change
 * delays the follower's work but loses none of it. Handling is at least once.
 */
export async function followFinishedRuns(client: Etcd3, options: RunFollowerOptions): Promise<RunFollower> {
  const { clock, logger: log, cursorKey } = options;
  let stopped = false;
  const timers = new Set<Timer>();
  const later = (delayMs: number, run: () => void): void => {
    const timer = clock.setTimer(delayMs, () => { timers.delete(timer); if (!stopped) run(); });
    timers.add(timer);
  };

  /** The finished run an event shows, if it is one: final, last attempt, not a rewrite. */
  const finishedRun = (kv: IKeyValue, previous: IKeyValue | undefined): FinishedRun | undefined => {
    const run = decodeRunRecord(kv.value.toString());
    if (run === undefined || isLiveState(run.state)) return undefined;
    const spec = options.specOf(run.job);
    if (spec === undefined || isRetryable(run.state, run.attempt, spec.retries)) return undefined; // another attempt follows
    const before = previous === undefined ? undefined : decodeRunRecord(previous.value.toString());
    if (before !== undefined && before.runId === run.runId && before.state === run.state) return undefined; // rewritten
    const finished = { key: kv.key.toString(), run, spec, revision: revisionOf(kv.mod_revision) };
    return options.wants(finished) ? finished : undefined;
  };

  const cursor = await client.kv.range({ key: Buffer.from(cursorKey) });
  const saved = cursor.kvs[0] === undefined ? undefined : Number((JSON.parse(cursor.kvs[0].value.toString()) as { revision?: unknown }).revision);
  const startRevision = saved !== undefined && Number.isSafeInteger(saved) ? saved + 1 : revisionOf(cursor.header.revision) + 1;
  let handled = startRevision - 1;
  let savedRevision = handled;
  let chain: Promise<void> = Promise.resolve();
  const watch: WatchStream = openWatchStream(client, RUNS_PREFIX, startRevision, { prevKv: true }, {
    events: (events) => {
      for (const event of events) {
        if (event.type !== 'Put') continue;
        const revision = revisionOf(event.kv.mod_revision);
        const found = finishedRun(event.kv, event.prev_kv ?? undefined);
        chain = chain.then(async () => {
          for (let pauseMs = 250; found !== undefined && !stopped; pauseMs = Math.min(10_000, pauseMs * 2)) {
            try {
              await options.handle(found);
              break;
            } catch (err) {
              log.warn({ err, job: found.run.job, slot: found.run.slot }, 'handling a finished run failed; retrying');
              await new Promise<void>((resolve) => later(pauseMs, resolve));
            }
          }
          if (!stopped) handled = Math.max(handled, revision);
        });
      }
    },
    onCompacted: (compactRevision) => {
      // The history between was compacted before it was read: its runs cannot be seen any more.
      log.warn({ from: handled + 1, to: compactRevision - 1 }, 'run records compacted before they were read; runs in between are skipped');
      handled = Math.max(handled, compactRevision - 1);
      watch.restart(compactRevision);
    },
  }, log);

  const saveCursor = (): void => {
    const revision = handled;
    if (revision > savedRevision) {
      client.put(cursorKey).value(JSON.stringify({ revision })).then(
        () => { savedRevision = Math.max(savedRevision, revision); },
        (err: unknown) => log.warn({ err }, 'saving the run-follower cursor failed'),
      );
    }
    later(CURSOR_SAVE_MS, saveCursor);
  };
  later(CURSOR_SAVE_MS, saveCursor);
  log.info({ fromRevision: startRevision, cursorKey }, 'following finished runs');

  return {
    async stop(): Promise<void> {
      stopped = true;
      for (const timer of timers) timer.cancel();
      watch.close();
      // Bounded: a handler waiting out a store outage is abandoned (the cursor stays before it).
      await Promise.race([chain, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (handled > savedRevision) await client.put(cursorKey).value(JSON.stringify({ revision: handled })).catch(() => undefined);
    },
  };
}
