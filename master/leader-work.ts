import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { startHousekeeping, type HousekeepingHealth } from './housekeeping/index.js';
import type { LeaderTerm } from './election.js';
import { startAlerter } from './alerts/alerter.js';
import { startDependents } from './triggers/dependents.js';

/** Work only the elected master does; stop() returns once none of it runs any more. */
export interface LeaderWork {
  /** Health of the leader's housekeeping, for `etcron status`. */
  health?(): HousekeepingHealth;
  stop(): Promise<void>;
}

/** Starts the leader's housekeeping (reaping, trimming, catch-up bookkeeping) for one term. */
export function startLeaderWork(client: Etcd3, term: LeaderTerm, clock: Clock, logger: Logger): LeaderWork {
  const log = logger.child({ component: 'leader', rev: term.createRevision });
  const housekeeping = startHousekeeping(client, { clock, logger: log });
  // Alerts and dependent jobs start once the store answers; a failed start is retried while the
  // term lasts.
  const stoppers: (() => Promise<void>)[] = [];
  let stopped = false;
  const startWithRetry = (what: string, start: () => Promise<{ stop(): Promise<void> }>, pauseMs = 250): void => {
    start().then((handle) => {
      if (stopped) void handle.stop();
      else stoppers.push(() => handle.stop());
    }, (err: unknown) => {
      log.warn({ err }, `starting ${what} failed; retrying`);
      if (!stopped) clock.setTimer(pauseMs, () => { if (!stopped) startWithRetry(what, start, Math.min(10_000, pauseMs * 2)); });
    });
  };
  startWithRetry('alerts', () => startAlerter(client, { clock, logger: log }));
  startWithRetry('dependent jobs', () => startDependents(client, { clock, logger: log }));
  log.info('leader work started');
  return {
    health: () => housekeeping.health(),
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all([housekeeping.stop(), ...stoppers.map((stop) => stop())]);
      log.info('leader work stopped');
    },
  };
}
