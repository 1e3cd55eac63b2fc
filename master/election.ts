import { revokeQuietly } from '../shared/etcd/revoke-quietly.js';
import type { Etcd3, Lease } from 'etcd3';
import { openWatchStream } from '../shared/etcd/watch-stream.js';
import type { Logger } from '../shared/log.js';
import type { Clock, Timer } from '../shared/clock.js';
import { assert, assertSafeInteger } from '../shared/assert.js';

/**
 * Leader election among masters with etcd's lease + txn + watch recipe (the same one as
 * etcd's clientv3/concurrency election):
 *
 * 1. Grant a lease and keep it alive.
 * 2. Create `<prefix><leaseIdHex>` bound to that lease in a txn guarded by create_revision == 0.
 *    The key's create_revision is this candidate's place in the queue.
 * 3. The candidate with the lowest create_revision leads. Everyone else watches the prefix and
 *    re-checks when a key below theirs is deleted, so only the next in line reacts (no herd).
 * 4. Leadership ends when the key disappears: lease expiry, revoke on resign, or someone deleting
 *    it. The leader also steps down on its own monotonic deadline when keepalives stop being
 *    answered, before the store could expire the lease and elect another master.
 *
 * Worked example: A creates its key at rev 10, B at rev 12. A leads; B watches. A is SIGKILLed,
 * its lease expires after TTL, the store deletes A's key (rev 20), B sees the delete, finds no key
 * with create_revision < 12 and becomes leader.
 */

export interface LeaderTerm {
  /** The campaign key; it exists exactly as long as this leadership. */
  readonly key: string;
  /** Create revision of the campaign key: rises with every new leader, usable as a fence. */
  readonly createRevision: number;
  readonly leaseId: string;
}

export interface ElectionOptions {
  readonly client: Etcd3;
  /** Campaign keys live under this prefix; it must end with '/'. */
  readonly prefix: string;
  /** Published in the campaign key so others can see who leads (JSON from the master). */
  readonly value: string;
  readonly ttlSeconds: number;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Called once per term, after this master became leader. */
  readonly onElected: (term: LeaderTerm) => void;
  /** Called once per term, when leadership is lost or given up; stop leader work here. */
  readonly onDeposed: (term: LeaderTerm, reason: string) => void;
  /** Delay between failed campaigns (store unreachable, lease lost). */
  readonly retryDelayMs?: number;
}

export interface Election {
  isLeader(): boolean;
  term(): LeaderTerm | undefined;
  /** Resigns (revokes the lease, so a standby takes over at once) and stops campaigning. */
  stop(): Promise<void>;
}

/** Margin kept before the lease's deadline: step down early rather than overlap a new leader. */
const STEP_DOWN_MARGIN_MS = 500;
const WATCHDOG_INTERVAL_MS = 200;
/** Candidates re-read the queue this often even without a watch event (a dead watch is silent). */
const RECHECK_INTERVAL_MS = 5_000;

type WakeReason = 'recheck' | 'lost' | 'stop';

export function startElection(options: ElectionOptions): Election {
  assert(options.prefix.endsWith('/'), 'election prefix must end with /');
  assert(options.ttlSeconds >= 2, 'election lease TTL must be at least 2 s');
  const candidate = new Candidate(options);
  const loop = candidate.run();
  return {
    isLeader: () => candidate.term() !== undefined,
    term: () => candidate.term(),
    async stop(): Promise<void> {
      candidate.stop();
      await loop;
    },
  };
}

/** One master's campaigns, one after another, until stopped. */
class Candidate {
  private readonly log: Logger;
  private isStopped = false;
  /** The term this candidate leads; undefined while standing by. */
  private current: LeaderTerm | undefined;
  /** Set once per campaign, when its leadership (or its chance of it) is gone. */
  private lostReason: string | undefined;
  /** One pending wake-up per campaign: the waiting loop parks on it, events resolve it. */
  private wake: ((reason: WakeReason) => void) | undefined;
  /** Lease events of an earlier campaign must not end a later one. */
  private generation = 0;
  private readonly stopWaiters = new Set<() => void>();

  constructor(private readonly options: ElectionOptions) {
    this.log = options.logger;
  }

  term(): LeaderTerm | undefined {
    return this.current;
  }

  stop(): void {
    this.isStopped = true;
    this.depose('resigned');
    this.signal('stop');
    for (const w of this.stopWaiters) w();
  }

  async run(): Promise<void> {
    const retryDelayMs = this.options.retryDelayMs ?? 1_000;
    while (!this.isStopped) {
      try {
        await this.campaignOnce();
      } catch (err) {
        if (!this.isStopped) this.log.warn({ err }, 'campaign failed; retrying');
      }
      if (!this.isStopped) await this.sleep(retryDelayMs);
    }
  }

  private signal(reason: WakeReason): void {
    const w = this.wake;
    this.wake = undefined;
    w?.(reason);
  }

  /**
   * Leader work stops at the moment leadership is in doubt, before any cleanup that may wait on
   * the store (which could be frozen or unreachable).
   */
  private depose(reason: string): void {
    const term = this.current;
    if (term === undefined) return;
    this.current = undefined;
    this.log.info({ key: term.key, rev: term.createRevision, reason }, 'leadership lost');
    this.options.onDeposed(term, reason);
  }

  private loseTerm(reason: string): void {
    if (this.lostReason !== undefined) return;
    this.lostReason = reason;
    this.depose(reason);
    this.signal('lost');
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.stopWaiters.delete(done);
        timer.cancel();
        resolve();
      };
      const timer = this.options.clock.setTimer(ms, done);
      this.stopWaiters.add(done);
    });
  }

  private async campaignOnce(): Promise<void> {
    this.lostReason = undefined;
    const campaign = ++this.generation;
    const loseThis = (reason: string): void => {
      if (campaign === this.generation) this.loseTerm(reason);
    };
    const lease = this.options.client.lease(this.options.ttlSeconds, { autoKeepAlive: true });
    const watchdog = this.watchLeaseDeadline(lease, loseThis);
    try {
      const leaseId = await lease.grant();
      watchdog.start();
      const term = await this.createCampaignKey(leaseId);
      await this.waitForLeadership(term);
    } finally {
      watchdog.cancel();
      this.depose(this.isStopped ? 'resigned' : (this.lostReason ?? 'campaign ended'));
      await revokeQuietly(lease);
    }
  }

  /**
   * Calls `lose` once the lease may have expired at the store by this process's own monotonic
   * clock: a lease is valid for TTL from when its last answered keepalive was sent, not from the
   * answer, and etcd3 itself reports a loss only after twice the TTL.
   */
  private watchLeaseDeadline(lease: Lease, lose: (reason: string) => void): { start(): void; cancel(): void } {
    const clock = this.options.clock;
    const ttlMs = this.options.ttlSeconds * 1000;
    let validUntilMs = clock.monotonicMs() + ttlMs;
    let firedAtMs = clock.monotonicMs();
    let timer: Timer | undefined;
    let isCancelled = false;
    lease.on('keepaliveFired', () => {
      firedAtMs = clock.monotonicMs();
    });
    lease.on('keepaliveSucceeded', () => {
      validUntilMs = firedAtMs + ttlMs;
    });
    lease.on('lost', (err) => lose(`lease lost: ${err.message}`));
    const check = (): void => {
      if (isCancelled) return;
      if (clock.monotonicMs() > validUntilMs - STEP_DOWN_MARGIN_MS) {
        lose('keepalive deadline passed');
        return;
      }
      timer = clock.setTimer(WATCHDOG_INTERVAL_MS, check);
    };
    return {
      start: check,
      cancel: () => {
        isCancelled = true;
        timer?.cancel();
      },
    };
  }

  private async createCampaignKey(leaseId: string): Promise<LeaderTerm> {
    const { client, prefix, value } = this.options;
    const key = `${prefix}${BigInt(leaseId).toString(16)}`;
    const created = await client
      .if(key, 'Create', '==', 0)
      .then(client.put(key).value(value).lease(leaseId))
      .else(client.get(key))
      .commit();
    const createRevision = created.succeeded
      ? Number(created.header.revision)
      : Number(created.responses[0]?.response_range.kvs[0]?.create_revision ?? NaN);
    assertSafeInteger(createRevision, 'campaign create revision');
    this.log.debug({ key, rev: createRevision }, 'campaign key created');
    return { key, createRevision, leaseId };
  }

  /** Leads when no key below ours exists; otherwise waits for the one just below to go. */
  private async waitForLeadership(term: LeaderTerm): Promise<void> {
    const { client, prefix } = this.options;
    // Bounded by the lease: every iteration ends in stop, lost, or a recheck caused by a delete.
    for (;;) {
      if (this.isStopped || this.lostReason !== undefined) return;
      const own = await client.get(term.key).exec();
      const headerRevision = Number(own.header.revision);
      if (own.kvs.length === 0) {
        this.loseTerm('campaign key deleted');
        return;
      }
      const before = await client.getAll().prefix(prefix).maxCreateRevision(term.createRevision - 1)
        .sort('Create', 'Descend').limit(1).revision(headerRevision).exec();
      const predecessor = before.kvs[0]?.key.toString();
      if (predecessor === undefined && this.current !== term) {
        this.current = term;
        this.log.info({ key: term.key, rev: term.createRevision }, 'elected leader');
        this.options.onElected(term);
      }
      const woken = new Promise<WakeReason>((resolve) => {
        this.wake = resolve;
      });
      // Watch from just after what we read, so no delete between read and watch is missed. The
      // watch has its own resuming stream (shared/etcd/watch-stream.ts), and a periodic re-read
      // bounds the wait even if a watch died silently.
      const watch = openWatchStream(client, prefix, headerRevision + 1, {}, {
        events: (events) => {
          for (const event of events) {
            if (event.type !== 'Delete') continue;
            const deleted = event.kv.key.toString();
            if (deleted === term.key) this.loseTerm('campaign key deleted');
            else if (deleted === predecessor) this.signal('recheck');
          }
        },
        onCompacted: () => this.signal('recheck'),
      }, this.log);
      const recheck = this.options.clock.setTimer(RECHECK_INTERVAL_MS, () => this.signal('recheck'));
      if (this.isStopped) this.signal('stop');
      if (this.lostReason !== undefined) this.signal('lost');
      const reason = await woken;
      recheck.cancel();
      watch.close();
      if (reason !== 'recheck') return;
    }
  }
}


/** Reads who leads now: the campaign key with the lowest create revision. */
export async function readLeader(
  client: Etcd3,
  prefix: string,
): Promise<{ key: string; value: string; createRevision: number } | undefined> {
  const res = await client.getAll().prefix(prefix).sort('Create', 'Ascend').limit(1).exec();
  const kv = res.kvs[0];
  if (kv === undefined) return undefined;
  return { key: kv.key.toString(), value: kv.value.toString(), createRevision: Number(kv.create_revision) };
}
