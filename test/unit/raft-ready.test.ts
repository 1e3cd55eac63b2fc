import { describe, expect, it } from 'vitest';
import { MemoryLogStorage, Raft, makeMessage } from '../../store/raft/index.js';
import type { Ready } from '../../store/raft/index.js';
import { seededRandom } from '../../shared/random.js';
import { text } from '../sim/raft-test-cluster.js';

function node(voters: bigint[], id = 1n): { node: Raft; storage: MemoryLogStorage } {
  const storage = new MemoryLogStorage({ voters, learners: [] });
  const raft = new Raft({
    id,
    electionTicks: 10,
    heartbeatTicks: 1,
    storage,
    applied: 0,
    maxSizePerMsgBytes: 1024,
    maxInflightMsgs: 16,
    preVote: false,
    checkQuorum: false,
    random: seededRandom(5),
  });
  return { node: raft, storage };
}

function persist(storage: MemoryLogStorage, ready: Ready): void {
  if (ready.snapshot !== null) storage.applySnapshot(ready.snapshot);
  storage.append(ready.entries);
  if (ready.hardState !== null) storage.setHardState(ready.hardState);
}

describe('raft Ready contract', () => {
  it('inputs may arrive while a Ready is being written; their output waits for the next Ready', () => {
    const { node: raft, storage } = node([1n]);
    raft.campaign();
    const first = raft.ready();
    expect(raft.hasReady()).toBe(false); // one Ready out at a time
    expect(raft.propose(text('during-write')).ok).toBe(true);
    expect(() => raft.ready()).toThrow(/ready\(\) again before advance/);
    persist(storage, first);
    raft.advance(first);
    expect(first.entries.map((e) => e.index)).toEqual([1]);
    const second = raft.ready();
    expect(second.entries.map((e) => e.index)).toEqual([2]);
    expect(second.committed.map((e) => e.index)).toEqual([2]);
    persist(storage, second);
    raft.advance(second);
    expect(raft.status()).toMatchObject({ commit: 2, applied: 2 });
    expect(raft.hasReady()).toBe(false);
  });

  it('a vote must be synced before its answer leaves; a commit-only change need not be', () => {
    const { node: raft, storage } = node([1n, 2n, 3n], 2n);
    raft.step(makeMessage({ type: 'vote', to: 2n, from: 1n, term: 1 }));
    const vote = raft.ready();
    expect(vote.hardState).toMatchObject({ term: 1, vote: 1n });
    expect(vote.mustSync).toBe(true);
    expect(vote.messages.map((m) => [m.type, m.reject])).toEqual([['vote-resp', false]]);
    persist(storage, vote);
    raft.advance(vote);
    const entry = { term: 1, index: 1, type: 'normal' as const, data: text('a') };
    raft.step(makeMessage({ type: 'app', to: 2n, from: 1n, term: 1, entries: [entry] }));
    const append = raft.ready();
    expect(append.mustSync).toBe(true);
    expect(append.messages.map((m) => [m.type, m.index])).toEqual([['app-resp', 1]]);
    persist(storage, append);
    raft.advance(append);
    raft.step(makeMessage({ type: 'heartbeat', to: 2n, from: 1n, term: 1, commit: 1 }));
    const commit = raft.ready();
    expect(commit.hardState).toMatchObject({ commit: 1 });
    expect(commit.mustSync).toBe(false);
    expect(commit.committed.map((e) => e.index)).toEqual([1]);
  });

  it('rejects an invalid configuration up front', () => {
    const storage = new MemoryLogStorage({ voters: [1n], learners: [] });
    const base = {
      id: 1n,
      electionTicks: 10,
      heartbeatTicks: 1,
      storage,
      applied: 0,
      maxSizePerMsgBytes: 1024,
      maxInflightMsgs: 16,
      preVote: false,
      checkQuorum: false,
      random: seededRandom(1),
    };
    expect(() => new Raft({ ...base, id: 0n })).toThrow(/id/);
    expect(() => new Raft({ ...base, electionTicks: 1 })).toThrow(/electionTicks/);
    expect(() => new Raft({ ...base, maxInflightMsgs: 0 })).toThrow(/maxInflightMsgs/);
    expect(() => new Raft({ ...base, applied: 5 })).toThrow(/applied/);
  });
});
