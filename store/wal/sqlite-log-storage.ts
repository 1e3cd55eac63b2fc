import { limitSize } from '../raft/raft-log.js';
import { RaftStorageError } from '../raft/types.js';
import type { ConfState, Entry, HardState, LogStorage, Snapshot } from '../raft/types.js';
import type { Backend } from '../mvcc/backend.js';

const ENTRY_TYPES = ['normal', 'conf-change'] as const;

/**
 * Raft's stable storage on the member's SQLite file: the raft_log table, the hard state and the
 * last snapshot's index and term in meta. A snapshot's data is the whole database, serialized on
 * demand when a follower needs one, at the applied index.
 */
export class SqliteLogStorage implements LogStorage {
  private cachedSnapshot: Snapshot | null = null;

  constructor(private backend: Backend, private readonly confState: ConfState) {}

  /** After a snapshot replaced the database file, the Raft core keeps this object: point it anew. */
  useBackend(backend: Backend): void {
    this.backend = backend;
    this.cachedSnapshot = null;
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    const vote = this.backend.getMeta('vote');
    return {
      hardState: {
        term: this.backend.getMetaNumber('term', 0),
        vote: typeof vote === 'string' && vote !== '' ? BigInt(vote) : 0n,
        commit: this.backend.getMetaNumber('commit', 0),
      },
      confState: this.confState,
    };
  }

  private snapshotIndex(): number {
    return this.backend.getMetaNumber('snapshot_index', 0);
  }

  entries(low: number, high: number, maxBytes: number): Entry[] {
    if (low <= this.snapshotIndex() || low < this.firstIndex()) throw new RaftStorageError('compacted');
    if (high > this.lastIndex() + 1) throw new RaftStorageError('unavailable');
    const rows = this.backend.logRange(low, high);
    const entries = rows.map((r): Entry => ({ index: r.idx, term: r.term, type: ENTRY_TYPES[r.type] ?? 'normal', data: r.data }));
    return limitSize(entries, maxBytes);
  }

  term(index: number): number {
    const snapshotIndex = this.snapshotIndex();
    if (index === snapshotIndex) return this.backend.getMetaNumber('snapshot_term', 0);
    if (index < snapshotIndex) throw new RaftStorageError('compacted');
    const term = this.backend.logTerm(index);
    if (term !== undefined) return term;
    const { first } = this.backend.logBounds();
    if (first !== null && index < first) throw new RaftStorageError('compacted');
    throw new RaftStorageError('unavailable');
  }

  firstIndex(): number {
    const { first } = this.backend.logBounds();
    return first ?? this.snapshotIndex() + 1;
  }

  lastIndex(): number {
    const { last } = this.backend.logBounds();
    return last ?? this.snapshotIndex();
  }

  snapshot(): Snapshot {
    const applied = this.backend.getMetaNumber('applied_index', 0);
    if (this.cachedSnapshot !== null && this.cachedSnapshot.metadata.index === applied) return this.cachedSnapshot;
    if (applied === 0) throw new RaftStorageError('snapshot-temporarily-unavailable');
    let term: number;
    try {
      term = this.term(applied);
    } catch {
      throw new RaftStorageError('snapshot-temporarily-unavailable');
    }
    this.cachedSnapshot = { metadata: { index: applied, term, confState: this.confState }, data: this.backend.db.serialize() };
    return this.cachedSnapshot;
  }

  /** Drops log entries up to `index` (kept in the snapshot's place), remembering its term. */
  compactTo(index: number): void {
    if (index <= this.snapshotIndex()) return;
    const term = this.term(index);
    this.backend.setMeta('snapshot_index', index);
    this.backend.setMeta('snapshot_term', term);
    this.backend.compactLogTo(index);
  }
}
