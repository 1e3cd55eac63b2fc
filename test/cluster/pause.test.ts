// Issue 4: SIGSTOP the leader for longer than the election timeout, then SIGCONT. The others must
// elect a new leader, the old one must step down once it runs again, and the history recorded
// across the pause must lose nothing and stay linearizable.
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster } from '../support/cluster-process.js';
import { waitFor } from '../support/ports.js';
import { RevisionMonitor, summarize, verifyHistory, Workload } from '../support/cluster-workload.js';

const PREFIX = 'pause/';
const KEYS = ['pause/a', 'pause/b', 'pause/c'];

describe('3 members: SIGSTOP of the leader past the election timeout', () => {
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    await cluster?.teardown();
  });

  it('elects a new leader, the old one steps down, nothing is lost', async () => {
    onTestFailed(() => { console.error(cluster.logTails(40)); });
    const monitor = new RevisionMonitor(cluster);
    const workload = new Workload(cluster, { clients: 5, keys: KEYS });
    let history;
    try {
      await workload.progress(40);
      const old = await cluster.leader();
      const pausedAt = Date.now();
      cluster.pause(old.index);
      const next = await cluster.newLeader(old, 15_000);
      expect(next.index).not.toBe(old.index);
      expect(next.raftTerm).toBeGreaterThan(old.raftTerm);
      // Followers count the election timeout from the last heartbeat before the pause, so a new
      // leader may appear slightly sooner; the pause itself must outlast an election timeout.
      await workload.progress(40);
      await waitFor('the pause to outlast an election timeout', () =>
        (Date.now() - pausedAt >= cluster.electionTimeoutMs ? true : undefined), cluster.electionTimeoutMs + 1000);
      expect(Date.now() - pausedAt).toBeGreaterThanOrEqual(cluster.electionTimeoutMs);
      cluster.resume(old.index);
      // Once running, the old leader learns the new term and follows the new leader. (etcd's
      // Status may name the new leader a moment before it reports the new term, so wait for both.)
      const rejoined = await waitFor('the old leader to follow the new one in its term', async () => {
        const status = await cluster.status(old.index);
        const isFollowing = status !== null && status.leaderId === next.memberId &&
          status.raftTerm >= next.raftTerm;
        return isFollowing ? status : undefined;
      }, 15_000);
      expect(rejoined.leaderId).not.toBe(rejoined.memberId);
      const after = await cluster.leader();
      expect(after.memberId).toBe(next.memberId);
      await workload.progress(30);
    } finally {
      history = await workload.stop();
    }
    const samples = await monitor.stop();
    console.log(`pause: ${summarize(history)}`);
    const verification = await verifyHistory(cluster, PREFIX, history);
    expect(verification.logsDiffer).toEqual([]);
    expect(RevisionMonitor.backwards(samples)).toEqual([]);
    expect(verification.checkA.violations).toEqual([]);
    expect(verification.checkB.keys.filter((k) => k.verdict !== 'linearizable')).toEqual([]);
  }, 120_000);
});
