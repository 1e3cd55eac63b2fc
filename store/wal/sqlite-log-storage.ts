import { limitSize } from '../raft/raft-log.js';
import { RaftStorageError } from '../raft/types.js';
import type { ConfState, Entry, HardState, LogStorage, Snapshot } from '../raft/types.js';
import type { Backend } from '../mvcc/backend.js';
import Database from 'better-sqlite3';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { decodeSnapshotRef, encodeSnapshotRef } from '../snapshot/snapshot-file.js';

const ENTRY_TYPES = ['normal', 'conf-change'] as const;
/** Database pages a snapshot copy takes per event-loop turn (1 MiB of 4 KiB pages). */
const SNAPSHOT_PAGES_PER_STEP = 256;
/**
 * The newest entries are also kept in memory (this many, trimmed back to it once a quarter over,
 * and no more bytes than this): Raft reads each entry back soon after appending it (to apply it
 * once committed, and on a leader to send it), and reading it from SQLite was 1-2% of a member's
 * time under load.
 */
const RECENT_ENTRIES_MAX = 4096;
const RECENT_BYTES_MAX = 16 * 1024 * 1024;

/** The applied index a database file holds (exclusive locking: no shared-memory file beside it). */
function appliedIndexOf(path: string): number {
  const copy = new Database(path, { fileMustExist: true });
  try {
    copy.pragma('locking_mode = EXCLUSIVE');
    const value = copy.prepare("SELECT value FROM meta WHERE name = 'applied_index'").pluck().get();
    return value === undefined || value === null ? 0 : Number(value);
  } finally {
    copy.close();
  }
}

/** A log row's bytes in SQLite: its data plus the index, term, type and record overhead. */
function rowBytes(dataBytes: number): number {
  return dataBytes + 24;
}

/**
 * Raft's stable storage on the member's SQLite file: the raft_log table, the hard state and the
 * last snapshot's index and term in meta. A snapshot is the whole database at the applied index,
 * written on demand (when a follower needs one) to a file in `snapshotDir`; the snapshot's data is
 * a reference to that file (store/snapshot/snapshot-file.ts). Without a directory (tests), the
 * data is the serialized database itself.
 */
export class SqliteLogStorage implements LogStorage {
  private cachedSnapshot: Snapshot | null = null;
  private isWritingSnapshot = false;
  private snapshotFiles = 0;
  /**
   * The log's bounds, the snapshot point and every kept entry's term, mirrored in memory: Raft asks
   * for them several times per message, and SQLite answers min() and max() together by a full scan.
   * This object is the log's only writer, so the mirror cannot go stale.
   */
  private snapIndex = 0;
  private snapTerm = 0;
  private first = 1;
  private terms: number[] = []; // terms[i] is the term of entry first + i
  private sizes: number[] = []; // sizes[i] is the byte size of entry first + i's row
  private bytes = 0; // the sum of sizes
  /** The newest entries, `recentFirst` on (see RECENT_ENTRIES_MAX), and their data's bytes. */
  private recent: Entry[] = [];
  private recentFirst = 0;
  private recentBytes = 0;

  /** `confState` reads the configuration as applied now (the membership table, kept durable). */
  constructor(private backend: Backend, private readonly confState: () => ConfState, private readonly snapshotDir: string | null = null) {
    this.load();
  }

  /** After a snapshot replaced the database file, the Raft core keeps this object: point it anew. */
  useBackend(backend: Backend): void {
    this.backend = backend;
    const previous = this.cachedSnapshot === null ? null : decodeSnapshotRef(this.cachedSnapshot.data);
    if (previous !== null) rmSync(previous.path, { force: true });
    this.cachedSnapshot = null;
    this.load();
  }

  private load(): void {
    this.snapIndex = this.backend.getMetaNumber('snapshot_index', 0);
    this.snapTerm = this.backend.getMetaNumber('snapshot_term', 0);
    const { first, last } = this.backend.logBounds();
    this.first = first ?? this.snapIndex + 1;
    const rows = first === null || last === null ? [] : this.backend.logRange(first, last + 1);
    this.terms = rows.map((r) => r.term);
    this.sizes = rows.map((r) => rowBytes(r.data.byteLength));
    this.bytes = this.sizes.reduce((sum, size) => sum + size, 0);
    this.recent = [];
    this.recentBytes = 0;
  }

  /**
   * Bytes the kept Raft log takes in the database file (approximately: data plus row overhead).
   * etcd keeps its log in WAL files apart from the key-value database, so the space quota and the
   * reported database size leave it out; the server subtracts this.
   */
  logBytes(): number {
    return this.bytes;
  }

  /** Keeps `sizes`/`bytes` in step when the log is cut to its first `keep` kept entries. */
  private keepSizes(keep: number): void {
    const removed = this.sizes.splice(Math.max(0, keep));
    for (const size of removed) this.bytes -= size;
  }

  /** Appends entries (inside the caller's transaction), replacing any conflicting suffix. */
  append(entries: readonly Entry[]): void {
    const head = entries[0];
    if (head === undefined) return;
    // Only entries a new leader overwrites have rows to remove; appends past the end have none.
    if (head.index <= this.lastIndex()) this.backend.truncateLogFrom(head.index);
    for (const entry of entries) this.backend.appendLog(entry.index, entry.term, entry.type === 'normal' ? 0 : 1, entry.data);
    if (this.terms.length === 0) this.first = head.index;
    this.terms.length = Math.max(0, head.index - this.first);
    this.keepSizes(this.terms.length);
    for (const entry of entries) {
      this.terms.push(entry.term);
      const size = rowBytes(entry.data.byteLength);
      this.sizes.push(size);
      this.bytes += size;
    }
    this.remember(entries);
  }

  /** Adds appended entries to the in-memory tail: what they replace goes, and the oldest beyond the bounds. */
  private remember(entries: readonly Entry[]): void {
    const head = entries[0] as Entry;
    const keep = head.index - this.recentFirst;
    if (this.recent.length === 0 || keep < 0 || keep > this.recent.length) {
      this.recent = [];
      this.recentBytes = 0;
      this.recentFirst = head.index;
    } else {
      for (const dropped of this.recent.splice(keep)) this.recentBytes -= dropped.data.byteLength;
    }
    for (const entry of entries) {
      this.recent.push(entry);
      this.recentBytes += entry.data.byteLength;
    }
    // Trimmed a quarter at a time, not on every append once full.
    if (this.recent.length <= RECENT_ENTRIES_MAX * 1.25 && this.recentBytes <= RECENT_BYTES_MAX) return;
    let drop = 0;
    while (this.recent.length - drop > RECENT_ENTRIES_MAX || (this.recentBytes > RECENT_BYTES_MAX && this.recent.length - drop > 1)) {
      this.recentBytes -= (this.recent[drop] as Entry).data.byteLength;
      drop++;
    }
    if (drop > 0) {
      this.recent.splice(0, drop);
      this.recentFirst += drop;
    }
  }

  initialState(): { hardState: HardState; confState: ConfState } {
    const vote = this.backend.getMeta('vote');
    return {
      hardState: {
        term: this.backend.getMetaNumber('term', 0),
        vote: typeof vote === 'string' && vote !== '' ? BigInt(vote) : 0n,
        commit: this.backend.getMetaNumber('commit', 0),
      },
      confState: this.confState(),
    };
  }

  private snapshotIndex(): number {
    return this.snapIndex;
  }

  entries(low: number, high: number, maxBytes: number): Entry[] {
    if (low <= this.snapshotIndex() || low < this.firstIndex()) throw new RaftStorageError('compacted');
    if (high > this.lastIndex() + 1) throw new RaftStorageError('unavailable');
    if (low >= this.recentFirst && high <= this.recentFirst + this.recent.length) {
      return limitSize(this.recent.slice(low - this.recentFirst, high - this.recentFirst), maxBytes);
    }
    const rows = this.backend.logRange(low, high);
    const entries = rows.map((r): Entry => ({ index: r.idx, term: r.term, type: ENTRY_TYPES[r.type] ?? 'normal', data: r.data }));
    return limitSize(entries, maxBytes);
  }

  term(index: number): number {
    if (index === this.snapIndex) return this.snapTerm;
    if (index < this.snapIndex) throw new RaftStorageError('compacted');
    const term = this.terms[index - this.first];
    if (term !== undefined) return term;
    if (this.terms.length > 0 && index < this.first) throw new RaftStorageError('compacted');
    throw new RaftStorageError('unavailable');
  }

  firstIndex(): number {
    return this.terms.length > 0 ? this.first : this.snapIndex + 1;
  }

  lastIndex(): number {
    return this.terms.length > 0 ? this.first + this.terms.length - 1 : this.snapIndex;
  }

  snapshot(): Snapshot {
    const cached = this.cachedSnapshot;
    // Any snapshot the log still continues from will do: the follower catches up from its index.
    if (cached !== null && cached.metadata.index >= this.snapIndex) return cached;
    const applied = this.backend.getMetaNumber('applied_index', 0);
    if (applied === 0) throw new RaftStorageError('snapshot-temporarily-unavailable');
    if (this.snapshotDir === null) {
      this.cachedSnapshot = { metadata: { index: applied, term: this.term(applied), confState: this.confState() }, data: this.backend.db.serialize() };
      return this.cachedSnapshot;
    }
    this.writeSnapshotFile(this.snapshotDir);
    throw new RaftStorageError('snapshot-temporarily-unavailable');
  }

  /**
   * Copies the database to a file with SQLite's online backup, a bounded number of pages per
   * event-loop turn, so a leader keeps sending heartbeats however large the file. Writes made
   * through our connection meanwhile reach the copy too, so the copy is the database as of the
   * turn the backup ends: its index is the one applied then. Raft asks again and gets it.
   */
  private writeSnapshotFile(dir: string): void {
    if (this.isWritingSnapshot) return;
    this.isWritingSnapshot = true;
    const backend = this.backend;
    const path = join(dir, `snapshot-${++this.snapshotFiles}.db`);
    rmSync(path, { force: true });
    backend.db.backup(path, { progress: () => SNAPSHOT_PAGES_PER_STEP }).then(() => {
      this.isWritingSnapshot = false;
      const applied = backend.getMetaNumber('applied_index', 0);
      const index = this.backend === backend ? appliedIndexOf(path) : -1;
      // Not the state applied now (cannot happen as SQLite documents it), or no longer useful.
      if (index <= 0 || index !== applied || index < this.snapIndex) {
        rmSync(path, { force: true });
        return;
      }
      const previous = this.cachedSnapshot === null ? null : decodeSnapshotRef(this.cachedSnapshot.data);
      if (previous !== null) rmSync(previous.path, { force: true });
      this.cachedSnapshot = {
        metadata: { index, term: this.term(index), confState: this.confState() },
        data: encodeSnapshotRef({ path, bytes: statSync(path).size }),
      };
    }, () => {
      // The database closed under it (a stop, or a snapshot from a leader replaced it).
      this.isWritingSnapshot = false;
      rmSync(path, { force: true });
    });
  }

  /** Drops log entries up to `index` (kept in the snapshot's place), remembering its term. */
  compactTo(index: number): void {
    if (index <= this.snapshotIndex()) return;
    const term = this.term(index);
    this.backend.setMeta('snapshot_index', index);
    this.backend.setMeta('snapshot_term', term);
    this.backend.compactLogTo(index);
    this.snapIndex = index;
    this.snapTerm = term;
    const dropped = Math.min(this.terms.length, index + 1 - this.first);
    if (dropped > 0) {
      this.terms.splice(0, dropped);
      for (const size of this.sizes.splice(0, dropped)) this.bytes -= size;
      this.first += dropped;
    }
    if (this.terms.length === 0) this.first = index + 1;
  }
}
