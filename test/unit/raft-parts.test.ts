import { describe, expect, it } from 'vitest';
import {
  Inflights,
  MemoryLogStorage,
  Progress,
  RaftLog,
  RaftStorageError,
  Unstable,
  committedIndex,
  voteResult,
} from '../../store/raft/index.js';
import type { Entry } from '../../store/raft/index.js';
import { seededRandom } from '../../shared/random.js';

const entry = (index: number, term: number, data = ''): Entry => ({
  index,
  term,
  type: 'normal',
  data: new TextEncoder().encode(data),
});
const terms = (entries: readonly Entry[]): number[] => entries.map((e) => e.term);

function logWith(storedTerms: number[]): { log: RaftLog; storage: MemoryLogStorage } {
  const storage = new MemoryLogStorage({ voters: [1n], learners: [] });
  storage.append(storedTerms.map((term, i) => entry(i + 1, term)));
  return { log: new RaftLog(storage, 1 << 20), storage };
}

describe('raft unstable tail', () => {
  it('appends, truncates inside the tail, and replaces from before its offset', () => {
    const unstable = new Unstable(5);
    unstable.truncateAndAppend([entry(5, 1), entry(6, 1)]);
    unstable.truncateAndAppend([entry(7, 2)]);
    expect(terms(unstable.entries)).toEqual([1, 1, 2]);
    unstable.truncateAndAppend([entry(6, 3)]);
    expect(terms(unstable.entries)).toEqual([1, 3]);
    unstable.truncateAndAppend([entry(4, 4)]);
    expect(unstable.offset).toBe(4);
    expect(terms(unstable.entries)).toEqual([4]);
  });

  it('stableTo ignores an acknowledgement for a term that was since replaced', () => {
    const unstable = new Unstable(1);
    unstable.truncateAndAppend([entry(1, 1), entry(2, 1)]);
    unstable.stableTo(2, 9);
    expect(unstable.offset).toBe(1);
    unstable.stableTo(1, 1);
    expect(unstable.offset).toBe(2);
    expect(terms(unstable.entries)).toEqual([1]);
  });
});

describe('raft log', () => {
  it('maybeAppend checks the previous entry, skips matching entries, replaces a conflicting suffix', () => {
    const { log } = logWith([1, 1, 2]);
    expect(log.maybeAppend(3, 1, 0, [entry(4, 3)])).toBeNull(); // term at 3 is 2, not 1
    expect(log.maybeAppend(1, 1, 0, [entry(2, 1), entry(3, 3)])).toBe(3);
    expect(log.term(3)).toBe(3);
    expect(log.lastIndex()).toBe(3);
    expect(log.maybeAppend(3, 3, 2, [])).toBe(3);
    expect(log.committed).toBe(2);
  });

  it('refuses to overwrite a committed entry', () => {
    const { log } = logWith([1, 1, 2]);
    log.commitTo(3);
    expect(() => log.maybeAppend(1, 1, 3, [entry(2, 5)])).toThrow(/conflicts with committed/);
  });

  it('findConflictByTerm skips a whole term per probe', () => {
    const { log } = logWith([1, 1, 2, 2, 2, 4, 4]);
    expect(log.findConflictByTerm(7, 3)).toEqual([5, 2]);
    expect(log.findConflictByTerm(7, 1)).toEqual([2, 1]);
    expect(log.findConflictByTerm(7, 4)).toEqual([7, 4]);
  });

  it('isUpToDate compares last term, then length (§5.4.1)', () => {
    const { log } = logWith([1, 2, 2]);
    expect(log.isUpToDate(1, 3)).toBe(true);
    expect(log.isUpToDate(3, 2)).toBe(true);
    expect(log.isUpToDate(2, 2)).toBe(false);
    expect(log.isUpToDate(9, 1)).toBe(false);
  });

  it('reports compacted entries, and serves firstIndex - 1 for the next append check', () => {
    const { log, storage } = logWith([1, 1, 2, 2]);
    storage.createSnapshot(2, { voters: [1n], learners: [] }, new Uint8Array(0));
    storage.compact(2);
    expect(log.firstIndex()).toBe(3);
    expect(log.term(2)).toBe(1);
    expect(log.term(1)).toBeNull();
    expect(log.slice(1, 3, 1 << 20)).toBe('compacted');
    expect(terms(log.slice(3, 5, 1 << 20) as Entry[])).toEqual([2, 2]);
    expect(() => storage.entries(2, 3, 1 << 20)).toThrow(RaftStorageError);
  });

  it('size limits keep at least one entry', () => {
    const { log } = logWith([1, 1, 1]);
    expect((log.slice(1, 4, 1) as Entry[]).length).toBe(1);
    expect((log.slice(1, 4, 1 << 20) as Entry[]).length).toBe(3);
  });
});

describe('raft progress and flow control', () => {
  it('an inflights window fills, frees by acknowledgement, and wraps around', () => {
    const inflights = new Inflights(3);
    inflights.add(10);
    inflights.add(20);
    inflights.add(30);
    expect(inflights.full()).toBe(true);
    expect(() => inflights.add(40)).toThrow(/overflow/);
    inflights.freeLE(20);
    expect(inflights.count).toBe(1);
    inflights.add(40);
    inflights.add(50);
    expect(inflights.full()).toBe(true);
    inflights.freeLE(45);
    expect(inflights.count).toBe(1);
    inflights.freeFirstOne();
    expect(inflights.count).toBe(0);
  });

  it('probe sends one message at a time; replicate pipelines until the window is full', () => {
    const progress = new Progress(5, 2);
    progress.sentEntries(3, 5);
    expect(progress.isPaused()).toBe(true);
    expect(progress.maybeUpdate(7)).toBe(true);
    progress.becomeReplicate();
    expect(progress.next).toBe(8);
    progress.sentEntries(2, 8);
    progress.sentEntries(2, 10);
    expect(progress.next).toBe(12);
    expect(progress.isPaused()).toBe(true);
    progress.maybeUpdate(9);
    progress.inflights.freeLE(9);
    expect(progress.isPaused()).toBe(false);
  });

  it('a rejection moves next back, but a stale one is ignored', () => {
    const progress = new Progress(11, 4);
    progress.match = 3;
    expect(progress.maybeDecrTo(7, 5)).toBe(false); // answers an older probe
    expect(progress.maybeDecrTo(10, 5)).toBe(true);
    expect(progress.next).toBe(6);
    progress.becomeReplicate();
    expect(progress.maybeDecrTo(2, 0)).toBe(false); // below match: stale
  });

  it('after a snapshot, probing starts right after it', () => {
    const progress = new Progress(3, 4);
    progress.becomeSnapshot(40);
    expect(progress.isPaused()).toBe(true);
    progress.becomeProbe();
    expect(progress.next).toBe(41);
  });
});

describe('raft quorum', () => {
  it('commits the index a majority holds', () => {
    const voters = [1n, 2n, 3n, 4n, 5n];
    const matches = new Map([
      [1n, 9],
      [2n, 7],
      [3n, 5],
      [4n, 2],
      [5n, 0],
    ]);
    expect(committedIndex(voters, (id) => matches.get(id) ?? 0)).toBe(5);
    expect(committedIndex([1n], () => 4)).toBe(4);
    expect(committedIndex([], () => 4)).toBe(0);
  });

  it('commits the majority-th highest match, whatever the cluster size and the matches', () => {
    const random = seededRandom(20261206);
    for (let round = 0; round < 2000; round++) {
      const voters = Array.from({ length: 1 + random.int(7) }, (_, i) => BigInt(i + 1));
      const matches = new Map(voters.map((id) => [id, random.int(4) === 0 ? 0 : random.int(20)]));
      const sorted = [...matches.values()].sort((a, b) => b - a);
      const expected = sorted[Math.floor(voters.length / 2)] as number;
      expect(committedIndex(voters, (id) => matches.get(id) ?? 0), JSON.stringify(sorted)).toBe(expected);
    }
  });

  it('decides an election only when the outcome is certain', () => {
    const voters = [1n, 2n, 3n];
    expect(voteResult(voters, new Map([[1n, true]]))).toBe('pending');
    expect(
      voteResult(
        voters,
        new Map([
          [1n, true],
          [2n, true],
        ]),
      ),
    ).toBe('won');
    expect(
      voteResult(
        voters,
        new Map([
          [1n, true],
          [2n, false],
        ]),
      ),
    ).toBe('pending');
    expect(
      voteResult(
        voters,
        new Map([
          [1n, true],
          [2n, false],
          [3n, false],
        ]),
      ),
    ).toBe('lost');
  });
});
