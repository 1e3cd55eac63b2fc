import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';
import { assert } from '../../shared/assert.js';
import { serverMetrics } from '../metrics/server-metrics.js';
import { packedPageSql, type PackedPageRequest, type PackedRowSource } from './packed-rows.js';

/**
 * The durable half of the store: one SQLite file holding the MVCC rows, leases, the Raft log,
 * Raft's hard state and the applied index. SQLite runs in WAL mode with synchronous=NORMAL, so a
 * commit only writes the WAL; durability comes from WalSyncer, which fsyncs the WAL file (on the
 * thread pool under load). Because the WAL is a sequence of checksummed frames, a crash keeps a
 * prefix of the committed transactions, never a later one without an earlier one.
 */
export interface KvRow {
  readonly main: number;
  readonly sub: number;
  readonly key: Buffer;
  readonly value: Buffer | null;
  readonly createRevision: number;
  readonly version: number;
  readonly lease: bigint;
  readonly tombstone: boolean;
}

interface RawKvRow {
  main: bigint;
  sub: bigint;
  key: Buffer;
  value: Buffer | null;
  create_rev: bigint;
  version: bigint;
  lease: bigint;
  tombstone: bigint;
}

export const SCHEMA_VERSION = 1;
/** SQLite's page cache per connection, in KiB (SQLite's own default; issue #3). */
const PAGE_CACHE_KIB = 2048;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
  main INTEGER NOT NULL, sub INTEGER NOT NULL, key BLOB NOT NULL, value BLOB,
  create_rev INTEGER NOT NULL, version INTEGER NOT NULL, lease INTEGER NOT NULL,
  tombstone INTEGER NOT NULL, PRIMARY KEY (main, sub)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lease (id INTEGER PRIMARY KEY, ttl INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS raft_log (idx INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS alarm (member TEXT NOT NULL, alarm INTEGER NOT NULL, PRIMARY KEY (member, alarm)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS member_attr (id TEXT PRIMARY KEY, name TEXT NOT NULL, client_urls TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auth (kind TEXT NOT NULL, name BLOB NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, name)) WITHOUT ROWID;
`;

/** A user or a role of the auth store, as stored: its name and a JSON document. */
export interface AuthRow {
  readonly kind: 'user' | 'role';
  readonly name: Buffer;
  readonly value: string;
}

/** Page size of a new database file (see the constructor). */
const PAGE_BYTES = 1024;

/** The write-ahead log is truncated to this after a checkpoint (it grows again only as needed). */
const WAL_BYTES_KEPT = 64 * 1024 * 1024;

export class Backend implements PackedRowSource {
  readonly db: Db;
  private pageBytes: number | null = null;
  /**
   * One transaction function for every call: better-sqlite3 builds four wrappers and defines their
   * properties each time db.transaction() is called (about 10 µs, as much as a small commit).
   */
  private readonly inTransaction: (work: () => unknown) => unknown;
  private readonly stmts: {
    insertKv: Statement;
    getKv: Statement;
    deleteKv: Statement;
    scanFrom: Statement;
    scanAll: Statement;
    scanPage: Statement;
    packedPage: Statement;
    packedHeadsPage: Statement;
    getMeta: Statement;
    setMeta: Statement;
    putLease: Statement;
    deleteLease: Statement;
    allLeases: Statement;
    appendLog: Statement;
    truncateLogFrom: Statement;
    compactLogTo: Statement;
    logRange: Statement;
    logTerm: Statement;
    logBounds: Statement;
    pageSize: Statement;
    pageCount: Statement;
    freePages: Statement;
  };

  constructor(readonly path: string, options: { readonly readonly?: boolean } = {}) {
    this.db = new Database(path, { readonly: options.readonly ?? false, fileMustExist: false });
    // Exclusive locking: a second process on the same data dir fails at once instead of sharing it.
    this.db.pragma('locking_mode = EXCLUSIVE');
    // Incremental vacuum lets Defragment return free pages a bounded batch at a time between
    // requests. SQLite takes the setting only before the first table exists (a new file); an older
    // file is converted by its first defragmentation (see defragmentStep).
    if (options.readonly !== true) this.db.pragma('auto_vacuum = INCREMENTAL');
    // Small pages for a new file (an older one keeps its own): SQLite writes whole pages to its WAL,
    // and a replicated put dirties about three (its log row's, its key's, the meta row's), all
    // fsynced. At 4 KiB a put's fsync carried 12-16 KiB, and with every member fsyncing at once
    // such fsyncs were slower and far more often over a millisecond than 1-4 KiB ones.
    if (options.readonly !== true) this.db.pragma(`page_size = ${PAGE_BYTES}`);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    // A large transaction (a snapshot install, a long compaction step) grows the WAL file, and
    // SQLite reuses it without shrinking it: cut it back to this when a checkpoint resets it.
    this.db.pragma(`journal_size_limit = ${WAL_BYTES_KEPT}`);
    // better-sqlite3 builds SQLite with a 16 MB page cache. Our writes append at the right edge of
    // the kv and raft_log trees and reads at the current revision never reach SQLite, so a few MB
    // hold the pages we touch; the OS page cache keeps the rest off the process's resident memory.
    this.db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    this.db.pragma('foreign_keys = OFF');
    this.db.exec(SCHEMA);
    const check = this.db.prepare('SELECT value FROM meta WHERE name = ?').pluck().get('schema_version');
    if (check === undefined) this.db.prepare('INSERT INTO meta VALUES (?, ?)').run('schema_version', SCHEMA_VERSION);
    else assert(Number(check) === SCHEMA_VERSION, `unsupported schema version ${String(check)}`);
    const prepare = (sql: string, safe = false): Statement => {
      const s = this.db.prepare(sql);
      return safe && s.reader ? s.safeIntegers(true) : s;
    };
    this.inTransaction = this.db.transaction((work: () => unknown): unknown => work());
    this.stmts = {
      insertKv: prepare('INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      getKv: prepare('SELECT * FROM kv WHERE main = ? AND sub = ?', true),
      deleteKv: prepare('DELETE FROM kv WHERE main = ? AND sub = ?'),
      scanFrom: prepare('SELECT * FROM kv WHERE main >= ? ORDER BY main, sub LIMIT ?', true),
      scanAll: prepare('SELECT * FROM kv ORDER BY main, sub', true),
      scanPage: prepare('SELECT * FROM kv WHERE (main, sub) > (?, ?) AND main <= ? ORDER BY main, sub LIMIT ?', true),
      packedPage: prepare(packedPageSql(true)).pluck(),
      packedHeadsPage: prepare(packedPageSql(false)).pluck(),
      getMeta: prepare('SELECT value FROM meta WHERE name = ?').pluck(),
      setMeta: prepare('INSERT OR REPLACE INTO meta VALUES (?, ?)'),
      putLease: prepare('INSERT OR REPLACE INTO lease VALUES (?, ?)'),
      deleteLease: prepare('DELETE FROM lease WHERE id = ?'),
      allLeases: prepare('SELECT id, ttl FROM lease', true),
      appendLog: prepare('INSERT OR REPLACE INTO raft_log VALUES (?, ?, ?, ?)'),
      truncateLogFrom: prepare('DELETE FROM raft_log WHERE idx >= ?'),
      compactLogTo: prepare('DELETE FROM raft_log WHERE idx <= ?'),
      logRange: prepare('SELECT idx, term, type, data FROM raft_log WHERE idx >= ? AND idx < ? ORDER BY idx'),
      logTerm: prepare('SELECT term FROM raft_log WHERE idx = ?').pluck(),
      logBounds: prepare('SELECT min(idx) AS first, max(idx) AS last FROM raft_log'),
      pageSize: prepare('PRAGMA page_size').pluck(),
      pageCount: prepare('PRAGMA page_count').pluck(),
      freePages: prepare('PRAGMA freelist_count').pluck(),
    };
  }

  /** Runs `work` in one transaction; the commit is durable when it returns. */
  transaction<T>(work: () => T): T {
    const startedMs = performance.now();
    const result = this.inTransaction(work) as T;
    serverMetrics.backendCommitSeconds.observe((performance.now() - startedMs) / 1000);
    return result;
  }

  insertKv(row: KvRow): void {
    this.stmts.insertKv.run(
      row.main, row.sub, row.key, row.value, row.createRevision, row.version, row.lease, row.tombstone ? 1 : 0,
    );
  }

  getKv(main: number, sub: number): KvRow | undefined {
    const raw = this.stmts.getKv.get(main, sub) as RawKvRow | undefined;
    return raw === undefined ? undefined : toRow(raw);
  }

  deleteKv(main: number, sub: number): void {
    this.stmts.deleteKv.run(main, sub);
  }

  /** Rows from revision `main` on, in revision order, at most `limit`. */
  scanFrom(main: number, limit: number): KvRow[] {
    return (this.stmts.scanFrom.all(main, limit) as RawKvRow[]).map(toRow);
  }

  *scanAll(): Generator<KvRow> {
    for (const raw of this.stmts.scanAll.iterate() as IterableIterator<RawKvRow>) yield toRow(raw);
  }

  /** Up to `limit` rows after (main, sub), at revisions up to `upTo`, in revision order. */
  scanPage(after: { readonly main: number; readonly sub: number }, upTo: number, limit: number): KvRow[] {
    return (this.stmts.scanPage.all(after.main, after.sub, upTo, limit) as RawKvRow[]).map(toRow);
  }

  /**
   * Up to `rows` rows after `after`, at revisions up to `upTo`, packed into one buffer (see
   * packed-rows.ts); without values, their lengths read 0. Empty when no row is left.
   */
  packedRows(request: PackedPageRequest): Buffer {
    const { after, upTo, rows, inlineMax } = request;
    const statement = request.withValues ? this.stmts.packedPage : this.stmts.packedHeadsPage;
    const bytes = statement.get({
      afterMain: after.main, afterSub: after.sub, upTo, rows, inlineMax,
    });
    return (bytes as Buffer | null) ?? Buffer.alloc(0);
  }

  getMeta(name: string): unknown {
    return this.stmts.getMeta.get(name);
  }

  getMetaNumber(name: string, fallback: number): number {
    const v = this.getMeta(name);
    return v === undefined || v === null ? fallback : Number(v);
  }

  setMeta(name: string, value: number | string | Buffer | bigint): void {
    this.stmts.setMeta.run(name, value);
  }

  putLease(id: bigint, ttlSeconds: number): void {
    this.stmts.putLease.run(id, ttlSeconds);
  }

  deleteLease(id: bigint): void {
    this.stmts.deleteLease.run(id);
  }

  allLeases(): { id: bigint; ttl: number }[] {
    return (this.stmts.allLeases.all() as { id: bigint; ttl: bigint }[]).map((r) => ({ id: r.id, ttl: Number(r.ttl) }));
  }

  appendLog(index: number, term: number, type: number, data: Uint8Array): void {
    this.stmts.appendLog.run(index, term, type, data);
  }

  truncateLogFrom(index: number): void {
    this.stmts.truncateLogFrom.run(index);
  }

  compactLogTo(index: number): void {
    this.stmts.compactLogTo.run(index);
  }

  logRange(low: number, high: number): { idx: number; term: number; type: number; data: Buffer }[] {
    return this.stmts.logRange.all(low, high) as { idx: number; term: number; type: number; data: Buffer }[];
  }

  logTerm(index: number): number | undefined {
    const t = this.stmts.logTerm.get(index) as number | undefined;
    return t;
  }

  logBounds(): { first: number | null; last: number | null } {
    return this.stmts.logBounds.get() as { first: number | null; last: number | null };
  }

  alarms(): { member: string; alarm: number }[] {
    return this.db.prepare('SELECT member, alarm FROM alarm').all() as { member: string; alarm: number }[];
  }

  setAlarm(member: string, alarm: number, active: boolean): void {
    if (active) this.db.prepare('INSERT OR IGNORE INTO alarm VALUES (?, ?)').run(member, alarm);
    else this.db.prepare('DELETE FROM alarm WHERE member = ? AND alarm = ?').run(member, alarm);
  }

  memberAttributes(): { id: bigint; name: string; clientUrls: string[] }[] {
    const rows = this.db.prepare('SELECT id, name, client_urls FROM member_attr').all() as { id: string; name: string; client_urls: string }[];
    return rows.map((r) => ({ id: BigInt(r.id), name: r.name, clientUrls: JSON.parse(r.client_urls) as string[] }));
  }

  setMemberAttributes(id: bigint, name: string, clientUrls: readonly string[]): void {
    this.db.prepare('INSERT OR REPLACE INTO member_attr VALUES (?, ?, ?)').run(id.toString(), name, JSON.stringify(clientUrls));
  }

  /** Users and roles; written by the applier inside the transaction of the entry that changed them. */
  authRows(): AuthRow[] {
    return this.db.prepare('SELECT kind, name, value FROM auth ORDER BY kind, name').all() as AuthRow[];
  }

  putAuthRow(row: AuthRow): void {
    this.db.prepare('INSERT OR REPLACE INTO auth VALUES (?, ?, ?)').run(row.kind, row.name, row.value);
  }

  deleteAuthRow(kind: AuthRow['kind'], name: Buffer): void {
    this.db.prepare('DELETE FROM auth WHERE kind = ? AND name = ?').run(kind, name);
  }

  /** Bytes the file takes on disk, and bytes its pages in use hold. */
  sizes(): { sizeBytes: number; inUseBytes: number } {
    // Fixed once the file exists: a VACUUM keeps it (nothing here sets another page size).
    this.pageBytes ??= Number(this.stmts.pageSize.get());
    const pageSize = this.pageBytes;
    const pageCount = Number(this.stmts.pageCount.get());
    const freePages = Number(this.stmts.freePages.get());
    return { sizeBytes: pageSize * pageCount, inUseBytes: pageSize * (pageCount - freePages) };
  }

  /**
   * One bounded step of a defragmentation: returns up to `pagesMax` free pages to the file system
   * (SQLite moves pages from the end of the file into free slots and truncates). Returns the free
   * pages left. A file made before incremental vacuum was the default is converted first, once,
   * by a full VACUUM.
   */
  defragmentStep(pagesMax: number): number {
    if (Number(this.db.pragma('auto_vacuum', { simple: true })) !== 2) {
      this.db.pragma('auto_vacuum = INCREMENTAL');
      this.db.exec('VACUUM');
      return this.freePageCount();
    }
    this.db.exec(`PRAGMA incremental_vacuum(${Math.max(1, Math.floor(pagesMax))})`);
    return this.freePageCount();
  }

  freePageCount(): number {
    return Number(this.stmts.freePages.get());
  }

  /** Whether the next defragmentStep converts the file with one full VACUUM. */
  needsVacuumConversion(): boolean {
    return Number(this.db.pragma('auto_vacuum', { simple: true })) !== 2;
  }

  close(): void {
    this.db.close();
  }
}

function toRow(raw: RawKvRow): KvRow {
  return {
    main: Number(raw.main),
    sub: Number(raw.sub),
    key: raw.key,
    value: raw.value,
    createRevision: Number(raw.create_rev),
    version: Number(raw.version),
    lease: raw.lease,
    tombstone: raw.tombstone !== 0n,
  };
}
