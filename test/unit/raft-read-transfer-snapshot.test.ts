import { describe, expect, it } from 'vitest';
import { MemoryLogStorage, Raft } from '../../store/raft/index.js';
import { seededRandom } from '../../shared/random.js';
import { TestCluster, text } from '../sim/raft-test-cluster.js';

const decoder = new TextDecoder();
const contexts = (states: readonly { requestContext: Uint8Array }[]): string[] =>
  states.map((state) => decoder.decode(state.requestContext));

describe('raft ReadIndex (Raft thesis §6.4)', () => {
  it('the leader answers only after a heartbeat round confirms it still leads', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.propose(1n, 'a');
    cluster.stabilize();
    cluster.node(1n).readIndex(text('r1'));
    cluster.drain(1n);
    expect(cluster.member(1n).readStates).toEqual([]);
    expect(cluster.pending().filter((m) => m.type === 'heartbeat').length).toBe(2);
    cluster.stabilize();
    expect(contexts(cluster.member(1n).readStates)).toEqual(['r1']);
    expect(cluster.member(1n).readStates[0]?.index).toBe(cluster.status(1n).commit);
  });

  it('a leader cut off from the majority never answers (it may have been deposed)', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.isolate(1n);
    cluster.node(1n).readIndex(text('r1'));
    for (let i = 0; i < 30; i++) {
      cluster.tick(1n);
      cluster.stabilize();
    }
    expect(cluster.member(1n).readStates).toEqual([]);
  });

  it('one heartbeat round confirms a whole batch of queued reads', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.node(1n).readIndex(text('r1'));
    cluster.node(1n).readIndex(text('r2'));
    cluster.drain(1n);
    // Lose the round for r1; the round for r2 confirms both, in order.
    cluster.dropPending((m) => m.type === 'heartbeat' && decoder.decode(m.context) === 'r1');
    cluster.stabilize();
    expect(contexts(cluster.member(1n).readStates)).toEqual(['r1', 'r2']);
  });

  it("a follower forwards the request and gets the leader's commit index back", () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.propose(1n, 'a');
    cluster.stabilize();
    expect(cluster.node(2n).readIndex(text('f1')).ok).toBe(true);
    cluster.stabilize();
    expect(contexts(cluster.member(2n).readStates)).toEqual(['f1']);
    expect(cluster.member(2n).readStates[0]?.index).toBe(cluster.status(1n).commit);
    expect(cluster.member(1n).readStates).toEqual([]);
  });

  it('without a known leader the request is dropped', () => {
    const cluster = new TestCluster({ size: 3 });
    expect(cluster.node(2n).readIndex(text('x'))).toEqual({
      ok: false,
      reason: 'proposal-dropped',
    });
  });

  it('a new leader holds reads until it has committed an entry of its own term', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.node(1n).campaign();
    cluster.stabilize();
    // Win an election but keep the term's first entry from committing.
    cluster.crash(1n);
    cluster.restart(1n);
    cluster.node(1n).campaign();
    cluster.drain(1n);
    cluster.deliver(); // vote requests
    cluster.drainAll();
    cluster.deliver(); // votes: 1 wins term 3 and sends its empty entry
    cluster.drain(1n);
    expect(cluster.status(1n).role).toBe('leader');
    cluster.node(1n).readIndex(text('early'));
    cluster.drain(1n);
    expect(cluster.pending().some((m) => m.type === 'heartbeat')).toBe(false);
    cluster.stabilize();
    expect(contexts(cluster.member(1n).readStates)).toEqual(['early']);
    const state = cluster.member(1n).readStates[0];
    expect(state?.index).toBe(cluster.status(1n).commit);
  });

  it('a single member answers at once', () => {
    const storage = new MemoryLogStorage({ voters: [1n], learners: [] });
    const node = new Raft({
      id: 1n,
      electionTicks: 10,
      heartbeatTicks: 1,
      storage,
      applied: 0,
      maxSizePerMsgBytes: 1024,
      maxInflightMsgs: 16,
      preVote: false,
      checkQuorum: false,
      random: seededRandom(2),
    });
    node.campaign();
    const first = node.ready();
    storage.append(first.entries);
    node.advance(first);
    node.readIndex(text('solo'));
    const ready = node.ready();
    expect(ready.messages).toEqual([]);
    expect(ready.readStates.map((s) => [s.index, decoder.decode(s.requestContext)])).toEqual([
      [1, 'solo'],
    ]);
  });
});

describe('raft leadership transfer (thesis §3.10, etcdctl move-leader)', () => {
  it('an up-to-date target gets timeout-now and wins the next term', () => {
    const cluster = new TestCluster({ size: 3, preVote: true, checkQuorum: true });
    cluster.campaign(1n);
    const term = cluster.status(1n).term;
    expect(cluster.node(1n).transferLeadership(3n).ok).toBe(true);
    cluster.stabilize();
    expect(cluster.leaders()).toEqual([3n]);
    expect(cluster.status(3n).term).toBe(term + 1);
    expect(cluster.sent.some((m) => m.type === 'timeout-now' && m.to === 3n)).toBe(true);
  });

  it('a lagging target is caught up first; proposals are refused while the transfer runs', () => {
    const cluster = new TestCluster({ size: 3, checkQuorum: true });
    cluster.campaign(1n);
    cluster.isolate(3n);
    for (let i = 0; i < 5; i++) cluster.propose(1n, `e${i}`);
    cluster.stabilize();
    cluster.recover();
    cluster.node(1n).transferLeadership(3n);
    cluster.drain(1n);
    expect(cluster.pending().some((m) => m.type === 'timeout-now')).toBe(false);
    expect(cluster.propose(1n, 'during')).toEqual({ ok: false, reason: 'proposal-dropped' });
    cluster.stabilize();
    expect(cluster.leaders()).toEqual([3n]);
    expect(cluster.member(3n).applied).toEqual(['e0', 'e1', 'e2', 'e3', 'e4']);
  });

  it('a follower forwards the request to the leader', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.node(2n).transferLeadership(2n);
    cluster.stabilize();
    expect(cluster.leaders()).toEqual([2n]);
  });

  it('a transfer that cannot finish within an election timeout is abandoned', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.isolate(3n);
    cluster.node(1n).transferLeadership(3n);
    for (let i = 0; i < 10; i++) {
      cluster.tick(1n);
      cluster.stabilize();
    }
    expect(cluster.propose(1n, 'after').ok).toBe(true);
    expect(cluster.leaders()).toEqual([1n]);
  });

  it('refuses an unknown target', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    expect(cluster.node(1n).transferLeadership(7n)).toEqual({ ok: false, reason: 'unknown-peer' });
  });
});

describe('raft snapshots: a far-behind follower catches up', () => {
  it('the leader sends a snapshot when the entries the follower needs were compacted', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.isolate(3n);
    for (let i = 0; i < 50; i++) cluster.propose(1n, `e${i}`);
    cluster.stabilize();
    const compactedTo = cluster.compact(1n);
    expect(cluster.member(1n).storage.firstIndex()).toBe(compactedTo + 1);
    cluster.recover();
    cluster.tick(1n);
    cluster.stabilize();
    expect(cluster.sent.filter((m) => m.type === 'snap' && m.to === 3n).length).toBe(1);
    expect(cluster.member(3n).snapshotsInstalled).toBe(1);
    expect(cluster.member(3n).applied).toEqual(cluster.member(1n).applied);
    // Replication continues normally after the snapshot.
    cluster.propose(1n, 'after');
    cluster.stabilize();
    expect(cluster.member(3n).applied.at(-1)).toBe('after');
    expect(cluster.status(3n).commit).toBe(cluster.status(1n).commit);
  });

  it('a lost snapshot is reported and sent again', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.isolate(3n);
    for (let i = 0; i < 10; i++) cluster.propose(1n, `e${i}`);
    cluster.stabilize();
    cluster.compact(1n);
    cluster.recover();
    cluster.filter = (m) => (m.type === 'snap' ? null : m);
    cluster.tick(1n);
    cluster.stabilize();
    expect(cluster.member(3n).snapshotsInstalled).toBe(0);
    cluster.filter = null;
    cluster.tick(1n);
    cluster.stabilize();
    expect(cluster.member(3n).snapshotsInstalled).toBe(1);
    expect(cluster.member(3n).applied).toEqual(cluster.member(1n).applied);
  });

  it('a follower restarts from its installed snapshot', () => {
    const cluster = new TestCluster({ size: 3 });
    cluster.campaign(1n);
    cluster.isolate(3n);
    for (let i = 0; i < 10; i++) cluster.propose(1n, `e${i}`);
    cluster.stabilize();
    cluster.compact(1n);
    cluster.recover();
    cluster.tick(1n);
    cluster.stabilize();
    const before = cluster.status(3n);
    cluster.crash(3n);
    cluster.restart(3n);
    expect(cluster.status(3n)).toMatchObject({
      commit: before.commit,
      applied: before.applied,
      term: before.term,
    });
    cluster.propose(1n, 'x');
    cluster.stabilize();
    expect(cluster.member(3n).applied).toEqual(cluster.member(1n).applied);
  });
});
