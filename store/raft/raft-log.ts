import { assert } from '../../shared/assert.js';
import { Unstable } from './unstable.js';
import { RaftStorageError } from './types.js';
import type { Entry, LogStorage, Snapshot } from './types.js';

/** Bytes an entry costs against a size limit: its payload plus a fixed header estimate. */
export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + 24;
}

/** The longest prefix within maxBytes, but always at least one entry so progress is possible. */
export function limitSize(entries: Entry[], maxBytes: number): Entry[] {
  let total = 0;
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as Entry;
    total += entrySizeBytes(entry);
    if (i > 0 && total > maxBytes) return entries.slice(0, i);
  }
  return entries;
}

/**
 * The log as the core sees it: stable storage below `unstable.offset`, the unstable tail above.
 * Invariant: firstIndex - 1 <= applied <= committed <= lastIndex. Committed entries are never
 * rewritten; an attempt to is an assertion failure, not a recoverable error.
 */
export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: Unstable;
  committed: number;
  applied: number;
  private readonly maxCommittedBytes: number;

  constructor(storage: LogStorage, maxCommittedBytes: number) {
    this.storage = storage;
    this.maxCommittedBytes = maxCommittedBytes;
    const first = storage.firstIndex();
    this.unstable = new Unstable(storage.lastIndex() + 1);
    this.committed = first - 1;
    this.applied = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  /** The term at `index`, or null when it is compacted away or beyond the log. */
  term(index: number): number | null {
    if (index < this.firstIndex() - 1 || index > this.lastIndex()) return null;
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== null) return unstableTerm;
    try {
      return this.storage.term(index);
    } catch (error) {
      if (error instanceof RaftStorageError && error.kind !== 'snapshot-temporarily-unavailable') {
        return null;
      }
      throw error;
    }
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== null, 'the last entry always has a term');
    return term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: a candidate's log is at least as up to date as ours. */
  isUpToDate(lastIndex: number, term: number): boolean {
    const ourTerm = this.lastTerm();
    return term > ourTerm || (term === ourTerm && lastIndex >= this.lastIndex());
  }

  /** The first entry whose term differs from ours (or which we lack), or 0 when all match. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * The largest index <= `index` whose term is <= `term`, with that term: where a rejected
   * leader should probe next. Skips a whole term per round trip instead of one entry.
   */
  findConflictByTerm(index: number, term: number): [number, number] {
    const floor = this.firstIndex() - 1;
    for (let i = index; i >= floor && i > 0; i--) {
      const ourTerm = this.term(i);
      if (ourTerm === null) return [i, 0];
      if (ourTerm <= term) return [i, ourTerm];
    }
    return [0, 0];
  }

  /**
   * Appends the leader's entries after (index, logTerm) if our log matches there (Raft §5.3).
   * Returns the last index the leader now knows we hold, or null on a mismatch.
   */
  maybeAppend(
    index: number,
    logTerm: number,
    committed: number,
    entries: readonly Entry[],
  ): number | null {
    if (!this.matchTerm(index, logTerm)) return null;
    const lastNew = index + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(
        conflict > this.committed,
        `entry ${conflict} conflicts with committed ${this.committed}`,
      );
      this.append(entries.slice(conflict - (index + 1)));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(entries: readonly Entry[]): number {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    assert(
      first.index - 1 >= this.committed,
      `append at ${first.index} below commit ${this.committed}`,
    );
    assert(first.index <= this.lastIndex() + 1, `append at ${first.index} leaves a gap`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  /** Entries [low, high) within maxBytes, or 'compacted' when low was compacted away. */
  slice(low: number, high: number, maxBytes: number): Entry[] | 'compacted' {
    if (low >= high) return [];
    if (low < this.firstIndex()) return 'compacted';
    assert(high <= this.lastIndex() + 1, `slice [${low},${high}) beyond last ${this.lastIndex()}`);
    const offset = this.unstable.offset;
    let result: Entry[] = [];
    if (low < offset) {
      const storedHigh = Math.min(high, offset);
      try {
        result = this.storage.entries(low, storedHigh, maxBytes);
      } catch (error) {
        if (error instanceof RaftStorageError && error.kind === 'compacted') return 'compacted';
        throw error;
      }
      // Storage stopped early because of the size limit: the unstable part cannot follow.
      if (result.length < storedHigh - low) return result;
    }
    if (high > offset) {
      result = [...result, ...this.unstable.slice(Math.max(low, offset), high)];
    }
    return limitSize(result, maxBytes);
  }

  entriesFrom(low: number, maxBytes: number): Entry[] | 'compacted' {
    if (low > this.lastIndex()) return [];
    return this.slice(low, this.lastIndex() + 1, maxBytes);
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== null;
  }

  /** Committed entries not yet handed out to apply; none while a snapshot is pending. */
  nextCommittedEntries(): Entry[] {
    if (this.hasPendingSnapshot()) return [];
    const low = Math.max(this.applied + 1, this.firstIndex());
    const entries = this.slice(low, this.committed + 1, this.maxCommittedBytes);
    assert(entries !== 'compacted', `committed entries from ${low} were compacted before applying`);
    return entries;
  }

  hasNextCommittedEntries(): boolean {
    if (this.hasPendingSnapshot()) return false;
    return this.committed > Math.max(this.applied, this.firstIndex() - 1);
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(index: number): void {
    if (index <= this.committed) return; // commit never moves back
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  appliedTo(index: number): void {
    if (index === 0) return;
    assert(
      index <= this.committed && index >= this.applied,
      `applied ${index} outside [${this.applied},${this.committed}]`,
    );
    this.applied = index;
  }

  stableTo(index: number, term: number): void {
    this.unstable.stableTo(index, term);
  }

  stableSnapTo(index: number): void {
    this.unstable.stableSnapTo(index);
  }

  /** Commits up to maxIndex only if that entry is from `term` (Raft §5.4.2, Figure 8). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }
}
