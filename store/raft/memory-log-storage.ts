import { assert } from '../../shared/assert.js';
import { limitSize } from './raft-log.js';
import { RaftStorageError } from './types.js';
import type { ConfState, Entry, HardState, LogStorage, Snapshot } from './types.js';

const emptyData = new Uint8Array(0);

/**
 * A LogStorage in memory, for tests and for the server until the SQLite one exists. `entries[0]`
 * is a dummy holding the index and term of the last compacted entry (the snapshot's), so term()
 * still answers for firstIndex - 1, which the core needs to check the next append.
 */
export class MemoryLogStorage implements LogStorage {
  private hardState: HardState = { term: 0, vote: 0n, commit: 0 };
  private currentSnapshot: Snapshot;
  private entryList: Entry[];

  constructor(confState: ConfState) {
    this.currentSnapshot = { metadata: { index: 0, term: 0, confState }, data: emptyData };
    this.entryList = [{ index: 0, term: 0, type: 'normal', data: emptyData }];
  }

  /** The configuration as applied beyond the snapshot, which a restart starts from. */
  private appliedConfState: ConfState | null = null;

  initialState(): { hardState: HardState; confState: ConfState } {
    return { hardState: this.hardState, confState: this.appliedConfState ?? this.currentSnapshot.metadata.confState };
  }

  /** Records the configuration after an applied conf change (the server keeps it durable). */
  setConfState(confState: ConfState): void {
    this.appliedConfState = confState;
  }

  private offset(): number {
    return (this.entryList[0] as Entry).index;
  }

  entries(low: number, high: number, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (low <= offset) throw new RaftStorageError('compacted');
    if (high > this.lastIndex() + 1) throw new RaftStorageError('unavailable');
    return limitSize(this.entryList.slice(low - offset, high - offset), maxBytes);
  }

  term(index: number): number {
    const offset = this.offset();
    if (index < offset) throw new RaftStorageError('compacted');
    const entry = this.entryList[index - offset];
    if (entry === undefined) throw new RaftStorageError('unavailable');
    return entry.term;
  }

  firstIndex(): number {
    return this.offset() + 1;
  }

  lastIndex(): number {
    return this.offset() + this.entryList.length - 1;
  }

  snapshot(): Snapshot {
    return this.currentSnapshot;
  }

  hardStateNow(): HardState {
    return this.hardState;
  }

  setHardState(hardState: HardState): void {
    this.hardState = hardState;
  }

  /** Replaces the whole log with a snapshot received from the leader; older ones are refused. */
  applySnapshot(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    assert(index > this.currentSnapshot.metadata.index, `snapshot ${index} is out of date`);
    this.currentSnapshot = snapshot;
    this.entryList = [{ index, term, type: 'normal', data: emptyData }];
  }

  /** Records a snapshot of the state machine at `index` (already applied by the caller). */
  createSnapshot(index: number, confState: ConfState, data: Uint8Array): Snapshot {
    assert(index > this.currentSnapshot.metadata.index, `snapshot ${index} is out of date`);
    assert(index <= this.lastIndex(), `snapshot ${index} beyond last index ${this.lastIndex()}`);
    this.currentSnapshot = { metadata: { index, term: this.term(index), confState }, data };
    return this.currentSnapshot;
  }

  /** Drops entries up to `index`; the caller has a snapshot at or beyond it. */
  compact(index: number): void {
    const offset = this.offset();
    if (index <= offset) return;
    assert(index <= this.lastIndex(), `compact ${index} beyond last index ${this.lastIndex()}`);
    const kept = this.entryList.slice(index - offset);
    const head = kept[0] as Entry;
    kept[0] = { index: head.index, term: head.term, type: 'normal', data: emptyData };
    this.entryList = kept;
  }

  /** Appends entries after truncating any conflicting suffix; skips those before firstIndex. */
  append(entries: readonly Entry[]): void {
    const firstNew = entries[0];
    const lastNew = entries[entries.length - 1];
    if (firstNew === undefined || lastNew === undefined) return;
    const first = this.firstIndex();
    if (lastNew.index < first) return;
    const usable = firstNew.index < first ? entries.slice(first - firstNew.index) : entries;
    const start = (usable[0] as Entry).index - this.offset();
    assert(start <= this.entryList.length, `append at ${(usable[0] as Entry).index} leaves a gap`);
    if (start === this.entryList.length) {
      for (const entry of usable) this.entryList.push(entry);
    } else {
      this.entryList = [...this.entryList.slice(0, start), ...usable];
    }
  }
}
