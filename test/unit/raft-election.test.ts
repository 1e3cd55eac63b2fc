import { describe, expect, it } from 'vitest';
import { MemoryLogStorage, Raft, makeMessage } from '../../store/raft/index.js';
import { seededRandom } from '../../shared/random.js';
import { TestCluster, text } from '../sim/raft-test-cluster.js';

describe('raft election (Raft paper §5.2, §5.4.1)', () => {
  it('a follower campaigns after a randomized timeout in [electionTicks, 2 * electionTicks)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const cluster = new TestCluster({ size: 3, seed });
      let ticks = 0;
      while (cluster.status(1n).role === 'follower' && ticks < 100) {
        cluster.tick(1n);
        ticks++;
      }
      expect(cluster.status(1n).role).toBe('candidate');
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      seen.add(ticks);
    }
    // Randomized: not everyone times out together (split votes would repeat forever).
    expect(seen.size).toBeGreaterThan(3);
  });

  it('a candidate with a majority becomes leader, the others follow it, and it appends an empty entry', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    expect(cluster.leaders()).toEqual([1n]);
    for (const id of [2n, 3n]) {
      expect(cluster.status(id)).toMatchObject({ role: 'follower', lead: 1n, term: 1 });
    }
    // The term-1 empty entry is committed everywhere once the cluster settles.
    for (const id of [1n, 2n, 3n]) {
      expect(cluster.logTerms(id)).toEqual([1]);
      expect(cluster.status(id).commit).toBe(1);
    }
  });

  it('a member grants at most one vote per term, first come first served', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.node(1n).campaign();
    cluster.node(2n).campaign();
    cluster.drainAll();
    // Deliver 1's request to 3 before 2's: 3 votes for 1 only.
    const requests = cluster.pending().filter((m) => m.type === 'vote' && m.to === 3n);
    expect(requests.map((m) => m.from)).toEqual([1n, 2n]);
    cluster.deliver();
    cluster.drainAll();
    const answers = cluster.pending().filter((m) => m.type === 'vote-resp' && m.from === 3n);
    expect(answers.map((m) => [m.to, m.reject])).toEqual([
      [1n, false],
      [2n, true],
    ]);
    cluster.stabilize();
    expect(cluster.leaders()).toEqual([1n]);
  });

  it('with the two-votes bug, the same schedule elects two leaders in one term (the test can fail)', () => {
    const cluster = new TestCluster({
      size: 3,
      bugs: new Map([[3n, { grantTwoVotesPerTerm: true }]]),
    });
    cluster.node(1n).campaign();
    cluster.node(2n).campaign();
    cluster.stabilize();
    expect(cluster.leaders().sort()).toEqual([1n, 2n]);
    expect(cluster.status(1n).term).toBe(cluster.status(2n).term);
  });

  it('a member refuses its vote to a candidate whose log is less up to date (§5.4.1)', () => {
    const logs = new Map([
      [1n, { terms: [1, 1], term: 1 }],
      [2n, { terms: [1, 2], term: 2 }],
      [3n, { terms: [1, 2], term: 2 }],
    ]);
    const cluster = new TestCluster({ size: 3, logs });
    cluster.campaign(1n);
    expect(cluster.status(1n).role).not.toBe('leader');
    const answers = cluster.sent.filter((m) => m.type === 'vote-resp' && m.to === 1n);
    expect(answers.length).toBe(2);
    expect(answers.every((m) => m.reject)).toBe(true);
    // A candidate with the longer log of the same last term wins.
    cluster.campaign(2n);
    expect(cluster.leaders()).toEqual([2n]);
  });

  it('a single member elects itself at once and commits a proposal in the Ready that persists it', () => {
    const storage = new MemoryLogStorage({ voters: [1n], learners: [] });
    const node = new Raft({
      id: 1n,
      electionTicks: 10,
      heartbeatTicks: 1,
      storage,
      applied: 0,
      maxSizePerMsgBytes: 1024,
      maxInflightMsgs: 16,
      preVote: true,
      checkQuorum: true,
      random: seededRandom(1),
    });
    node.campaign();
    let ready = node.ready();
    expect(ready.softState).toEqual({ leader: 1n, role: 'leader' });
    expect(ready.messages).toEqual([]);
    storage.append(ready.entries);
    node.advance(ready);
    expect(node.propose(text('x')).ok).toBe(true);
    ready = node.ready();
    expect(ready.entries.map((e) => e.index)).toEqual([2]);
    expect(ready.committed.map((e) => e.index)).toEqual([2]);
    expect(ready.hardState?.commit).toBe(2);
    expect(ready.mustSync).toBe(true);
  });

  it('restarts from LogStorage: term, vote and commit survive, applied entries are not re-applied', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.propose(1n, 'a');
    cluster.stabilize();
    const before = cluster.status(2n);
    cluster.crash(2n);
    cluster.restart(2n);
    const after = cluster.status(2n);
    expect(after).toMatchObject({
      term: before.term,
      vote: 1n,
      commit: before.commit,
      applied: before.applied,
      role: 'follower',
    });
    cluster.stabilize();
    expect(cluster.member(2n).applied).toEqual(['a']);
  });

  it('proposals on a follower go to the leader; without a leader they are dropped', () => {
    const cluster = new TestCluster({ size: 3 });
    expect(cluster.propose(2n, 'lost')).toEqual({ ok: false, reason: 'proposal-dropped' });
    cluster.campaign(1n);
    expect(cluster.propose(2n, 'forwarded').ok).toBe(true);
    cluster.stabilize();
    for (const id of [1n, 2n, 3n]) expect(cluster.member(id).applied).toEqual(['forwarded']);
  });

  it('a campaign by a member outside the configuration is refused', () => {
    const cluster = new TestCluster({ size: 3 });
    const result = cluster
      .node(1n)
      .step(makeMessage({ type: 'vote', to: 1n, from: 9n, term: 5, index: 100, logTerm: 5 }));
    expect(result).toEqual({ ok: false, reason: 'unknown-peer' });
    expect(cluster.status(1n).term).toBe(0);
  });
});

describe('raft PreVote (thesis §9.6) and CheckQuorum', () => {
  function partitionedRejoin(preVote: boolean): {
    termBefore: number;
    termAfter: number;
    leaderAfter: bigint[];
  } {
    const cluster = new TestCluster({ size: 3, preVote });
    cluster.campaign(1n);
    const termBefore = cluster.status(1n).term;
    cluster.isolate(3n);
    cluster.propose(1n, 'while 3 is away'); // 3's log falls behind
    cluster.stabilize();
    // Node 3 hears nothing for many election timeouts.
    for (let i = 0; i < 100; i++) {
      cluster.tick(3n);
      cluster.stabilize();
    }
    cluster.recover();
    // 3 keeps timing out once more before the leader's heartbeat reaches it.
    for (let i = 0; i < 20; i++) {
      cluster.tick(3n);
      cluster.stabilize();
    }
    cluster.tick(1n);
    cluster.stabilize();
    return { termBefore, termAfter: cluster.status(1n).term, leaderAfter: cluster.leaders() };
  }

  it('with PreVote, a partitioned member does not raise its term and does not disrupt the leader on return', () => {
    const run = partitionedRejoin(true);
    expect(run.termAfter).toBe(run.termBefore);
    expect(run.leaderAfter).toEqual([1n]);
  });

  it('without PreVote, the same partition disrupts the leader (the check above can fail)', () => {
    const run = partitionedRejoin(false);
    expect(run.termAfter).toBeGreaterThan(run.termBefore);
  });

  it('with CheckQuorum, a leader cut off from a majority steps down after an election timeout', () => {
    const cluster = new TestCluster({ size: 3, checkQuorum: true });
    cluster.campaign(1n);
    cluster.isolate(1n);
    for (let i = 0; i < 9; i++) {
      cluster.tick(1n);
      cluster.stabilize();
    }
    expect(cluster.status(1n).role).toBe('leader');
    for (let i = 0; i < 11; i++) {
      cluster.tick(1n);
      cluster.stabilize();
    }
    expect(cluster.status(1n).role).toBe('follower');
  });

  it('a leader that hears from a majority keeps leading under CheckQuorum', () => {
    const cluster = new TestCluster({ size: 3, checkQuorum: true });
    cluster.campaign(1n);
    cluster.isolate(3n);
    for (let i = 0; i < 50; i++) {
      cluster.tick(1n);
      cluster.stabilize();
    }
    expect(cluster.status(1n).role).toBe('leader');
  });

  it('with CheckQuorum, followers with a live leader ignore vote requests (leader lease)', () => {
    const cluster = new TestCluster({ size: 3, checkQuorum: true });
    cluster.campaign(1n);
    cluster.tick(2n); // within the lease: 2 heard from 1 less than an election timeout ago
    cluster.node(3n).campaign();
    cluster.drain(3n);
    cluster.dropPending((m) => m.type !== 'vote');
    cluster.deliver();
    cluster.drainAll();
    expect(cluster.status(2n).term).toBe(1);
    expect(cluster.status(1n)).toMatchObject({ term: 1, role: 'leader' });
    expect(cluster.pending().filter((m) => m.type === 'vote-resp')).toEqual([]);
  });
});
