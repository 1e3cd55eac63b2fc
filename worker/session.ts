import type { Etcd3, ILeaseKeepAliveRequest, ILeaseKeepAliveResponse, IDuplexStream } from 'etcd3';
import type { Clock, Timer } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';
import { schedulerMetrics } from '../shared/metrics/scheduler-metrics.js';

/**
 * A worker's lease, kept alive by hand so that the worker knows, by its own monotonic clock, the
 * latest instant at which the store may still consider the lease alive: each confirmed keepalive
 * moves the deadline to (send time + TTL). Measuring from the send, not the reply, errs on the
 * early side. Once the deadline (minus a safety margin) passes without confirmation the session
 * is lost: every lock bound to the lease may already belong to someone else.
 */
export type SessionLossCause = 'deadline' | 'expired' | 'closed';

export interface Session {
  readonly leaseId: string;
  readonly ttlSeconds: number;
  isAlive(): boolean;
  /** Milliseconds until the local deadline; negative once lost. */
  remainingMs(): number;
  onLost(listener: (cause: SessionLossCause) => void): void;
  /** Called with remainingMs() whenever a renewal moves the deadline. */
  onRenewed(listener: (remainingMs: number) => void): void;
  /** Stops keepalives and revokes the lease (deleting every key bound to it). */
  close(): Promise<void>;
}

/** Margin kept below the deadline: absorbs rate differences between our clock and the store's. */
const DEADLINE_SAFETY_MS = 500;
const WATCHDOG_INTERVAL_MS = 100;

export async function openSession(client: Etcd3, ttlSeconds: number, clock: Clock, logger: Logger): Promise<Session> {
  const grantSentMs = clock.monotonicMs();
  const grant = await client.leaseClient.leaseGrant({ TTL: ttlSeconds });
  const leaseId = grant.ID;
  const grantedTtlSeconds = Number(grant.TTL);
  let deadlineMs = grantSentMs + grantedTtlSeconds * 1000;
  let alive = true;
  let stream: IDuplexStream<ILeaseKeepAliveRequest, ILeaseKeepAliveResponse> | undefined;
  let connecting = false;
  const pendingSends: number[] = [];
  const listeners: ((cause: SessionLossCause) => void)[] = [];
  const renewalListeners: ((remainingMs: number) => void)[] = [];
  let keepaliveTimer: Timer | undefined;
  let watchdogTimer: Timer | undefined;
  const log = logger.child({ leaseId });

  const lose = (cause: SessionLossCause): void => {
    if (!alive) return;
    alive = false;
    keepaliveTimer?.cancel();
    watchdogTimer?.cancel();
    stream?.end();
    stream = undefined;
    if (cause !== 'closed') schedulerMetrics.leaseLosses.inc({ cause });
    if (cause !== 'closed') log.warn({ cause, overdueMs: clock.monotonicMs() - deadlineMs }, 'lease lost');
    for (const listener of listeners) listener(cause);
  };

  const connect = (): void => {
    if (connecting || stream !== undefined || !alive) return;
    connecting = true;
    client.leaseClient.leaseKeepAlive().then((s) => {
      connecting = false;
      if (!alive) {
        s.end();
        return;
      }
      pendingSends.length = 0;
      stream = s;
      s.on('data', (response: ILeaseKeepAliveResponse) => {
        const sentMs = pendingSends.shift();
        const isExpired = Number(response.TTL) <= 0;
        schedulerMetrics.leaseRenewals.inc({ result: isExpired ? 'expired' : 'ok' });
        if (isExpired) return lose('expired');
        if (sentMs === undefined) return;
        deadlineMs = Math.max(deadlineMs, sentMs + Number(response.TTL) * 1000);
        const remainingMs = deadlineMs - DEADLINE_SAFETY_MS - clock.monotonicMs();
        for (const listener of renewalListeners) listener(remainingMs);
      });
      const drop = (err?: unknown): void => {
        if (stream === s) stream = undefined;
        if (err !== undefined && alive) log.debug({ err }, 'keepalive stream failed');
      };
      s.on('error', drop);
      s.on('end', () => drop());
      sendKeepalive();
    }).catch((err: unknown) => {
      connecting = false;
      log.debug({ err }, 'keepalive stream could not open');
    });
  };

  const sendKeepalive = (): void => {
    if (!alive) return;
    if (stream === undefined) return connect();
    pendingSends.push(clock.monotonicMs());
    stream.write({ ID: leaseId });
  };

  const scheduleKeepalive = (): void => {
    keepaliveTimer = clock.setTimer((grantedTtlSeconds * 1000) / 3, () => {
      sendKeepalive();
      if (alive) scheduleKeepalive();
    });
  };
  const scheduleWatchdog = (): void => {
    watchdogTimer = clock.setTimer(WATCHDOG_INTERVAL_MS, () => {
      if (clock.monotonicMs() >= deadlineMs - DEADLINE_SAFETY_MS) return lose('deadline');
      scheduleWatchdog();
    });
  };
  connect();
  scheduleKeepalive();
  scheduleWatchdog();
  log.info({ ttlSeconds: grantedTtlSeconds }, 'lease granted');

  return {
    leaseId,
    ttlSeconds: grantedTtlSeconds,
    isAlive: () => alive && clock.monotonicMs() < deadlineMs - DEADLINE_SAFETY_MS,
    remainingMs: () => (alive ? deadlineMs - DEADLINE_SAFETY_MS - clock.monotonicMs() : -1),
    onLost: (listener) => { listeners.push(listener); },
    onRenewed: (listener) => { renewalListeners.push(listener); },
    close: async () => {
      lose('closed');
      await client.leaseClient.leaseRevoke({ ID: leaseId }).catch(() => undefined);
    },
  };
}
