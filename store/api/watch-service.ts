import type { ServerDuplexStream, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { MvccEvent } from '../mvcc/types.js';
import type { WatchBatch, WatchHandle } from '../mvcc/watch-hub.js';
import { AuthError } from '../auth/errors.js';
import type { ApiContext } from './context.js';
import { bool, bytes, int, type Wire } from './codec.js';
import { eventResponse, eventResponseParts } from './watch-response-encoder.js';
import { failStream, refusedRequest } from './context.js';
import { chunkBySize } from '../../shared/chunks.js';
import { ReusedList } from './reused-list.js';

/** Above this many bytes a response of a watcher that asked for fragments is split (etcd: 2 MiB). */
const FRAGMENT_BYTES_MAX = 2 * 1024 * 1024;
/** etcd's default progress-notify interval. */
const PROGRESS_NOTIFY_MS = 10 * 60 * 1000;

interface StreamWatcher {
  readonly id: number;
  /** Whether its responses are split above FRAGMENT_BYTES_MAX (the create request's fragment). */
  readonly fragment: boolean;
  handle: WatchHandle | null;
  progressNotify: boolean;
  sentSinceProgress: boolean;
  /** performance.now() when its current rate window began, and the batches handed in it. */
  windowStartMs: number;
  batchesInWindow: number;
  /** Busy in the last window: responses at most one per the stream's held interval. */
  isBusy: boolean;
  /** performance.now() of its last event response. */
  lastSentMs: number;
  /**
   * Batches held until the end of its interval (see BUSY_BATCHES). One list for the watcher's
   * life, emptied when sent: held batches outlive a scavenge or two, and a new container per
   * watcher per interval (with a new map of them per stream) was the largest part of a fan-out's
   * old-generation garbage.
   */
  readonly held: ReusedList<WatchBatch>;
}

/**
 * Bytes of responses queued on one stream and not yet sent (the client's flow-control window is
 * full: it stopped reading) beyond which its watchers are parked: sent nothing more until the
 * queue has drained to half of this, then they catch up from the backend. A client that reads
 * slowly so costs bounded memory, as etcd's slow watchers do, and misses nothing (or is cancelled
 * with compact_revision if a compaction overtakes it).
 */
const QUEUED_BYTES_MAX = 4 * 1024 * 1024;

/**
 * A watcher handed BUSY_BATCHES batches or more within one RATE_WINDOW_MS (200 a second) is busy,
 * from that batch on and for the next window: it is sent at most one response per interval
 * (below), what comes in between held and joined. A watcher that sees a few events at a time (or
 * a short burst) gets each response at once, as from etcd; one in a sustained fan-out of hundreds
 * of puts a second gets its events in fewer, larger responses, and its client spends a fraction
 * of the time per event (a response costs a Go client several times what an event in it does),
 * as etcd's slow watchers get multi-revision batches.
 */
const RATE_WINDOW_MS = 25;
const BUSY_BATCHES = 5;
/**
 * A stream's busy watchers share one interval: RESPONSE_INTERVAL_MS with a few of them, longer
 * with many, so that the stream carries about HELD_RESPONSES_PER_S held responses a second
 * whatever its fan-out (a client's cost goes with its responses: 1,000 watchers answered every
 * 10 ms would be 100,000 a second), and never more than RESPONSE_INTERVAL_MAX_MS.
 */
const RESPONSE_INTERVAL_MS = 10;
const RESPONSE_INTERVAL_MAX_MS = 100;
const HELD_RESPONSES_PER_S = 2500;
/**
 * Batches handed to a stream's watchers (each one a response, were none held) in one
 * RATE_WINDOW_MS that make the stream busy: 2,500 a second.
 */
const STREAM_BUSY_BATCHES = Math.ceil((HELD_RESPONSES_PER_S * RATE_WINDOW_MS) / 1000);

/**
 * The calls a watch stream is served on (our gRPC server's and the gateway's) also say how much
 * is queued, and call back when it has drained below a mark.
 */
type WatchCall = ServerDuplexStream<Wire, Wire> & {
  onceWritableBelow(bytes: number, listener: () => void): void;
  /** Our gRPC server's calls take an encoded message as parts (see eventResponseParts). */
  writeParts?(parts: readonly Buffer[]): boolean;
};

/** etcdserverpb.Watch: one bidirectional stream multiplexes many watchers. */
export function watchService(ctx: ApiContext): UntypedServiceImplementation {
  return {
    Watch: (stream: ServerDuplexStream<Wire, Wire>) => new WatchStream(ctx, stream as WatchCall).start(),
  };
}

class WatchStream {
  private readonly watchers = new Map<number, StreamWatcher>();
  private nextId = 0;
  private closed = false;
  private progressTimer: NodeJS.Timeout | null = null;
  private hasParked = false;
  /** The header of the last event response: one revision's responses share it (and its bytes). */
  private lastEventHeader: Wire | null = null;
  /**
   * Watchers with batches held until the end of their interval (see BUSY_BATCHES), in the order
   * they were first held. At most one interval's worth: a client that stops reading is met by
   * parking (isReady), as the held batches are written into the queue when the interval ends.
   * Two lists taking turns, so that an interval's sending allocates none.
   */
  private heldWatchers = new ReusedList<StreamWatcher>();
  private spareHeldWatchers = new ReusedList<StreamWatcher>();
  private heldTimer: NodeJS.Timeout | null = null;
  /** The stream's own rate window (see countStreamBatch). */
  private windowStartMs = -Infinity;
  private batchesInWindow = 0;
  private isBusyStream = false;
  /** The busy watchers' interval, set by how many had batches held in the last one. */
  private heldIntervalMs = RESPONSE_INTERVAL_MS;

  constructor(private readonly ctx: ApiContext, private readonly stream: WatchCall) {}

  start(): void {
    if (!this.ctx.leaderStreams.admit(this.stream)) return;
    this.stream.on('data', (request: Wire) => this.onRequest(request));
    const close = (): void => this.close();
    // As etcd: a client's half-close ends no watch; the stream lives until the client cancels
    // it or goes away (etcd waits for the stream's context, not for the end of its requests).
    this.stream.on('end', () => {});
    this.stream.on('error', close);
    this.stream.on('cancelled', close);
    this.progressTimer = setInterval(() => this.progressTick(), PROGRESS_NOTIFY_MS);
    this.progressTimer.unref();
  }

  /** A response other than events: held events go first, so it never overtakes them. */
  private send(response: Wire): void {
    if (this.closed) return;
    if (this.heldWatchers.size > 0) this.sendHeld();
    this.stream.write(response);
  }

  /** Whether more events may be queued on this stream; false parks the asking watcher. */
  private isReady(): boolean {
    if (this.stream.writableLength < QUEUED_BYTES_MAX) return true;
    if (!this.hasParked) {
      this.hasParked = true;
      this.stream.onceWritableBelow(QUEUED_BYTES_MAX / 2, () => {
        this.hasParked = false;
        for (const watcher of this.watchers.values()) watcher.handle?.resume();
      });
    }
    return false;
  }

  private onRequest(request: Wire): void {
    const refused = refusedRequest(request);
    if (refused !== null) {
      this.close();
      failStream(this.stream, refused);
      return;
    }
    switch (request['request_union']) {
      case 'create_request': this.create((request['create_request'] ?? {}) as Wire); break;
      case 'cancel_request': this.cancel(int(((request['cancel_request'] ?? {}) as Wire)['watch_id'])); break;
      case 'progress_request': this.send({ header: this.ctx.header(), watch_id: -1 }); break;
      default: break;
    }
  }

  private create(w: Wire): void {
    const server = this.ctx.server;
    let key = bytes(w['key']);
    const rangeEnd = bytes(w['range_end']);
    if (key.length === 0) key = Buffer.from([0]);
    const refuse = (reason: string): void =>
      this.send({ header: this.ctx.header(), watch_id: -1, created: true, canceled: true, cancel_reason: reason });
    const isFromKey = rangeEnd.length === 1 && rangeEnd[0] === 0;
    if (!this.permitted(key, isFromKey ? Buffer.alloc(0) : rangeEnd, refuse)) return;
    if (rangeEnd.length > 0 && !isFromKey && Buffer.compare(key, rangeEnd) >= 0) {
      refuse('mvcc: watcher range is empty');
      return;
    }
    let id = int(w['watch_id']);
    if (id !== 0) {
      if (this.watchers.has(id)) {
        refuse('mvcc: duplicate watch ID provided on the WatchStream');
        return;
      }
    } else {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    const filters = Array.isArray(w['filters']) ? (w['filters'] as unknown[]).map((f) => int(f)) : [];
    const startRevRequested = int(w['start_revision']);
    const startRev = startRevRequested === 0 ? server.kv.currentRev + 1 : startRevRequested;
    this.send({ header: this.ctx.header(), watch_id: id, created: true });
    if (startRevRequested !== 0 && startRev < server.kv.compactRev) {
      this.sendCompacted(id, server.kv.compactRev);
      return;
    }
    const fragment = bool(w['fragment']);
    const entry: StreamWatcher = {
      id, fragment, handle: null, progressNotify: bool(w['progress_notify']), sentSinceProgress: false,
      windowStartMs: -Infinity, batchesInWindow: 0, isBusy: false, lastSentMs: -Infinity, held: new ReusedList(),
    };
    const handle = server.watch({
      isReady: () => this.isReady(),
      key, rangeEnd, startRev,
      noPut: filters.includes(0),
      noDelete: filters.includes(1),
      prevKv: bool(w['prev_kv']),
      deliver: (batch) => {
        entry.sentSinceProgress = true;
        this.deliver(entry, batch);
      },
      compacted: (compactRevision) => {
        this.watchers.delete(id);
        this.sendCompacted(id, compactRevision);
      },
    });
    entry.handle = handle;
    this.watchers.set(id, entry);
  }

  /**
   * A watcher needs read permission on its range, checked once when it is created. etcd 3.4 turns
   * a from-key range_end into an empty one before checking, so a from-key watch is checked as its
   * first key alone; we do the same.
   */
  private permitted(key: Buffer, rangeEnd: Buffer, refuse: (reason: string) => void): boolean {
    try {
      this.ctx.server.applier.auth.checkKeys(this.ctx.callerNow(this.stream), 'read', key, rangeEnd);
      return true;
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      refuse(err.grpcText());
      return false;
    }
  }

  private deliver(watcher: StreamWatcher, batch: WatchBatch): void {
    const nowMs = performance.now();
    if (nowMs - watcher.windowStartMs >= RATE_WINDOW_MS) {
      // A window with no batch at all after it (a quiet spell) is not busy either.
      watcher.isBusy = watcher.batchesInWindow >= BUSY_BATCHES && nowMs - watcher.windowStartMs < 2 * RATE_WINDOW_MS;
      watcher.windowStartMs = nowMs;
      watcher.batchesInWindow = 0;
    }
    // Busy from the batch that reaches the mark, not from the next window: a fan-out's first
    // window would otherwise be answered a response per batch, as many as all the rest.
    if (++watcher.batchesInWindow >= BUSY_BATCHES) watcher.isBusy = true;
    if (watcher.held.size > 0) {
      watcher.held.push(batch);
      return;
    }
    const isStreamBusy = this.countStreamBatch(nowMs);
    if (!(isStreamBusy || watcher.isBusy) || nowMs - watcher.lastSentMs >= this.heldIntervalMs) {
      watcher.lastSentMs = nowMs;
      this.sendBatch(watcher.id, batch, watcher.fragment);
      return;
    }
    watcher.held.push(batch);
    this.heldWatchers.push(watcher);
    // One timer for the stream: its busy watchers are handed the same batches at the same time.
    this.heldTimer ??= setTimeout(() => {
      this.heldTimer = null;
      this.sendHeld();
    }, this.heldIntervalMs);
  }

  /**
   * Counts a batch handed to one of the stream's watchers, and says whether the stream itself is
   * busy: it was handed STREAM_BUSY_BATCHES or more in one RATE_WINDOW_MS, in the last window or
   * this one. Then every watcher on it is held as a busy one: a fan-out of many watchers each
   * seeing a moderate rate is as much for one client as a few busy watchers.
   */
  private countStreamBatch(nowMs: number): boolean {
    if (nowMs - this.windowStartMs >= RATE_WINDOW_MS) {
      this.isBusyStream = this.batchesInWindow >= STREAM_BUSY_BATCHES && nowMs - this.windowStartMs < 2 * RATE_WINDOW_MS;
      this.windowStartMs = nowMs;
      this.batchesInWindow = 0;
    }
    return ++this.batchesInWindow >= STREAM_BUSY_BATCHES || this.isBusyStream;
  }

  /** Each watcher's held batches as one response (fragmented, if asked, as any other). */
  private sendHeld(): void {
    const held = this.heldWatchers;
    this.heldWatchers = this.spareHeldWatchers;
    this.spareHeldWatchers = held;
    const fanOutMs = (held.size * 1000) / HELD_RESPONSES_PER_S;
    this.heldIntervalMs = Math.min(RESPONSE_INTERVAL_MAX_MS, Math.max(RESPONSE_INTERVAL_MS, fanOutMs));
    if (this.heldTimer !== null) clearTimeout(this.heldTimer);
    this.heldTimer = null;
    const nowMs = performance.now();
    for (let i = 0; i < held.size; i++) {
      const watcher = held.at(i);
      if (!this.closed) this.sendHeldOf(watcher, nowMs);
      watcher.held.clear();
    }
    held.clear();
  }

  /** One watcher's held batches as one response (a cancelled watcher's too: they came first). */
  private sendHeldOf(watcher: StreamWatcher, nowMs: number): void {
    const { id, fragment, held } = watcher;
    watcher.lastSentMs = nowMs;
    const last = held.at(held.size - 1);
    if (held.size === 1) {
      this.sendBatch(id, last, fragment);
      return;
    }
    const eventLists: (readonly MvccEvent[])[] = [];
    for (let i = 0; i < held.size; i++) eventLists.push(held.at(i).events);
    const parts = fragment || this.stream.writeParts === undefined ? null
      : eventResponseParts(this.eventHeader(last.headerRevision), id, eventLists);
    if (parts !== null && this.stream.writeParts !== undefined) this.stream.writeParts(parts);
    else this.sendBatch(id, { events: eventLists.flat(), headerRevision: last.headerRevision }, fragment);
  }

  private sendBatch(id: number, batch: WatchBatch, fragment: boolean): void {
    const header = this.eventHeader(batch.headerRevision);
    const size = approxSize(batch.events);
    if (!fragment || batch.events.length < 2 || size <= FRAGMENT_BYTES_MAX) {
      this.sendEvents(header, id, batch.events, false);
      return;
    }
    const chunks = chunkBySize(batch.events, Number.POSITIVE_INFINITY, FRAGMENT_BYTES_MAX, (event) => approxSize([event]));
    chunks.forEach((part, i) => this.sendEvents(header, id, part, i < chunks.length - 1));
  }

  /** An event response: written as encoded parts where the call takes them, else as an object. */
  private sendEvents(header: Wire, id: number, events: readonly MvccEvent[], isFragment: boolean): void {
    if (this.closed) return;
    const parts = this.stream.writeParts === undefined ? null : eventResponseParts(header, id, [events], isFragment);
    if (parts !== null && this.stream.writeParts !== undefined) this.stream.writeParts(parts);
    // Not send(): that would let out held batches of busy watchers early.
    else this.stream.write(eventResponse(header, id, events, isFragment));
  }

  private eventHeader(revision: number): Wire {
    const last = this.lastEventHeader;
    if (last !== null && last['revision'] === revision && last['raft_term'] === this.ctx.server.term) return last;
    this.lastEventHeader = this.ctx.header(revision);
    return this.lastEventHeader;
  }

  /** etcd's answer to a watcher whose revisions were compacted: canceled, no header revision. */
  private sendCompacted(id: number, compactRevision: number): void {
    const server = this.ctx.server;
    const header = { cluster_id: server.config.clusterId.toString(), member_id: server.memberId.toString(), raft_term: server.term };
    this.send({ header, watch_id: id, canceled: true, compact_revision: compactRevision });
  }

  private cancel(id: number): void {
    const watcher = this.watchers.get(id);
    if (watcher === undefined) return; // etcd answers nothing for an unknown ID
    watcher.handle?.cancel();
    this.watchers.delete(id);
    // Its held events (of writes answered before the cancel came) go out first, in send().
    this.send({ header: this.ctx.header(), watch_id: id, canceled: true });
  }

  /**
   * A progress notification says "you have seen everything up to this revision": only true of a
   * watcher that has caught up, so one still replaying history (or parked) gets none, as in etcd.
   */
  private progressTick(): void {
    for (const [id, watcher] of this.watchers) {
      const isSynced = watcher.handle?.isSynced() === true;
      if (watcher.progressNotify && !watcher.sentSinceProgress && isSynced) this.send({ header: this.ctx.header(), watch_id: id });
      watcher.sentSinceProgress = false;
    }
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.progressTimer !== null) clearInterval(this.progressTimer);
    for (let i = 0; i < this.heldWatchers.size; i++) this.heldWatchers.at(i).held.clear();
    this.heldWatchers.clear();
    if (this.heldTimer !== null) clearTimeout(this.heldTimer);
    for (const watcher of this.watchers.values()) watcher.handle?.cancel();
    this.watchers.clear();
  }
}

function approxSize(events: readonly MvccEvent[]): number {
  let size = 0;
  for (const e of events) size += e.kv.key.length + e.kv.value.length + (e.prevKv === null ? 0 : e.prevKv.key.length + e.prevKv.value.length) + 32;
  return size;
}
