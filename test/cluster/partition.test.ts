// Issue 4: network partitions through test-owned peer proxies (test/support/cluster-partition.ts).
// The leader is cut off from both followers while clients keep reading and writing on every
// member, the isolated one included: the majority elects a new leader, the isolated leader
// steps down (CheckQuorum) and serves no stale linearizable read; after healing it follows the
// new leader. Then a follower is cut off. Nothing acknowledged is lost, revisions never go back,
// and the history passes checkers A and B (shared/notes/reliability.md §3-4).
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { bytes, child, int, list } from '../support/compat-client.js';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';
import { RevisionMonitor, summarize, verifyHistory, Workload } from '../support/cluster-workload.js';

const PREFIX = 'partition/';
const KEYS = ['partition/a', 'partition/b', 'partition/c', 'partition/d'];

describe(`3 ${clusterSubject()} members: leader and follower cut off by a partition`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3, withPeerProxies: true });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('elects on the majority side, serves nothing stale on the minority side, loses nothing', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const monitor = new RevisionMonitor(cluster);
    const workload = new Workload(cluster, { clients: 6, keys: KEYS });
    let history;
    try {
      await workload.progress(40);
      const old = await cluster.leader();
      cluster.isolate(old.index);
      const next = await cluster.newLeader(old, 20_000);
      expect(next.raftTerm).toBeGreaterThan(old.raftTerm);
      // CheckQuorum: the cut-off leader stops calling itself leader.
      await waitFor('the isolated leader to step down', async () => {
        const status = await cluster.status(old.index);
        return status !== null && status.leaderId !== old.memberId ? true : undefined;
      }, 10 * cluster.electionTimeoutMs);
      await workload.progress(40);

      // A write on the majority side, then a linearizable read on the isolated member: an
      // error or the new value, never the old one.
      const key = Buffer.from('partition-probe'); // outside PREFIX: not part of the history
      const put = await cluster.client(next.index).call('KV', 'Put', { key, value: Buffer.from('after-cut') }, 10_000);
      expect(put.ok).toBe(true);
      const read = await cluster.client(old.index).call('KV', 'Range', { key }, 3_000);
      if (read.ok) {
        expect(bytes(list(read.value, 'kvs')[0], 'value').toString()).toBe('after-cut');
      }
      // The cut was real: the isolated member's log stayed behind the majority's.
      const [isolated, majority] = await Promise.all([cluster.status(old.index), cluster.status(next.index)]);
      expect(isolated?.raftIndex ?? 0).toBeLessThan(majority?.raftIndex ?? 0);

      cluster.heal();
      await cluster.converged(20_000);
      await workload.progress(20);

      const leader = await cluster.leader();
      const follower = cluster.runningIndexes().find((i) => i !== leader.index) as number;
      cluster.isolate(follower);
      await workload.progress(40);
      const during = await cluster.leader();
      expect(during.index).not.toBe(follower);
      cluster.heal();
      await cluster.converged(20_000);
      await workload.progress(20);
      expect(int(child(put.ok ? put.value : null, 'header'), 'revision')).toBeGreaterThan(0);
    } finally {
      cluster.heal();
      history = await workload.stop();
    }
    const samples = await monitor.stop();
    console.log(`partition: ${summarize(history)}`);
    expect(cluster.unidentifiedPeerConnections()).toBe(0);
    const verification = await verifyHistory(cluster, PREFIX, history);
    expect(verification.logsDiffer).toEqual([]);
    expect(RevisionMonitor.backwards(samples)).toEqual([]);
    expect(verification.checkA.violations).toEqual([]);
    expect(verification.checkB.keys.filter((k) => k.verdict !== 'linearizable')).toEqual([]);
  }, 150_000);
});
