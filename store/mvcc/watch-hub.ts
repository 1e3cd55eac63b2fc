import { assert } from '../../shared/assert.js';
import type { MvccStore } from './kv-store.js';
import type { KeyValue, MvccEvent } from './types.js';

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

interface Watcher extends WatcherSpec {
  /** Watchers with equal keys here select the same events from a revision. */
  readonly selectionKey: string;
  nextRev: number;
  synced: boolean;
  closed: boolean;
}

/** Rows read from the backend per catch-up step; one step is one event-loop turn. */
const CATCH_UP_ROWS_MAX = 1000;

/**
 * Delivers every change to the watchers that asked for it, once and in revision order. A watcher
 * whose start revision is in the past is "unsynced": it replays history from the backend in
 * bounded steps, one per event-loop turn, and joins the synced group in the same turn in which it
 * reaches the current revision, so nothing is missed or repeated at the hand-over. One that a
 * compaction overtakes is told so and dropped.
 */
export class WatchHub {
  private readonly synced = new Set<Watcher>();
  private readonly unsynced = new Set<Watcher>();
  /** Watchers whose consumer is not ready: nothing is sent to them until resumed. */
  private readonly parked = new Set<Watcher>();
  private catchUpScheduled = false;

  constructor(private kv: MvccStore) {}

  /**
   * A snapshot from the leader replaced the store: every watcher catches up again from its next
   * revision against the new history.
   */
  replaceStore(kv: MvccStore): void {
    this.kv = kv;
    for (const watcher of this.synced) {
      watcher.synced = false;
      this.unsynced.add(watcher);
    }
    this.synced.clear();
    if (this.unsynced.size > 0) this.scheduleCatchUp();
  }

  add(spec: WatcherSpec): WatchHandle {
    const selectionKey = [
      spec.key.toString('latin1'), spec.rangeEnd.toString('latin1'),
      spec.noPut ? 1 : 0, spec.noDelete ? 1 : 0, spec.prevKv ? 1 : 0,
    ].join('\u0000');
    const watcher: Watcher = { ...spec, selectionKey, nextRev: spec.startRev, synced: false, closed: false };
    if (watcher.nextRev > this.kv.currentRev) {
      watcher.synced = true;
      this.synced.add(watcher);
    } else {
      this.unsynced.add(watcher);
      this.scheduleCatchUp();
    }
    return {
      cancel: () => {
        watcher.closed = true;
        this.synced.delete(watcher);
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

  /** Stops sending to a watcher whose consumer is full; its nextRev is where it resumes. */
  private park(watcher: Watcher): void {
    watcher.synced = false;
    this.synced.delete(watcher);
    this.unsynced.delete(watcher);
    this.parked.add(watcher);
  }

  private isBlocked(watcher: Watcher): boolean {
    return watcher.isReady !== undefined && !watcher.isReady();
  }

  /**
   * Called after the entries that produced `revisions` are durable. A watcher gets one batch for
   * all the revisions of one call (events in revision order, header at the last revision it has
   * events of), as etcd batches a catching-up watcher's revisions: under load a call carries a
   * whole group commit, and one response per revision per watcher was most of the cost of a
   * 1,000-watcher fan-out. Watchers of the same range and options share one selection per
   * revision.
   */
  notify(revisions: readonly (readonly MvccEvent[])[]): void {
    if (this.synced.size === 0) return;
    const batches = new Map<Watcher, { events: MvccEvent[]; headerRevision: number }>();
    for (const events of revisions) {
      const first = events[0];
      if (first === undefined) continue;
      const rev = first.kv.modRevision;
      const previous = new Map<MvccEvent, KeyValue | null>();
      const selections = new Map<string, MvccEvent[]>();
      for (const watcher of this.synced) {
        if (rev < watcher.nextRev) continue;
        // A consumer that cannot keep up is not buffered for without bound: parked before this
        // revision, it reads it (and what follows) from the backend once it has drained.
        if (this.isBlocked(watcher)) {
          this.park(watcher);
          continue;
        }
        let mine = selections.get(watcher.selectionKey);
        if (mine === undefined) {
          mine = this.select(watcher, events, previous);
          selections.set(watcher.selectionKey, mine);
        }
        watcher.nextRev = rev + 1;
        if (mine.length === 0) continue;
        const batch = batches.get(watcher);
        if (batch === undefined) {
          batches.set(watcher, { events: [...mine], headerRevision: rev });
        } else {
          for (const event of mine) batch.events.push(event);
          batch.headerRevision = rev;
        }
      }
    }
    for (const [watcher, batch] of batches) {
      if (!watcher.closed) watcher.deliver(batch);
    }
  }

  /**
   * The events one watcher wants. `previous` caches prev_kv lookups (a backend read each) so that
   * several prev_kv watchers of one event share a single read.
   */
  private select(watcher: Watcher, events: readonly MvccEvent[], previous = new Map<MvccEvent, KeyValue | null>()): MvccEvent[] {
    const out: MvccEvent[] = [];
    for (const event of events) {
      if (event.type === 'put' ? watcher.noPut : watcher.noDelete) continue;
      if (!inRange(event.kv.key, watcher.key, watcher.rangeEnd)) continue;
      let prevKv: KeyValue | null = null;
      // As etcd: a create event (create revision = mod revision) has no prev_kv, even when the
      // key was deleted and created again within one revision and so existed just before it.
      const isCreate = event.type === 'put' && event.kv.createRevision === event.kv.modRevision;
      if (watcher.prevKv && !isCreate) {
        if (!previous.has(event)) previous.set(event, this.kv.previousOf(event.kv.key, event.kv.modRevision));
        prevKv = previous.get(event) ?? null;
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

  private catchUpStep(): void {
    for (const watcher of [...this.unsynced]) {
      if (watcher.closed) continue;
      if (this.isBlocked(watcher)) {
        this.park(watcher);
        continue;
      }
      if (watcher.nextRev < this.kv.compactRev) {
        watcher.closed = true;
        this.unsynced.delete(watcher);
        watcher.compacted(this.kv.compactRev);
        continue;
      }
      const batch = this.kv.eventsFrom(watcher.nextRev, CATCH_UP_ROWS_MAX);
      const events = batch.events.filter((e) => e.kv.modRevision >= watcher.nextRev);
      const mine = this.select(watcher, events);
      const reached = batch.complete ? this.kv.currentRev : batch.lastRev;
      assert(reached >= watcher.nextRev - 1, 'catch-up must not go back');
      watcher.nextRev = reached + 1;
      if (mine.length > 0) watcher.deliver({ events: mine, headerRevision: this.kv.currentRev });
      if (batch.complete) {
        this.unsynced.delete(watcher);
        watcher.synced = true;
        this.synced.add(watcher);
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
