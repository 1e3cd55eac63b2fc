import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { Backend, KvRow } from '../mvcc/backend.js';
import { StoreError } from '../mvcc/errors.js';
import { hashKeyValuesInSteps } from '../mvcc/kv-hash.js';
import { PackedScan, type PackedRows } from '../mvcc/packed-rows.js';
import { writeEtcdSnapshot } from '../snapshot/etcd-snapshot.js';

/**
 * The Maintenance calls that read or rewrite the whole database (Hash, HashKV, Snapshot,
 * Defragment) run a bounded page at a time, with the event loop free between pages: heartbeats,
 * proposals and reads go on while they run, however large the store (etcd runs them beside its
 * Raft loop too). A scan reads through a ReadView, which pins the rows it reads.
 */
export interface ReadView {
  readonly backend: Backend;
  readonly currentRev: number;
  readonly compactRev: number;
  readonly appliedIndex: number;
  readonly leases: readonly { readonly id: bigint; readonly ttl: number }[];
  /** False once the member stopped or a leader's snapshot replaced the database. */
  isOpen(): boolean;
  release(): void;
}

/** What the member offers the maintenance calls. */
export interface MaintenanceHost {
  /**
   * A view with no compaction pending when it opens and none removing rows until release(). Rows
   * up to its revision change no other way, so a scan spread over many turns reads one state.
   */
  openReadView(): Promise<ReadView>;
  /** Resolves once no compaction has rows left to remove. */
  compactionSettled(): Promise<void>;
  readonly backend: Backend;
}

/** Rows read per SQLite query (the Snapshot's; the hashes' pages size themselves, PackedScan). */
const ROWS_PER_PAGE = 256;
/** A scan gives the event loop back after about this long (a heartbeat interval is 100 ms by default). */
const TURN_BUDGET_MS = 10;
/** Free pages returned to the file system per event-loop turn (1 MiB of 4 KiB pages). */
const DEFRAG_PAGES_PER_STEP = 256;
/** A scan that a snapshot install cut short starts again, at most this many times. */
const VIEW_ATTEMPTS = 3;

class ViewClosedError extends Error {
  override readonly name = 'ViewClosedError';
}

/**
 * Every row of the view up to `upTo`, in revision order. The caller's work on the rows counts
 * against the turn's budget: the generator resumes only once the caller is done with a row.
 */
function rowsOf(view: ReadView, upTo: number): AsyncGenerator<KvRow> {
  return pagesOf(view, (after) => view.backend.scanPage(after, upTo, ROWS_PER_PAGE));
}

async function* pagesOf(
  view: ReadView, page: (after: { main: number; sub: number }) => KvRow[],
): AsyncGenerator<KvRow> {
  let after = { main: -1, sub: -1 };
  let turnStartedMs = performance.now();
  for (;;) {
    if (!view.isOpen()) throw new ViewClosedError();
    const rows = page(after);
    yield* rows;
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < ROWS_PER_PAGE) return;
    after = { main: last.main, sub: last.sub };
    if (performance.now() - turnStartedMs >= TURN_BUDGET_MS) {
      await nextTurn();
      turnStartedMs = performance.now();
    }
  }
}

/** The view's rows up to `upTo` for hashing, packed a run at a time; as rowsOf, in turns. */
async function* packedRowsOf(
  view: ReadView, upTo: number, withValues: boolean,
): AsyncGenerator<PackedRows> {
  const scan = new PackedScan(view.backend, upTo, withValues);
  let turnStartedMs = performance.now();
  for (;;) {
    if (!view.isOpen()) throw new ViewClosedError();
    const rows = scan.next();
    if (rows === null) return;
    yield rows;
    if (performance.now() - turnStartedMs >= TURN_BUDGET_MS) {
      await nextTurn();
      turnStartedMs = performance.now();
    }
  }
}

export class Maintenance {
  private defragmenting: Promise<void> | null = null;

  constructor(private readonly host: MaintenanceHost, private readonly log: Logger) {}

  /** Maintenance.Hash: the key-value history at the current revision (not the file: members agree). */
  hash(): Promise<number> {
    return this.withView((view) => hashKeyValuesInSteps(
      (withValues) => packedRowsOf(view, view.currentRev, withValues), view.currentRev, -1,
    ));
  }

  /** Maintenance.HashKV at `revision` (0: the current one); the caller has checked it is in range. */
  hashKv(revision: number): Promise<{ hash: number; compactRevision: number }> {
    return this.withView(async (view) => {
      // A compaction applied while the view waited for the previous one may have passed it.
      if (revision > 0 && revision <= view.compactRev) throw new StoreError('compacted');
      const upTo = revision === 0 ? view.currentRev : revision;
      const scan = (withValues: boolean): AsyncGenerator<PackedRows> =>
        packedRowsOf(view, upTo, withValues);
      const hash = await hashKeyValuesInSteps(scan, upTo, view.compactRev);
      return { hash, compactRevision: view.compactRev };
    });
  }

  /** The Snapshot RPC's file (etcd's bbolt format), of one state: the view's. */
  etcdSnapshot(): Promise<Buffer[]> {
    return this.withView((view) => writeEtcdSnapshot({
      rows: () => rowsOf(view, view.currentRev),
      compactRevision: view.compactRev,
      leases: view.leases,
      appliedIndex: view.appliedIndex,
    }));
  }

  /**
   * Defragment: the space a pending compaction frees is what it is asked for, so it waits for
   * that, then returns free pages to the file system a step at a time. Calls that arrive meanwhile
   * share the running one.
   */
  defragment(): Promise<void> {
    this.defragmenting ??= this.runDefragment().finally(() => { this.defragmenting = null; });
    return this.defragmenting;
  }

  private async runDefragment(): Promise<void> {
    await this.host.compactionSettled();
    const backend = this.host.backend;
    if (backend.needsVacuumConversion()) {
      this.log.warn('defragment: converting the database file to incremental vacuum (one full VACUUM, this time only)');
    }
    const before = backend.sizes().sizeBytes;
    // Writes during the defragmentation free pages too; stop after the pages free at the start.
    let budget = backend.freePageCount() + DEFRAG_PAGES_PER_STEP;
    for (;;) {
      if (this.host.backend !== backend) return; // a snapshot install brought a new file
      const left = backend.defragmentStep(DEFRAG_PAGES_PER_STEP);
      budget -= DEFRAG_PAGES_PER_STEP;
      if (left === 0 || budget <= 0) break;
      await nextTurn();
    }
    this.log.info({ beforeBytes: before, afterBytes: backend.sizes().sizeBytes }, 'finished defragmenting the backend');
  }

  private async withView<T>(scan: (view: ReadView) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const view = await this.host.openReadView();
      try {
        return await scan(view);
      } catch (err) {
        if (!(err instanceof ViewClosedError)) throw err;
        if (attempt >= VIEW_ATTEMPTS) throw new StoreError('stopped', 'the database was replaced during the scan');
      } finally {
        view.release();
      }
    }
  }
}
