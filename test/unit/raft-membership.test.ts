import { describe, expect, it } from 'vitest';
import { TestCluster } from '../sim/raft-test-cluster.js';

/** Runtime membership in the Raft core: learners, promotion, removal, one change at a time. */
describe('raft membership changes', () => {
  function electedCluster(): TestCluster {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.propose(1n, 'before');
    cluster.stabilize();
    return cluster;
  }

  it('a learner joins, catches up, and does not count for commit', () => {
    const cluster = electedCluster();
    cluster.addMember(4n);
    expect(cluster.proposeConfChange(1n, { type: 'add-learner', id: 4n }).ok).toBe(true);
    cluster.stabilize();
    cluster.propose(1n, 'after');
    cluster.stabilize();
    expect(cluster.member(4n).applied).toEqual(['before', 'conf add-learner 4', 'after']);
    for (const id of [1n, 2n, 3n, 4n]) expect(cluster.member(id).confState).toEqual({ voters: [1n, 2n, 3n], learners: [4n] });
    // The leader and the learner alone are not a quorum of the three voters.
    cluster.isolate(2n);
    cluster.isolate(3n);
    const commit = cluster.status(1n).commit;
    cluster.propose(1n, 'stuck');
    cluster.stabilize();
    expect(cluster.status(1n).commit).toBe(commit);
    // A learner never campaigns.
    cluster.tick(4n, 100);
    expect(cluster.status(4n).role).toBe('follower');
  });

  it('a promoted learner counts: with it the leader commits while one old voter is away', () => {
    const cluster = electedCluster();
    cluster.addMember(4n);
    cluster.proposeConfChange(1n, { type: 'add-learner', id: 4n });
    cluster.stabilize();
    cluster.proposeConfChange(1n, { type: 'add-voter', id: 4n });
    cluster.stabilize();
    expect(cluster.member(2n).confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    cluster.isolate(3n);
    const commit = cluster.status(1n).commit;
    cluster.propose(1n, 'three of four');
    cluster.stabilize();
    expect(cluster.status(1n).commit).toBeGreaterThan(commit);
    expect(cluster.member(4n).applied.at(-1)).toBe('three of four');
  });

  it('admits one conf change at a time: a second waits until the first is applied', () => {
    const cluster = electedCluster();
    cluster.addMember(4n);
    cluster.addMember(5n);
    expect(cluster.proposeConfChange(1n, { type: 'add-learner', id: 4n }).ok).toBe(true);
    expect(cluster.proposeConfChange(1n, { type: 'add-learner', id: 5n })).toEqual({ ok: false, reason: 'proposal-dropped' });
    cluster.stabilize();
    expect(cluster.proposeConfChange(1n, { type: 'add-learner', id: 5n }).ok).toBe(true);
    cluster.stabilize();
    expect(cluster.member(1n).confState).toEqual({ voters: [1n, 2n, 3n], learners: [4n, 5n] });
  });

  it('a removed follower is refused afterwards and cannot disrupt the others', () => {
    const cluster = electedCluster();
    cluster.proposeConfChange(1n, { type: 'remove', id: 3n });
    cluster.stabilize();
    expect(cluster.member(1n).confState).toEqual({ voters: [1n, 2n], learners: [] });
    // Quorum is now 2 of 2.
    cluster.propose(1n, 'two voters');
    cluster.stabilize();
    expect(cluster.member(2n).applied.at(-1)).toBe('two voters');
    const term = cluster.status(1n).term;
    cluster.tick(3n, 100); // it still thinks it is a voter and campaigns
    cluster.stabilize();
    expect(cluster.status(1n).term).toBe(term);
    expect(cluster.leaders()).toEqual([1n]);
  });

  it('after the leader removes itself and stops, the others elect a leader and commit', () => {
    const cluster = electedCluster();
    cluster.proposeConfChange(1n, { type: 'remove', id: 1n });
    cluster.stabilize();
    expect(cluster.member(2n).confState).toEqual({ voters: [2n, 3n], learners: [] });
    cluster.crash(1n);
    cluster.campaign(2n);
    expect(cluster.leaders()).toEqual([2n]);
    cluster.propose(2n, 'without 1');
    cluster.stabilize();
    expect(cluster.member(3n).applied.at(-1)).toBe('without 1');
  });

  it('a member that catches up by snapshot takes the configuration from it', () => {
    const cluster = electedCluster();
    cluster.addMember(4n);
    cluster.proposeConfChange(1n, { type: 'add-learner', id: 4n });
    cluster.isolate(4n);
    cluster.stabilize();
    for (let i = 0; i < 5; i++) cluster.propose(1n, `p${i}`);
    cluster.stabilize();
    cluster.compact(1n);
    cluster.recover();
    cluster.tick(1n, 2);
    cluster.stabilize();
    expect(cluster.member(4n).snapshotsInstalled).toBe(1);
    expect(cluster.member(4n).confState).toEqual({ voters: [1n, 2n, 3n], learners: [4n] });
    expect(cluster.member(4n).applied.at(-1)).toBe('p4');
  });

  it('a restarted member keeps the configuration it applied', () => {
    const cluster = electedCluster();
    cluster.proposeConfChange(1n, { type: 'remove', id: 3n });
    cluster.stabilize();
    cluster.crash(2n);
    cluster.restart(2n);
    expect(cluster.node(2n).confState()).toEqual({ voters: [1n, 2n], learners: [] });
  });
});
