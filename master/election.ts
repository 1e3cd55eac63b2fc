import type { Etcd3, Lease, Watcher } from 'etcd3';
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
const REVOKE_TIMEOUT_MS = 2_000;
const CLEANUP_TIMEOUT_MS = 2_000;

/** Waits for `promise` at most `ms`; failures and timeouts are ignored (best-effort cleanup). */
function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => { clearTimeout(timer); resolve(); },
      () => { clearTimeout(timer); resolve(); },
    );
  });
}

type WakeReason = 'recheck' | 'lost' | 'stop';

export function startElection(options: ElectionOptions): Election {
  assert(options.prefix.endsWith('/'), 'election prefix must end with /');
  assert(options.ttlSeconds >= 2, 'election lease TTL must be at least 2 s');
  const log = options.logger;
  const retryDelayMs = options.retryDelayMs ?? 1_000;
  let stopped = false;
  let current: LeaderTerm | undefined;
  // One pending wake-up per campaign: the waiting loop parks on it, events resolve it.
  let wake: ((reason: WakeReason) => void) | undefined;
  const signal = (reason: WakeReason): void => {
    const w = wake;
    wake = undefined;
    w?.(reason);
  };
  let lostReason: string | undefined;

  // Leader work stops at the moment leadership is in doubt, before any cleanup that may wait on
  // the store (which could be frozen or unreachable).
  const depose = (reason: string): void => {
    const term = current;
    if (term === undefined) return;
    current = undefined;
    log.info({ key: term.key, rev: term.createRevision, reason }, 'leadership lost');
    options.onDeposed(term, reason);
  };
  const loseTerm = (reason: string): void => {
    if (lostReason !== undefined) return;
    lostReason = reason;
    depose(reason);
    signal('lost');
  };

  const stopWaiters = new Set<() => void>();
  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        stopWaiters.delete(done);
        timer.cancel();
        resolve();
      };
      const timer = options.clock.setTimer(ms, done);
      stopWaiters.add(done);
    });

  // Lease events of an earlier campaign must not end a later one.
  let generation = 0;

  async function campaignOnce(): Promise<void> {
    lostReason = undefined;
    const campaign = ++generation;
    const loseThis = (reason: string): void => {
      if (campaign === generation) loseTerm(reason);
    };
    const lease = options.client.lease(options.ttlSeconds, { autoKeepAlive: true });
    let validUntilMs = options.clock.monotonicMs() + options.ttlSeconds * 1000;
    let firedAtMs = options.clock.monotonicMs();
    lease.on('keepaliveFired', () => {
      firedAtMs = options.clock.monotonicMs();
    });
    // The lease is valid for TTL from when the answered keepalive was sent, not from the answer.
    lease.on('keepaliveSucceeded', () => {
      validUntilMs = firedAtMs + options.ttlSeconds * 1000;
    });
    lease.on('lost', (err) => loseThis(`lease lost: ${err.message}`));
    let watchdog: Timer | undefined;
    const checkDeadline = (): void => {
      if (options.clock.monotonicMs() > validUntilMs - STEP_DOWN_MARGIN_MS) {
        loseThis('keepalive deadline passed');
        return;
      }
      watchdog = options.clock.setTimer(WATCHDOG_INTERVAL_MS, checkDeadline);
    };
    let watcher: Watcher | undefined;
    let term: LeaderTerm | undefined;
    try {
      const leaseId = await lease.grant();
      checkDeadline();
      const key = `${options.prefix}${BigInt(leaseId).toString(16)}`;
      const created = await options.client
        .if(key, 'Create', '==', 0)
        .then(options.client.put(key).value(options.value).lease(leaseId))
        .else(options.client.get(key))
        .commit();
      const createRevision = created.succeeded
        ? Number(created.header.revision)
        : Number(created.responses[0]?.response_range.kvs[0]?.create_revision ?? NaN);
      assertSafeInteger(createRevision, 'campaign create revision');
      log.debug({ key, rev: createRevision }, 'campaign key created');
      term = { key, createRevision, leaseId };
      await waitForLeadership(term, (w) => {
        watcher = w;
      });
    } finally {
      watchdog?.cancel();
      depose(stopped ? 'resigned' : (lostReason ?? 'campaign ended'));
      await withTimeout(watcher?.cancel() ?? Promise.resolve(), CLEANUP_TIMEOUT_MS);
      await revokeQuietly(lease);
    }
  }

  async function waitForLeadership(
    term: LeaderTerm,
    setWatcher: (w: Watcher) => void,
  ): Promise<void> {
    const client = options.client;
    // Bounded by the lease: every iteration ends in stop, lost, or a recheck caused by a delete.
    for (;;) {
      if (stopped || lostReason !== undefined) return;
      const own = await client.get(term.key).exec();
      const headerRevision = Number(own.header.revision);
      if (own.kvs.length === 0) {
        loseTerm('campaign key deleted');
        return;
      }
      const before = await client
        .getAll()
        .prefix(options.prefix)
        .maxCreateRevision(term.createRevision - 1)
        .sort('Create', 'Descend')
        .limit(1)
        .revision(headerRevision)
        .exec();
      const predecessor = before.kvs[0]?.key.toString();
      if (predecessor === undefined && current !== term) {
        current = term;
        log.info({ key: term.key, rev: term.createRevision }, 'elected leader');
        options.onElected(term);
      }
      const woken = new Promise<WakeReason>((resolve) => {
        wake = resolve;
      });
      // Watch from just after what we read, so no delete between read and watch is missed.
      const watcher = await client
        .watch()
        .prefix(options.prefix)
        .startRevision(String(headerRevision + 1))
        .create();
      setWatcher(watcher);
      watcher.on('delete', (kv) => {
        const deleted = kv.key.toString();
        if (deleted === term.key) {
          loseTerm('campaign key deleted');
        } else if (deleted === predecessor) {
          signal('recheck');
        }
      });
      // On a watch error (e.g. compaction) re-read and watch again from the current revision.
      watcher.on('error', () => signal('recheck'));
      if (stopped) signal('stop');
      if (lostReason !== undefined) signal('lost');
      const reason = await woken;
      await withTimeout(watcher.cancel(), CLEANUP_TIMEOUT_MS);
      if (reason !== 'recheck') return;
    }
  }

  async function revokeQuietly(lease: Lease): Promise<void> {
    if (lease.revoked()) return;
    try {
      await lease.revoke({ deadline: Date.now() + REVOKE_TIMEOUT_MS });
    } catch {
      // The store may be unreachable; the lease then expires by its TTL.
      lease.release();
    }
  }

  const loop = (async (): Promise<void> => {
    while (!stopped) {
      try {
        await campaignOnce();
      } catch (err) {
        if (!stopped) log.warn({ err }, 'campaign failed; retrying');
      }
      if (!stopped) await sleep(retryDelayMs);
    }
  })();

  return {
    isLeader: () => current !== undefined,
    term: () => current,
    async stop(): Promise<void> {
      stopped = true;
      depose('resigned');
      signal('stop');
      for (const w of stopWaiters) w();
      await loop;
    },
  };
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
