// clientv3's WithRequireLeader (`hasleader: true` metadata) on a member that has lost its leader:
// requests and new streams are refused with "etcdserver: no leader", and a watch opened earlier is
// ended (etcd 3.4 waits three election timeouts), so a client pinned to a partitioned member
// notices instead of waiting on silence. Watches opened without it stay open. Runs on etcd and on
// etcron (ETCRON_CLUSTER_SUBJECT).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';
import type { ResponseStream } from '../support/compat-client.js';

const REQUIRE_LEADER = { hasleader: 'true' };
const KEY = Buffer.from('require-leader/k');

function watchKey(stream: ResponseStream): void {
  stream.send({ create_request: { key: KEY, start_revision: '0' } });
}

describe('3 members: requests that require a leader on a member without one', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('are refused with "no leader", and a watch that required one is ended while others stay open', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const leader = await cluster.leader();
    const follower = cluster.runningIndexes().find((i) => i !== leader.index) ?? -1;
    const client = cluster.client(follower);

    const pinned = client.watch(REQUIRE_LEADER);
    const plain = client.watch();
    watchKey(pinned);
    watchKey(plain);
    await pinned.next(10_000);
    await plain.next(10_000);
    const put = await cluster.client(leader.index).put({ key: KEY, value: Buffer.from('v') });
    expect(put.ok).toBe(true);
    await pinned.until('the pinned watch to see the put', (r) => r.length >= 2);
    await plain.until('the plain watch to see the put', (r) => r.length >= 2);
    // With a leader, a request that requires one is served.
    const served = await client.call('KV', 'Range', { key: KEY, serializable: true }, 5_000, REQUIRE_LEADER);
    expect(served.ok).toBe(true);

    await Promise.all(cluster.runningIndexes().filter((i) => i !== follower).map((i) => cluster.kill(i)));
    const lostAt = Date.now();

    const refused = await waitFor('a range requiring a leader to be refused', async () => {
      const outcome = await client.call('KV', 'Range', { key: KEY, serializable: true }, 5_000, REQUIRE_LEADER);
      return outcome.ok ? undefined : outcome;
    }, 20_000, 100);
    expect(refused).toEqual({ ok: false, code: 'UNAVAILABLE', message: 'etcdserver: no leader' });
    // The same read without the requirement is still answered from this member's data.
    const stale = await client.call('KV', 'Range', { key: KEY, serializable: true }, 5_000);
    expect(stale.ok).toBe(true);

    const lateWatch = client.watch(REQUIRE_LEADER);
    await waitFor('a new watch requiring a leader to fail', () => (lateWatch.hasEnded() ? true : undefined), 10_000, 20);
    expect(lateWatch.failure()).toEqual({ ok: false, code: 'UNAVAILABLE', message: 'etcdserver: no leader' });
    const keepAlive = client.keepAliveStream(REQUIRE_LEADER);
    keepAlive.send({ ID: '1' });
    await waitFor('a keep-alive stream requiring a leader to fail', () => (keepAlive.hasEnded() ? true : undefined), 10_000, 20);
    expect(keepAlive.failure()).toEqual({ ok: false, code: 'UNAVAILABLE', message: 'etcdserver: no leader' });

    // Bounded: three election timeouts of checks, plus the election timeout it took to notice.
    await waitFor('the pinned watch to be ended', () => (pinned.hasEnded() ? true : undefined),
      5 * cluster.electionTimeoutMs + 10_000, 50);
    console.log(`require-leader: pinned watch ended ${Date.now() - lostAt} ms after the other members were killed`);
    expect(pinned.failure()).toEqual({ ok: false, code: 'UNAVAILABLE', message: 'etcdserver: no leader' });
    expect(plain.hasEnded(), 'a watch without the requirement stays open').toBe(false);
    for (const stream of [pinned, plain, lateWatch, keepAlive]) stream.end();
  }, 90_000);
});
