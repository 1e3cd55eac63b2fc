import { revokeQuietly } from '../shared/etcd/revoke-quietly.js';
import type { Etcd3, Lease } from 'etcd3';
import { masterKey } from '../shared/keys.js';
import type { Clock, Timer } from '../shared/clock.js';
import type { Logger } from '../shared/log.js';

/**
 * What a master announces under /cron/masters/<id>: the etcd service-registration pattern. The
 * key is bound to the master's own lease, so it lives exactly while the master keeps the lease
 * alive: revoked on a clean stop, expired one TTL after a crash.
 */
export interface MasterRegistration {
  readonly id: string;
  /** The URL clients should use (--advertise-api-url), not necessarily the listen address. */
  readonly apiUrl: string;
  readonly startedAtMs: number;
  readonly hostname: string;
  readonly pid: number;
  /** Set while this master leads: when its current term began (its own clock). */
  readonly leaderSinceMs?: number;
}

export interface Registrar {
  /** Re-publishes the registration with (or without) the start of a leadership term. */
  setLeaderSince(ms: number | undefined): void;
  /** Revokes the lease, which deletes the key at once. */
  stop(): Promise<void>;
}

export interface RegistrationOptions {
  readonly client: Etcd3;
  readonly registration: MasterRegistration;
  readonly ttlSeconds: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Delay before registering again after the lease was lost or the store refused. */
  readonly retryDelayMs?: number;
}


/** Registers now (the first put is awaited, so the master is discoverable once it says it serves). */
export async function startRegistration(options: RegistrationOptions): Promise<Registrar> {
  const registrar = new LeasedRegistration(options);
  await registrar.registerOnce();
  void registrar.keepRegistered();
  return registrar;
}

class LeasedRegistration implements Registrar {
  private value: MasterRegistration;
  private lease: Lease | undefined;
  private isStopped = false;
  /** Resolves the wait of the current registration: lease lost or stop. */
  private wake: (() => void) | undefined;
  private retryTimer: Timer | undefined;
  /** Updates are written one after another, so an older value never lands last. */
  private writes: Promise<void> = Promise.resolve();
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly options: RegistrationOptions) {
    this.value = options.registration;
  }

  async registerOnce(): Promise<void> {
    const lease = this.options.client.lease(this.options.ttlSeconds, { autoKeepAlive: true });
    lease.on('lost', (err) => {
      this.options.logger.warn({ err }, 'registration lease lost; registering again');
      if (this.lease === lease) this.signal();
    });
    try {
      await lease.put(masterKey(this.value.id)).value(JSON.stringify(this.value)).exec();
    } catch (err) {
      await revokeQuietly(lease);
      throw err;
    }
    this.lease = lease;
    this.options.logger.info({ key: masterKey(this.value.id), apiUrl: this.value.apiUrl }, 'master registered');
  }

  /** Bounded per iteration by the lease: each ends with the lease lost (then retried) or a stop. */
  keepRegistered(): Promise<void> {
    this.loop = (async () => {
      while (!this.isStopped) {
        if (this.lease !== undefined) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          const lost = this.lease;
          this.lease = undefined;
          if (lost !== undefined) await revokeQuietly(lost);
          if (this.isStopped) return;
        }
        await this.sleep(this.options.retryDelayMs ?? 1_000);
        if (this.isStopped) return;
        await this.registerOnce().catch((err: unknown) => {
          this.options.logger.warn({ err }, 'master registration failed; retrying');
        });
      }
    })();
    return this.loop;
  }

  setLeaderSince(ms: number | undefined): void {
    const { leaderSinceMs: _previous, ...rest } = this.value;
    this.value = ms === undefined ? rest : { ...rest, leaderSinceMs: ms };
    const value = JSON.stringify(this.value);
    this.writes = this.writes.then(async () => {
      const lease = this.lease;
      if (lease === undefined || this.isStopped) return; // the next registration writes the latest value
      await lease.put(masterKey(this.value.id)).value(value).exec().catch((err: unknown) => {
        this.options.logger.warn({ err }, 'could not update the master registration');
      });
    });
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    this.retryTimer?.cancel();
    this.signal();
    await this.writes;
    await this.loop;
    const lease = this.lease;
    this.lease = undefined;
    if (lease !== undefined) await revokeQuietly(lease);
  }

  private signal(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.retryTimer = this.options.clock.setTimer(ms, resolve);
      this.wake = resolve;
    });
  }
}

