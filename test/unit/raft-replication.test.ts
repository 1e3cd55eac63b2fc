import { describe, expect, it } from 'vitest';
import { TestCluster } from '../sim/raft-test-cluster.js';
import type { Message } from '../../store/raft/index.js';

/** Raft paper Figure 7: the leader of term 8 and six possible follower logs (terms by index). */
const figure7Leader = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
const figure7Followers: Record<string, number[]> = {
  a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
  b: [1, 1, 1, 4],
  c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
  d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
  e: [1, 1, 1, 4, 4, 4, 4],
  f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
};

describe('raft log replication (Raft paper §5.3)', () => {
  for (const [name, follower] of Object.entries(figure7Followers)) {
    it(`repairs Figure 7 follower (${name}): missing entries added, conflicting suffix replaced`, () => {
      const logs = new Map([
        [1n, { terms: figure7Leader, term: 7 }],
        [2n, { terms: follower, term: Math.max(...follower) }],
        [3n, { terms: figure7Leader, term: 7 }],
      ]);
      const cluster = new TestCluster({ size: 3, logs });
      cluster.campaign(1n);
      expect(cluster.leaders()).toEqual([1n]);
      expect(cluster.status(1n).term).toBe(8);
      const expected = [...figure7Leader, 8];
      expect(cluster.logTerms(1n)).toEqual(expected);
      expect(cluster.logTerms(2n)).toEqual(expected);
      expect(cluster.status(2n).commit).toBe(11);
      // The same entries, not just the same terms.
      expect(cluster.member(2n).applied).toEqual(cluster.member(1n).applied);
    });
  }

  it('a follower refuses an append whose previous entry does not match (log matching)', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    const before = cluster.logTerms(2n);
    cluster.node(2n).step({
      type: 'app',
      to: 2n,
      from: 1n,
      term: 1,
      logTerm: 1,
      index: 5,
      commit: 0,
      entries: [{ term: 1, index: 6, type: 'normal', data: new Uint8Array([1]) }],
      snapshot: null,
      reject: false,
      rejectHint: 0,
      context: new Uint8Array(0),
    });
    cluster.drain(2n);
    const answer = cluster.pending().find((m) => m.type === 'app-resp' && m.from === 2n);
    expect(answer).toMatchObject({ reject: true, index: 5, rejectHint: 1 });
    expect(cluster.logTerms(2n)).toEqual(before);
  });

  it('pipelines appends up to maxInflightMsgs, then waits for acknowledgements', () => {
    const cluster = new TestCluster({ size: 3, maxInflightMsgs: 3 });
    cluster.campaign(1n);
    cluster.stabilize();
    for (let i = 0; i < 10; i++) cluster.propose(1n, `e${i}`);
    const appendsTo2 = cluster.pending().filter((m) => m.type === 'app' && m.to === 2n);
    expect(appendsTo2.length).toBe(3);
    cluster.stabilize();
    for (const id of [1n, 2n, 3n]) expect(cluster.member(id).applied.length).toBe(10);
  });

  it('five members commit with two down, and stop committing with three down', () => {
    const cluster = new TestCluster({ size: 5, checkQuorum: true, preVote: true });
    cluster.campaign(1n);
    cluster.crash(4n);
    cluster.crash(5n);
    cluster.propose(1n, 'with three');
    cluster.stabilize();
    expect(cluster.member(1n).applied).toEqual(['with three']);
    cluster.crash(3n);
    cluster.propose(1n, 'with two');
    for (let i = 0; i < 30; i++) {
      cluster.tick(1n);
      cluster.tick(2n);
      cluster.stabilize();
    }
    expect(cluster.member(1n).applied).toEqual(['with three']);
    // CheckQuorum made the minority leader step down; no one leads the minority side.
    expect(cluster.leaders()).toEqual([]);
  });

  it('bounds the bytes a leader holds unapplied; proposals past the bound are dropped', () => {
    const cluster = new TestCluster({ size: 3, maxUncommittedEntriesBytes: 10 });
    cluster.campaign(1n);
    cluster.isolate(1n);
    expect(cluster.propose(1n, 'aaaaaa').ok).toBe(true);
    expect(cluster.propose(1n, 'bbbbbb')).toEqual({ ok: false, reason: 'proposal-dropped' });
    cluster.recover();
    cluster.tick(1n);
    cluster.stabilize();
    expect(cluster.member(1n).applied).toEqual(['aaaaaa']);
    expect(cluster.propose(1n, 'cccccc').ok).toBe(true);
  });

  it('limits entries per append by maxSizePerMsgBytes', () => {
    const cluster = new TestCluster({ size: 3, maxSizePerMsgBytes: 100 });
    cluster.campaign(1n);
    cluster.isolate(2n);
    for (let i = 0; i < 20; i++) cluster.propose(1n, `payload-${i}`);
    cluster.stabilize();
    cluster.recover();
    cluster.tick(1n);
    cluster.stabilize();
    const appends = cluster.sent.filter(
      (m) => m.type === 'app' && m.to === 2n && m.entries.length > 0,
    );
    expect(Math.max(...appends.map((m) => m.entries.length))).toBeLessThanOrEqual(3);
    expect(cluster.member(2n).applied.length).toBe(20);
  });
});

/**
 * Raft paper Figure 8: a leader must not commit an entry of an earlier term by counting replicas.
 * S1 leads term 4 and gets its term-2 entry (index 2) onto a majority (S1, S2, S3), while its own
 * term-4 entry is held back. If it committed index 2 then, S5 (last term 3) could still win an
 * election with S2, S3 and S4 and overwrite index 2: a committed entry lost.
 */
/** Leader completeness (§5.4): the leader's log holds every entry any member has committed. */
function leaderHoldsEveryCommittedEntry(cluster: TestCluster, leader: bigint): boolean {
  const leaderTerms = cluster.logTerms(leader);
  for (const member of cluster.members.values()) {
    if (member.node === null) continue;
    const terms = cluster.logTerms(member.id);
    for (let index = 1; index <= member.node.status().commit; index++) {
      if (leaderTerms[index - 1] !== terms[index - 1]) return false;
    }
  }
  return true;
}

describe('raft commit rule (Raft paper §5.4.2, Figure 8)', () => {
  function figure8(bugged: boolean): TestCluster {
    const logs = new Map([
      [1n, { terms: [1, 2], term: 3 }],
      [2n, { terms: [1, 2], term: 2 }],
      [3n, { terms: [1], term: 2 }],
      [4n, { terms: [1], term: 2 }],
      [5n, { terms: [1, 3], term: 3 }],
    ]);
    const bugs = bugged ? new Map([[1n, { commitOldTermByCounting: true }]]) : undefined;
    const cluster = new TestCluster({ size: 5, logs, ...(bugs !== undefined ? { bugs } : {}) });
    cluster.isolate(5n);
    // Appends lose their term-4 entries in flight: only the old entry at index 2 gets through.
    cluster.filter = (m: Message) =>
      m.type === 'app' ? { ...m, entries: m.entries.filter((e) => e.term < 4) } : m;
    cluster.campaign(1n);
    expect(cluster.leaders()).toEqual([1n]);
    expect(cluster.status(1n).term).toBe(4);
    return cluster;
  }

  it('does not commit the old-term entry replicated on a majority, so S5 may safely replace it', () => {
    const cluster = figure8(false);
    expect(cluster.logTerms(2n)).toEqual([1, 2]);
    expect(cluster.logTerms(3n)).toEqual([1, 2]);
    expect(cluster.status(1n).commit).toBe(0);
    // S1 crashes; S5 wins with S2, S3, S4 and overwrites index 2 everywhere it reaches.
    cluster.crash(1n);
    cluster.recover();
    // Its first campaign (term 4) meets voters who already voted in term 4; the second wins.
    cluster.campaign(5n);
    cluster.campaign(5n);
    expect(cluster.leaders()).toEqual([5n]);
    for (const id of [2n, 3n, 4n, 5n]) expect(cluster.logTerms(id).slice(0, 2)).toEqual([1, 3]);
    expect(leaderHoldsEveryCommittedEntry(cluster, 5n)).toBe(true);
  });

  it('with the counting bug, S5 wins although index 2 was committed (the check can fail)', () => {
    const cluster = figure8(true);
    expect(cluster.status(1n).commit).toBe(2);
    expect(cluster.status(3n).commit).toBe(2); // learned from the leader's next append
    cluster.crash(1n);
    cluster.recover();
    cluster.campaign(5n);
    cluster.campaign(5n);
    expect(cluster.leaders()).toEqual([5n]);
    expect(leaderHoldsEveryCommittedEntry(cluster, 5n)).toBe(false);
  });

  it('commits the old entry once an entry of the current term reaches a majority (Figure 8 e)', () => {
    const cluster = figure8(false);
    cluster.filter = null;
    cluster.tick(1n);
    cluster.stabilize();
    expect(cluster.status(1n).commit).toBe(3);
    // Now S5 cannot win: a majority holds a term-4 entry, newer than S5's last term 3.
    cluster.crash(1n);
    cluster.recover();
    for (let i = 0; i < 3; i++) cluster.campaign(5n);
    expect(cluster.leaders()).toEqual([]);
    expect(cluster.logTerms(3n)).toEqual([1, 2, 4]);
  });
});
