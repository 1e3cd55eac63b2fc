import { assert } from '../../shared/assert.js';
import type { Backend, KvRow } from './backend.js';
import { StoreError } from './errors.js';
import { KeyHistory, NO_LEASE, type KeyRevision } from './key-index.js';
import { SortedKeys } from './sorted-keys.js';
import { ValueArena } from './value-arena.js';
import type {
  DeleteRangeRequest, DeleteRangeResult, KeyValue, MvccEvent, PutRequest, PutResult, RangeRequest,
  RangeResult, SortTarget,
} from './types.js';

/** Tells the lessor which lease a key belongs to, as writes move keys between leases. */
export interface LeaseAttachments {
  attach(lease: bigint, key: string): void;
  detach(lease: bigint, key: string): void;
}

const noAttachments: LeaseAttachments = { attach: () => {}, detach: () => {} };

const EMPTY = Buffer.alloc(0);
const ZERO_KEY = '\u0000';
/**
 * Holes in the value arena beyond its live bytes that trigger a pass moving values out of sparse
 * slabs. With the live bytes added, a pass runs at most once per this many bytes overwritten.
 */
export const ARENA_HOLE_BYTES_SLACK = 16 * 1024 * 1024;

export function keyString(key: Buffer): string {
  return key.toString('latin1');
}

/**
 * The multi-version key-value store: every write creates a new main revision; reads can look at
 * any revision above the compaction point. The newest value of each key lives in memory so that
 * reads at the current revision never touch SQLite. Synchronous and deterministic: the same writes
 * in the same order give the same state on every member.
 */
export class MvccStore {
  /** The newest revision; 1 on an empty store, so the first write makes revision 2 (as etcd). */
  currentRev = 1;
  /** The compaction point; -1 until the first compaction. Reads below it fail. */
  compactRev = -1;
  /** A compaction whose rows are still being removed (compactStep), and where it has got to. */
  private compaction: { readonly rev: number; readonly keys: Iterator<[string, KeyHistory]> } | null = null;
  private readonly keys = new Map<string, KeyHistory>();
  /** Keys whose newest revision is not a tombstone (etcd_debugging_mvcc_keys_total). */
  private liveKeyCount = 0;
  /** Put and DeleteRange operations applied, as etcd counts them (etcd_mvcc_put_total, _delete_total). */
  readonly operations = { puts: 0, deletes: 0 };
  private readonly sorted = new SortedKeys();
  private readonly values = new ValueArena();
  private attachments: LeaseAttachments = noAttachments;

  constructor(private readonly backend: Backend) {
    this.restore();
  }

  setLeaseAttachments(attachments: LeaseAttachments): void {
    this.attachments = attachments;
  }

  /** Every live key and its lease, for rebuilding the lessor after a restart. */
  *liveKeys(): Generator<KeyValue> {
    for (const [name, history] of this.keys) {
      if (!history.isTombstone) yield this.latestOf(name, history);
    }
  }

  private restore(): void {
    for (const row of this.backend.scanAll()) {
      const name = keyString(row.key);
      const history = this.historyFor(name, row.main, row.sub, row.tombstone);
      this.setLatest(history, row.tombstone ? null : rowToKv(row));
      if (row.main > this.currentRev) this.currentRev = row.main;
    }
    for (const history of this.keys.values()) if (!history.isTombstone) this.liveKeyCount++;
    this.currentRev = Math.max(this.currentRev, this.backend.getMetaNumber('current_rev', 1));
    this.compactRev = this.backend.getMetaNumber('compact_rev', -1);
    if (this.compactRev > 0 && this.backend.getMetaNumber('compaction_pending', 0) === 1) {
      this.compaction = { rev: this.compactRev, keys: this.keys.entries() };
    }
  }

  /** Checks a requested read revision: ≤ 0 means current (etcd does not reject negatives). */
  resolveReadRev(revision: number): number {
    if (revision <= 0) return this.currentRev;
    if (revision > this.currentRev) throw new StoreError('future-rev');
    if (revision < this.compactRev) throw new StoreError('compacted');
    return revision;
  }

  range(request: RangeRequest): RangeResult {
    const rev = this.resolveReadRev(request.revision);
    return rangeWith(request, (visit) => this.visitLive(request.key, request.rangeEnd, rev, visit));
  }

  /** The live value of one key at the current revision. */
  get(key: Buffer): KeyValue | null {
    const name = keyString(key);
    const history = this.keys.get(name);
    return history === undefined || history.isTombstone ? null : this.latestOf(name, history);
  }

  /** Live key-values in [key, rangeEnd) at `rev`, in key order, etcd's range conventions. */
  visitLive(key: Buffer, rangeEnd: Buffer, rev: number, visit: (kv: KeyValue) => boolean): void {
    if (rangeEnd.length === 0) {
      const name = keyString(key);
      const history = this.keys.get(name);
      if (history !== undefined) {
        const kv = this.valueAt(name, history, rev);
        if (kv !== null) visit(kv);
      }
      return;
    }
    const from = keyString(key);
    const isFromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    const to = isFromKey ? undefined : keyString(rangeEnd);
    if (to !== undefined && to <= from) return;
    this.sorted.forEachInRange(from === ZERO_KEY && isFromKey ? '' : from, to, (name) => {
      const history = this.keys.get(name);
      if (history === undefined) return true;
      const kv = this.valueAt(name, history, rev);
      return kv === null ? true : visit(kv);
    });
  }

  private valueAt(name: string, history: KeyHistory, rev: number): KeyValue | null {
    // The common case: the key has not changed since `rev`, its value is in memory.
    if (history.main <= rev) return history.isTombstone ? null : this.latestOf(name, history);
    const at = history.at(rev);
    if (at === undefined || at.tombstone) return null;
    return this.loadKv(at);
  }

  private loadKv(at: KeyRevision): KeyValue {
    const row = this.backend.getKv(at.main, at.sub);
    assert(row !== undefined && !row.tombstone, `missing kv row ${at.main}.${at.sub}`);
    return rowToKv(row);
  }

  /**
   * A watcher's prev_kv, as etcd computes it: the key read at revision `rev - 1`, so nothing when
   * that revision is compacted or the key did not exist then. (Within one txn this is the state
   * before the txn, not before the op.)
   */
  previousOf(key: Buffer, rev: number): KeyValue | null {
    if (rev - 1 < this.compactRev) return null;
    const history = this.keys.get(keyString(key));
    if (history === undefined) return null;
    const at = history.at(rev - 1);
    if (at === undefined || at.tombstone) return null;
    return this.loadKv(at);
  }

  /** Starts the single write transaction of one applied request. */
  beginWrite(): WriteTxn {
    return new WriteTxn(this, this.backend);
  }

  /** Called by WriteTxn: records one new revision of a key, in memory and in the backend. */
  recordWrite(kv: KeyValue, sub: number, tombstone: boolean): void {
    const name = keyString(kv.key);
    const known = this.keys.get(name);
    const wasLive = known !== undefined && !known.isTombstone;
    const oldLease = wasLive ? known.lease : NO_LEASE;
    if (wasLive !== !tombstone) this.liveKeyCount += tombstone ? -1 : 1;
    const history = this.historyFor(name, kv.modRevision, sub, tombstone);
    const row: KvRow = {
      main: kv.modRevision, sub, key: kv.key, value: tombstone ? null : kv.value,
      createRevision: tombstone ? 0 : kv.createRevision, version: tombstone ? 0 : kv.version,
      lease: tombstone ? 0n : kv.lease, tombstone,
    };
    this.backend.insertKv(row);
    this.setLatest(history, tombstone ? null : kv);
    const newLease = tombstone ? NO_LEASE : kv.lease;
    if (oldLease !== newLease) {
      if (oldLease !== 0n) this.attachments.detach(oldLease, name);
      if (newLease !== 0n) this.attachments.attach(newLease, name);
    }
  }

  /** Called by WriteTxn when it wrote anything: the store moves to the new revision. */
  commitRevision(rev: number): void {
    assert(rev === this.currentRev + 1, `revision must grow by one: ${this.currentRev} -> ${rev}`);
    this.currentRev = rev;
    // Not stored per revision: every revision writes kv rows, and a restart takes the newest row's
    // revision. Only a compaction can remove the newest rows (trailing tombstones): it stores it.
    const holeBytesMax = this.values.liveBytes + ARENA_HOLE_BYTES_SLACK;
    if (this.values.holeBytes > holeBytesMax) this.relocateValues();
  }

  /** The history of `name` with (main, sub) appended as its newest revision; indexes new keys. */
  private historyFor(name: string, main: number, sub: number, tombstone: boolean): KeyHistory {
    const history = this.keys.get(name);
    if (history !== undefined) {
      history.append(main, sub, tombstone);
      return history;
    }
    const created = new KeyHistory(main, sub, tombstone);
    this.keys.set(name, created);
    this.sorted.insert(name);
    return created;
  }

  /** Sets the live state of the newest revision: `kv`, or nothing for a tombstone. */
  private setLatest(history: KeyHistory, kv: KeyValue | null): void {
    const slab = history.valueSlab;
    const value = kv === null ? EMPTY : kv.value;
    // A put that kept the value (ignore_value) hands back a view of the bytes already held.
    const isSameBytes =
      slab !== null &&
      value.buffer === slab.bytes.buffer &&
      value.byteOffset === slab.bytes.byteOffset + history.valueOffset &&
      value.length === history.valueLength;
    if (!isSameBytes) {
      if (slab !== null) this.values.release(slab, history.valueLength);
      this.placeValue(history, value);
    }
    history.createRevision = kv === null ? 0 : kv.createRevision;
    history.version = kv === null ? 0 : kv.version;
    history.lease = kv === null || kv.lease === 0n ? NO_LEASE : kv.lease;
  }

  private placeValue(history: KeyHistory, value: Buffer): void {
    const slab = this.values.store(value);
    history.valueSlab = slab;
    history.valueOffset = slab === null ? 0 : slab.used - value.length;
    history.valueLength = value.length;
  }

  /** The key's newest revision as a KeyValue; the caller checked it is not a tombstone. */
  private latestOf(name: string, history: KeyHistory): KeyValue {
    const slab = history.valueSlab;
    return {
      key: Buffer.from(name, 'latin1'),
      createRevision: history.createRevision,
      modRevision: history.main,
      version: history.version,
      value: slab === null ? EMPTY : slab.view(history.valueOffset, history.valueLength),
      lease: history.lease,
    };
  }

  /**
   * Moves values out of slabs that are less than half live, so the slabs can be collected.
   * Slabs are never written twice at one offset, so views handed out earlier stay valid.
   */
  private relocateValues(): void {
    for (const history of this.keys.values()) {
      const slab = history.valueSlab;
      if (slab === null || !this.values.isSparse(slab)) continue;
      const bytes = slab.view(history.valueOffset, history.valueLength);
      this.values.release(slab, history.valueLength);
      this.placeValue(history, bytes);
    }
  }

  /**
   * Compacts history below `rev` (the caller checked it against compactRev and currentRev). Reads
   * below `rev` fail from now on, which is all a compaction means to a client; the rows and index
   * entries they no longer reach are removed afterwards by compactStep, in batches between
   * event-loop turns, as etcd compacts 1,000 keys at a time: a store with millions of revisions
   * then keeps answering heartbeats while it compacts. Rows left over are invisible meanwhile.
   */
  compact(rev: number): void {
    assert(rev > this.compactRev && rev <= this.currentRev, `bad compaction revision ${rev}`);
    this.compactRev = rev;
    this.backend.setMeta('compact_rev', rev);
    this.backend.setMeta('current_rev', this.currentRev);
    // Persisted, so that a restart (or a snapshot sent meanwhile) finishes the removal.
    this.backend.setMeta('compaction_pending', 1);
    this.compaction = { rev, keys: this.keys.entries() };
  }

  /** Whether rows below the compaction point may still be waiting to be removed. */
  get isCompacting(): boolean {
    return this.compaction !== null;
  }

  /**
   * Removes what the pending compaction made unreachable, for at most `keysMax` keys, in one
   * backend transaction. Returns true once nothing is left to remove.
   */
  compactStep(keysMax: number): boolean {
    const compaction = this.compaction;
    if (compaction === null) return true;
    const { rev } = compaction;
    const drop = (main: number, sub: number): void => this.backend.deleteKv(main, sub);
    return this.backend.transaction(() => {
      const emptied: string[] = [];
      let visited = 0;
      let isDone = false;
      while (visited < keysMax) {
        const next = compaction.keys.next();
        if (next.done === true) {
          isDone = true;
          break;
        }
        const [name, history] = next.value;
        if (history.compact(rev, drop)) emptied.push(name);
        visited++;
      }
      for (const name of emptied) {
        const history = this.keys.get(name);
        if (history?.valueSlab != null) this.values.release(history.valueSlab, history.valueLength);
        this.keys.delete(name);
        this.sorted.remove(name);
      }
      if (!isDone) return false;
      this.relocateValues();
      this.compaction = null;
      this.backend.setMeta('compaction_pending', 0);
      return true;
    });
  }

  /** Runs the pending compaction to its end now (before hashing or serializing every row). */
  finishCompaction(): void {
    while (!this.compactStep(Number.MAX_SAFE_INTEGER));
  }

  /** Events of every revision in [fromRev, …] in revision order, at most `maxRows` rows. */
  eventsFrom(fromRev: number, maxRows: number): { events: MvccEvent[]; lastRev: number; complete: boolean } {
    let rows = this.backend.scanFrom(fromRev, maxRows + 1);
    let use = rows.length <= maxRows ? rows : rows.slice(0, maxRows);
    if (rows.length > maxRows) {
      // Never split a revision between two batches.
      const cut = (rows[maxRows] as KvRow).main;
      use = use.filter((r) => r.main < cut);
      if (use.length === 0) {
        // The first revision alone has more rows than a batch: it is read whole, however large.
        let limit = maxRows + 1;
        while (rows.length === limit && (rows.at(-1) as KvRow).main === cut) {
          limit *= 2;
          rows = this.backend.scanFrom(fromRev, limit);
        }
        use = rows.filter((r) => r.main === cut);
      }
    }
    const events = use.map((row) => rowToEvent(row));
    const last = use[use.length - 1];
    return { events, lastRev: last === undefined ? this.currentRev : last.main, complete: use.length === rows.length };
  }

  keyCount(): number {
    return this.sorted.size;
  }

  /** Keys that exist now (not deleted). */
  liveKeyTotal(): number {
    return this.liveKeyCount;
  }

  /** Bytes of the newest values held in memory, and bytes their slabs hold beyond them. */
  valueMemory(): { liveBytes: number; holeBytes: number } {
    return { liveBytes: this.values.liveBytes, holeBytes: this.values.holeBytes };
  }
}

/** One write transaction: all its changes share main revision currentRev + 1. */
export class WriteTxn {
  readonly rev: number;
  private sub = 0;
  readonly events: MvccEvent[] = [];

  constructor(private readonly store: MvccStore, private readonly backend: Backend) {
    this.rev = store.currentRev + 1;
  }

  get hasWrites(): boolean {
    return this.sub > 0;
  }

  /** The revision a read inside this txn reports: the new one only once something was written. */
  get readRev(): number {
    return this.hasWrites ? this.rev : this.store.currentRev;
  }

  range(request: RangeRequest): RangeResult {
    if (request.revision > 0 && request.revision <= this.store.currentRev) return this.store.range(request);
    if (request.revision > this.readRev) throw new StoreError('future-rev');
    return rangeWith(request, (visit) => this.store.visitLive(request.key, request.rangeEnd, Number.MAX_SAFE_INTEGER, visit));
  }

  put(request: PutRequest): PutResult {
    this.store.operations.puts++;
    const previous = this.store.get(request.key);
    const value = request.ignoreValue ? (previous?.value ?? EMPTY) : request.value;
    const lease = request.ignoreLease ? (previous?.lease ?? 0n) : request.lease;
    // The store copies the value into its arena; this object lives as long as the request.
    const kv: KeyValue = {
      key: previous === null ? request.key : previous.key,
      createRevision: previous === null ? this.rev : previous.createRevision,
      modRevision: this.rev,
      version: previous === null ? 1 : previous.version + 1,
      value,
      lease,
    };
    this.store.recordWrite(kv, this.sub++, false);
    this.events.push({ type: 'put', kv, prevKv: previous });
    return { revision: this.rev, prevKv: request.prevKv ? previous : null };
  }

  deleteRange(request: DeleteRangeRequest): DeleteRangeResult {
    this.store.operations.deletes++;
    const doomed: KeyValue[] = [];
    this.store.visitLive(request.key, request.rangeEnd, Number.MAX_SAFE_INTEGER, (kv) => {
      doomed.push(kv);
      return true;
    });
    for (const previous of doomed) {
      const tombstone: KeyValue = { key: previous.key, createRevision: 0, modRevision: this.rev, version: 0, value: EMPTY, lease: 0n };
      this.store.recordWrite(tombstone, this.sub++, true);
      this.events.push({ type: 'delete', kv: tombstone, prevKv: previous });
    }
    return {
      revision: doomed.length > 0 ? this.rev : this.readRev,
      deleted: doomed.length,
      prevKvs: request.prevKv ? doomed : [],
    };
  }

  /** Ends the transaction; returns the events it produced (empty when it wrote nothing). */
  end(): MvccEvent[] {
    if (this.hasWrites) this.store.commitRevision(this.rev);
    return this.events;
  }
}

type Visitor = (visit: (kv: KeyValue) => boolean) => void;

/** etcd's Range semantics over a source of live key-values in key order. */
function rangeWith(request: RangeRequest, source: Visitor): RangeResult {
  const hasFilter =
    request.minModRevision !== 0 || request.maxModRevision !== 0 ||
    request.minCreateRevision !== 0 || request.maxCreateRevision !== 0;
  let sortOrder = request.sortOrder;
  if (request.sortTarget !== 'key' && sortOrder === 'none') sortOrder = 'ascend';
  // etcd reads only limit+1 keys when it will neither sort (by request) nor filter.
  const readLimit = request.limit > 0 && request.sortOrder === 'none' && !hasFilter ? request.limit + 1 : 0;
  let count = 0;
  const kvs: KeyValue[] = [];
  source((kv) => {
    count++;
    if (request.countOnly) return true;
    if (readLimit === 0 || kvs.length < readLimit) kvs.push(kv);
    return true;
  });
  if (request.countOnly) return { kvs: [], more: false, count };
  let selected = hasFilter ? kvs.filter((kv) => passes(request, kv)) : kvs;
  if (sortOrder !== 'none' && !(sortOrder === 'ascend' && request.sortTarget === 'key')) {
    selected = sortKvs(selected, request.sortTarget, sortOrder === 'descend');
  }
  let more = false;
  if (request.limit > 0 && selected.length > request.limit) {
    selected = selected.slice(0, request.limit);
    more = true;
  }
  if (request.keysOnly) selected = selected.map((kv) => ({ ...kv, value: EMPTY }));
  return { kvs: selected, more, count };
}

function passes(request: RangeRequest, kv: KeyValue): boolean {
  if (request.minModRevision > 0 && kv.modRevision < request.minModRevision) return false;
  if (request.maxModRevision > 0 && kv.modRevision > request.maxModRevision) return false;
  if (request.minCreateRevision > 0 && kv.createRevision < request.minCreateRevision) return false;
  if (request.maxCreateRevision > 0 && kv.createRevision > request.maxCreateRevision) return false;
  return true;
}

function sortKvs(kvs: KeyValue[], target: SortTarget, descending: boolean): KeyValue[] {
  const compare = (a: KeyValue, b: KeyValue): number => {
    switch (target) {
      case 'key': return Buffer.compare(a.key, b.key);
      case 'version': return a.version - b.version;
      case 'create': return a.createRevision - b.createRevision;
      case 'mod': return a.modRevision - b.modRevision;
      case 'value': return Buffer.compare(a.value, b.value);
    }
  };
  // A stable sort keeps ties in key order, in both directions, as etcd's results showed.
  return [...kvs].sort(descending ? (a, b) => compare(b, a) : compare);
}

function rowToKv(row: KvRow): KeyValue {
  return {
    key: row.key, createRevision: row.createRevision, modRevision: row.main, version: row.version,
    value: row.value ?? EMPTY, lease: row.lease,
  };
}

function rowToEvent(row: KvRow): MvccEvent & { sub: number } {
  if (row.tombstone) {
    return { type: 'delete', kv: { key: row.key, createRevision: 0, modRevision: row.main, version: 0, value: EMPTY, lease: 0n }, prevKv: null, sub: row.sub };
  }
  return { type: 'put', kv: rowToKv(row), prevKv: null, sub: row.sub };
}
