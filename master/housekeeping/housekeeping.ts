import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';

export interface HousekeepingOptions {
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** How often history is trimmed and missed slots are recorded. Default 1 s. */
  readonly intervalMs?: number;
}

export interface HousekeepingHandle {
  stop(): Promise<void>;
}

/** Run by the elected master leader; stop it when leadership is lost. */
export function startHousekeeping(client: Etcd3, options: HousekeepingOptions = {}): HousekeepingHandle {
  void client;
  void options;
  return { stop: async () => {} };
}
