import type { Etcd3 } from 'etcd3';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { startHousekeeping, type HousekeepingHealth } from './housekeeping/index.js';
import type { LeaderTerm } from './election.js';
import { startAlerter, type AlerterHandle } from './alerts/alerter.js';

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
  // Alerts start once the store answers; a failed start is retried while this term lasts.
  let alerter: AlerterHandle | undefined;
  let stopped = false;
  const startAlerts = (pauseMs: number): void => {
    startAlerter(client, { clock, logger: log }).then((handle) => {
      if (stopped) void handle.stop();
      else alerter = handle;
    }, (err: unknown) => {
      log.warn({ err }, 'starting alerts failed; retrying');
      if (!stopped) clock.setTimer(pauseMs, () => { if (!stopped) startAlerts(Math.min(10_000, pauseMs * 2)); });
    });
  };
  startAlerts(250);
  log.info('leader work started');
  return {
    health: () => housekeeping.health(),
    async stop(): Promise<void> {
      stopped = true;
      await Promise.all([housekeeping.stop(), alerter?.stop()]);
      log.info('leader work stopped');
    },
  };
}
