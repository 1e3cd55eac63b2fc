// Issue 4, real faults on 3 members: concurrent clients read, write and CAS while the leader is
// SIGKILLed and restarted, then a follower. No acknowledged write may be lost, no member's
// revision may go back, and the history must pass checkers A and B
// (test/support/cluster-linearizability.ts). ETCRON_CLUSTER_SUBJECT=etcd runs it on real etcd.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import {
  checkLinearizable, checkRevisionOrder, type HistoryOp,
} from '../support/cluster-linearizability.js';
import { RevisionMonitor, summarize, verifyHistory, Workload } from '../support/cluster-workload.js';

const PREFIX = 'failover/';
const KEYS = ['failover/a', 'failover/b', 'failover/c', 'failover/d'];

describe(`3 ${clusterSubject()} members: SIGKILL of the leader and of a follower under load`, () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('loses no acknowledged write, never goes back, stays linearizable', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const monitor = new RevisionMonitor(cluster);
    const workload = new Workload(cluster, { clients: 6, keys: KEYS });
    let history;
    try {
      await workload.progress(40);

      const first = await cluster.leader();
      await cluster.kill(first.index);
      const second = await cluster.newLeader(first);
      expect(second.index).not.toBe(first.index);
      expect(second.raftTerm).toBeGreaterThan(first.raftTerm);
      await workload.progress(40); // writes succeed again with the old leader down
      await cluster.restart(first.index);
      await cluster.converged(20_000);
      await workload.progress(20);

      const leader = await cluster.leader();
      const follower = cluster.runningIndexes().find((i) => i !== leader.index);
      if (follower === undefined) throw new Error('no follower');
      await cluster.kill(follower);
      await workload.progress(40);
      const still = await cluster.leader();
      expect(cluster.state(follower)).toBe('down');
      await cluster.restart(follower);
      await cluster.converged(20_000);
      await workload.progress(20);
      expect(still.index).not.toBe(follower);
    } finally {
      history = await workload.stop();
    }
    const samples = await monitor.stop();
    console.log(`failover: ${summarize(history)}; ${samples.length} status samples`);

    const verification = await verifyHistory(cluster, PREFIX, history);
    expect(verification.logsDiffer).toEqual([]);
    expect(RevisionMonitor.backwards(samples)).toEqual([]);
    expect(verification.checkA.violations).toEqual([]);
    expect(verification.checkB.keys.filter((k) => k.verdict !== 'linearizable')).toEqual([]);
    // The workload really overlapped the faults: some calls failed or timed out.
    expect(history.some((op) => op.status !== 'ok')).toBe(true);
    expect(verification.log.length).toBeGreaterThan(100);

    // The checkers really look at this history: one read made stale must be caught by both.
    const mutant = staleMutant(history);
    expect(mutant).not.toBeNull();
    if (mutant !== null) {
      const mutated = history.map((op) => (op.id === mutant.id ? mutant : op));
      expect(checkRevisionOrder(mutated, verification.log).isOk).toBe(false);
      const present = new Set(verification.log.flatMap((e) => (e.value === null ? [] : [e.value])));
      expect(checkLinearizable(mutated, { presentValues: present }).verdict).toBe('not-linearizable');
    }
  }, 120_000);
});

/**
 * A copy of an acknowledged read that returns, instead, the value an earlier acknowledged put
 * wrote, where a second put to the key returned before the read was called and the first put
 * returned before the second was called: no linearization allows it.
 */
function staleMutant(history: readonly HistoryOp[]): HistoryOp | null {
  const puts = history.filter((op) => op.status === 'ok' && op.input.kind === 'put');
  for (const read of history) {
    if (read.status !== 'ok' || read.output?.kind !== 'get') continue;
    const before = puts.filter((p) => p.input.key === read.input.key && p.returnNs < read.callNs);
    for (const newer of before) {
      const older = before.find((p) => p.returnNs < newer.callNs);
      if (older === undefined || older.input.kind !== 'put' || older.output?.kind !== 'put') continue;
      const revision = older.output.revision;
      return { ...read, output: { kind: 'get', revision, value: older.input.value, version: 1, modRevision: revision } };
    }
  }
  return null;
}
