import { assert } from '../../shared/assert.js';
import type { MvccStore } from './kv-store.js';
import type { KeyValue, MvccEvent } from './types.js';
import { KeyRangeIndex } from './key-range-index.js';

/** A batch handed to a watcher: events of one or more whole revisions, and the header revision. */
export interface WatchBatch {
  readonly events: readonly MvccEvent[];
  readonly headerRevision: number;
}

export interface WatcherSpec {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  /** The first revision whose events this watcher wants. */
  readonly startRev: number;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly deliver: (batch: WatchBatch) => void;
  /**
   * Called, and the watcher dropped, when revisions it has not seen yet were compacted away
   * before it read them (a watcher catching up, or one re-syncing after a snapshot install), as
   * etcd cancels such a watcher with the compaction revision instead of skipping them.
   */
  readonly compacted: (compactRevision: number) => void;
  /**
   * False while the consumer cannot take more (its stream's send buffer is full): the watcher is
   * then parked, sent nothing, and catches up from the backend once resumed. Absent: always ready.
   */
  readonly isReady?: () => boolean;
}

export interface WatchHandle {
  cancel(): void;
  /** The consumer can take events again: a parked watcher catches up from where it stopped. */
  resume(): void;
  /** Whether the watcher has reached the current revision (progress notifications need that). */
  isSynced(): boolean;
}

interface Watcher extends Omit<WatcherSpec, 'isReady'> {
  readonly isReady: () => boolean;
  /** Watchers with equal keys here select the same events from a revision. */
  readonly selectionKey: string;
  /**
   * The first revision not handed to it yet. While it is synced this stays behind for revisions
   * that had nothing for it (see notifiedRev); positionOf gives where it really is.
   */
  nextRev: number;
  synced: boolean;
  closed: boolean;
}

/** The synced watchers of one range and one set of options: they see the same events. */
interface Selection {
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
  readonly noPut: boolean;
  readonly noDelete: boolean;
  readonly prevKv: boolean;
  readonly selectionKey: string;
  readonly watchers: Set<Watcher>;
  /** Its events from the notify call under way (in revision order); null when none yet. */
  picked: MvccEvent[] | null;
}

const alwaysReady = (): boolean => true;

/** Rows read from the backend per catch-up step; one step is one event-loop turn. */
const CATCH_UP_ROWS_MAX = 1000;

/**
 * Delivers every change to the watchers that asked for it, once and in revision order. A watcher
 * whose start revision is in the past is "unsynced": it replays history from the backend in
 * bounded steps, one per event-loop turn, and joins the synced group in the same turn in which it
 * reaches the current revision, so nothing is missed or repeated at the hand-over. One that a
 * compaction overtakes is told so and dropped.
 *
 * Synced watchers are grouped by range and options; an event is matched against the groups that
 * hold its key (a map for single keys, a KeyRangeIndex for ranges), never against every watcher,
 * and each group's events are selected once and shared by all its watchers.
 */
export class WatchHub {
  private readonly synced = new Set<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  /** Watchers whose consumer is not ready: nothing is sent to them until resumed. */
  private readonly parked = new Set<Watcher>();
  /** Groups of synced watchers, by selection key. */
  private readonly selections = new Map<string, Selection>();
  /** Groups watching one key, by the key (latin1). */
  private readonly singleKeys = new Map<string, Selection[]>();
  /** Groups watching a range or every key from one on. */
  private readonly ranges = new KeyRangeIndex<Selection>();
  /** The last revision handed to the synced watchers (every revision up to it was). */
  private notifiedRev = 0;
  private catchUpScheduled = false;

  constructor(private kv: MvccStore) {}

  /**
   * A snapshot from the leader replaced the store: every watcher catches up again from its next
   * revision against the new history.
   */
  replaceStore(kv: MvccStore): void {
    this.kv = kv;
    for (const watcher of [...this.synced]) {
      this.leaveSynced(watcher, this.positionOf(watcher));
      this.unsynced.add(watcher);
    }
    if (this.unsynced.size > 0) this.scheduleCatchUp();
  }

  add(spec: WatcherSpec): WatchHandle {
    const selectionKey = [
      spec.key.toString('latin1'), spec.rangeEnd.toString('latin1'),
      spec.noPut ? 1 : 0, spec.noDelete ? 1 : 0, spec.prevKv ? 1 : 0,
    ].join('\u0000');
    // Spelled out, not spread from spec: V8 gives spread copies a shape that made every property
    // read in the fan-out loop several times slower (1,000 watchers: 680 → 110 ns per delivery).
    const watcher: Watcher = {
      key: spec.key, rangeEnd: spec.rangeEnd, startRev: spec.startRev,
      noPut: spec.noPut, noDelete: spec.noDelete, prevKv: spec.prevKv,
      deliver: spec.deliver, compacted: spec.compacted, isReady: spec.isReady ?? alwaysReady,
      selectionKey, nextRev: spec.startRev, synced: false, closed: false,
    };
    if (watcher.nextRev > this.kv.currentRev) {
      this.joinSynced(watcher);
    } else {
      this.unsynced.add(watcher);
      this.scheduleCatchUp();
    }
    return {
      cancel: () => {
        watcher.closed = true;
        if (watcher.synced) this.leaveSynced(watcher, watcher.nextRev);
        this.unsynced.delete(watcher);
        this.parked.delete(watcher);
      },
      resume: () => {
        if (watcher.closed || !this.parked.delete(watcher)) return;
        this.unsynced.add(watcher);
        this.scheduleCatchUp();
      },
      isSynced: () => watcher.synced,
    };
  }

  get size(): number {
    return this.synced.size + this.unsynced.size + this.parked.size;
  }

  /** Watchers behind the current revision: replaying history, or parked (etcd's slow watchers). */
  get slowCount(): number {
    return this.unsynced.size + this.parked.size;
  }

  private joinSynced(watcher: Watcher): void {
    watcher.synced = true;
    this.synced.add(watcher);
    let selection = this.selections.get(watcher.selectionKey);
    if (selection === undefined) {
      selection = {
        key: watcher.key, rangeEnd: watcher.rangeEnd, prevKv: watcher.prevKv,
        noPut: watcher.noPut, noDelete: watcher.noDelete,
        selectionKey: watcher.selectionKey, watchers: new Set(), picked: null,
      };
      this.selections.set(selection.selectionKey, selection);
      if (selection.rangeEnd.length === 0) {
        const id = selection.key.toString('latin1');
        const list = this.singleKeys.get(id);
        if (list === undefined) this.singleKeys.set(id, [selection]);
        else list.push(selection);
      } else {
        const isFromKey = selection.rangeEnd.length === 1 && selection.rangeEnd[0] === 0;
        this.ranges.add(selection, selection.key, isFromKey ? null : selection.rangeEnd);
      }
    }
    selection.watchers.add(watcher);
  }

  /** Out of the synced group, to go on from `nextRev` when it comes back. */
  private leaveSynced(watcher: Watcher, nextRev: number): void {
    watcher.nextRev = nextRev;
    watcher.synced = false;
    this.synced.delete(watcher);
    const selection = this.selections.get(watcher.selectionKey);
    if (selection === undefined || !selection.watchers.delete(watcher)) return;
    if (selection.watchers.size > 0) return;
    this.selections.delete(selection.selectionKey);
    if (selection.rangeEnd.length > 0) {
      this.ranges.delete(selection);
      return;
    }
    const id = selection.key.toString('latin1');
    const rest = (this.singleKeys.get(id) ?? []).filter((s) => s !== selection);
    if (rest.length === 0) this.singleKeys.delete(id);
    else this.singleKeys.set(id, rest);
  }

  /** Where a watcher is: a synced one has seen every revision up to notifiedRev. */
  private positionOf(watcher: Watcher): number {
    return watcher.synced ? Math.max(watcher.nextRev, this.notifiedRev + 1) : watcher.nextRev;
  }

  /** Stops sending to a watcher whose consumer is full; it resumes from `nextRev`. */
  private park(watcher: Watcher, nextRev: number): void {
    if (watcher.synced) this.leaveSynced(watcher, nextRev);
    this.unsynced.delete(watcher);
    this.parked.add(watcher);
  }

  private isBlocked(watcher: Watcher): boolean {
    return !watcher.isReady();
  }

  /**
   * Called after the entries that produced `revisions` are durable. A watcher gets one batch for
   * all the revisions of one call (events in revision order, header at the last revision it has
   * events of), as etcd batches a catching-up watcher's revisions: under load a call carries a
   * whole group commit, and one response per revision per watcher was most of the cost of a
   * 1,000-watcher fan-out. Watchers of one group share one events array.
   */
  notify(revisions: readonly (readonly MvccEvent[])[]): void {
    const touched: Selection[] = [];
    const firstRev = this.notifiedRev + 1;
    for (const events of revisions) {
      const first = events[0];
      if (first === undefined) continue;
      if (this.synced.size > 0) this.pick(events, touched);
      this.notifiedRev = Math.max(this.notifiedRev, first.kv.modRevision);
    }
    for (const selection of touched) {
      const picked = selection.picked as MvccEvent[];
      selection.picked = null;
      // One batch object for every watcher that takes all of them (nearly all do).
      const whole: WatchBatch = { events: picked, headerRevision: (picked[picked.length - 1] as MvccEvent).kv.modRevision };
      for (const watcher of selection.watchers) this.hand(watcher, picked, whole, firstRev);
    }
  }

  /** Adds one revision's events to the groups that want them; a group is touched once. */
  private pick(events: readonly MvccEvent[], touched: Selection[]): void {
    for (const event of events) {
      let previous: KeyValue | null | undefined;
      let plain: MvccEvent | undefined;
      const take = (selection: Selection): void => {
        if (event.type === 'put' ? selection.noPut : selection.noDelete) return;
        let picked: MvccEvent;
        // As etcd: a create event (create revision = mod revision) has no prev_kv, even when
        // the key was deleted and created again within one revision and so existed before it.
        const isCreate = event.type === 'put' && event.kv.createRevision === event.kv.modRevision;
        if (selection.prevKv && !isCreate) {
          if (previous === undefined) {
            previous = this.kv.previousOf(event.kv.key, event.kv.modRevision);
          }
          picked = { type: event.type, kv: event.kv, prevKv: previous };
        } else {
          plain ??= { type: event.type, kv: event.kv, prevKv: null };
          picked = plain;
        }
        if (selection.picked === null) {
          selection.picked = [];
          touched.push(selection);
        }
        selection.picked.push(picked);
      };
      if (this.singleKeys.size > 0) {
        const selections = this.singleKeys.get(event.kv.key.toString('latin1'));
        if (selections !== undefined) for (const selection of selections) take(selection);
      }
      this.ranges.forEachHolding(event.kv.key, take);
    }
  }

  /** Hands a group's events to one of its watchers: those from its next revision on. */
  private hand(watcher: Watcher, picked: readonly MvccEvent[], whole: WatchBatch, firstRev: number): void {
    if (watcher.closed || !watcher.synced) return;
    const first = picked[0] as MvccEvent;
    // Only a watcher that started ahead, or joined while these revisions awaited their fsync,
    // has a next revision inside them.
    const mine = watcher.nextRev <= first.kv.modRevision
      ? picked
      : picked.filter((e) => e.kv.modRevision >= watcher.nextRev);
    const last = mine[mine.length - 1];
    if (last === undefined) return;
    // A consumer that cannot keep up is not buffered for without bound: parked, it reads these
    // revisions (and what follows) from the backend once it has drained.
    if (this.isBlocked(watcher)) {
      this.park(watcher, Math.max(watcher.nextRev, firstRev));
      return;
    }
    watcher.nextRev = last.kv.modRevision + 1;
    watcher.deliver(mine === picked ? whole : { events: mine, headerRevision: last.kv.modRevision });
  }

  /** The events one catching-up watcher wants from what it read from the backend. */
  private select(watcher: Watcher, events: readonly MvccEvent[]): MvccEvent[] {
    const out: MvccEvent[] = [];
    for (const event of events) {
      if (event.type === 'put' ? watcher.noPut : watcher.noDelete) continue;
      if (!inRange(event.kv.key, watcher.key, watcher.rangeEnd)) continue;
      let prevKv: KeyValue | null = null;
      const isCreate = event.type === 'put' && event.kv.createRevision === event.kv.modRevision;
      if (watcher.prevKv && !isCreate) {
        prevKv = this.kv.previousOf(event.kv.key, event.kv.modRevision);
      }
      out.push({ type: event.type, kv: event.kv, prevKv });
    }
    return out;
  }

  private scheduleCatchUp(): void {
    if (this.catchUpScheduled) return;
    this.catchUpScheduled = true;
    setImmediate(() => {
      this.catchUpScheduled = false;
      this.catchUpStep();
      if (this.unsynced.size > 0) this.scheduleCatchUp();
    });
  }

  /**
   * One step for every unsynced watcher. Watchers are taken in order of their next revision, and
   * one backend read serves all those whose next revision lies in the revisions it covers (parked
   * watchers of a fan-out resume close together: 1,000 of them were 1,000 reads of the same rows),
   * as etcd syncs its unsynced watchers from one range read; watchers of the same range, options
   * and next revision share one selection. A watcher past the read gets a read of its own.
   */
  private catchUpStep(): void {
    const due: Watcher[] = [];
    for (const watcher of this.unsynced) {
      if (watcher.closed) continue;
      if (this.isBlocked(watcher)) this.park(watcher, watcher.nextRev);
      else due.push(watcher);
    }
    due.sort((a, b) => a.nextRev - b.nextRev);
    let read: { events: readonly MvccEvent[]; reached: number; complete: boolean } | null = null;
    const selections = new Map<string, MvccEvent[]>();
    for (const watcher of due) {
      if (watcher.closed) continue; // cancelled by a delivery of this step
      if (read === null || watcher.nextRev > read.reached + 1) {
        if (watcher.nextRev < this.kv.compactRev) {
          watcher.closed = true;
          this.unsynced.delete(watcher);
          watcher.compacted(this.kv.compactRev);
          continue;
        }
        const batch = this.kv.eventsFrom(watcher.nextRev, CATCH_UP_ROWS_MAX);
        const reached = batch.complete ? this.kv.currentRev : batch.lastRev;
        read = { events: batch.events, reached, complete: batch.complete };
        assert(read.reached >= watcher.nextRev - 1, 'catch-up must not go back');
        selections.clear();
      }
      const selectionKey = `${watcher.nextRev}\u0000${watcher.selectionKey}`;
      let mine = selections.get(selectionKey);
      if (mine === undefined) {
        const from = watcher.nextRev;
        mine = this.select(watcher, read.events.filter((e) => e.kv.modRevision >= from));
        selections.set(selectionKey, mine);
      }
      watcher.nextRev = read.reached + 1;
      if (mine.length > 0) watcher.deliver({ events: mine, headerRevision: this.kv.currentRev });
      if (read.complete && !watcher.closed) {
        this.unsynced.delete(watcher);
        this.joinSynced(watcher);
      }
    }
  }
}

/** etcd's range convention: empty end = one key; end "\0" = every key ≥ key. */
export function inRange(key: Buffer, from: Buffer, end: Buffer): boolean {
  if (end.length === 0) return key.equals(from);
  if (Buffer.compare(key, from) < 0) return false;
  if (end.length === 1 && end[0] === 0) return true;
  return Buffer.compare(key, end) < 0;
}
